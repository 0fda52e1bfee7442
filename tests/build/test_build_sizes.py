"""Sizes and contents of the built functions and layers (Lambda: 262,144,000 bytes unzipped, code + layers)."""

from __future__ import annotations

import pytest

from jobgraph.sam.build import LAMBDA_UNZIPPED_LIMIT, RUNTIME_PACKAGES

pytestmark = pytest.mark.build

PROCESSOR_TARGET = 160_000_000  # bytes: headroom under the limit for the Processor (function + both layers)


def test_every_function_with_its_layers_fits_the_unzipped_limit(built):
    print()
    for logical_id, function in sorted(built.items()):
        sizes, total = function.sizes(), function.total_size()
        parts = ", ".join(f"{name} {size:,}" for name, size in sizes.items())
        print(f"{logical_id}: {total:,} B ({total / 2**20:.1f} MiB) = {parts}")
        assert total < LAMBDA_UNZIPPED_LIMIT, logical_id
    assert set(built) == {
        "ProcessorFunction", "SchedulerFunction", "StartRunFunction", "ApiFunction", "TriggerFunction",
    }  # fmt: skip


def test_processor_stays_within_its_160_mb_target(built):
    total = built["ProcessorFunction"].total_size()
    assert total <= PROCESSOR_TARGET, f"Processor is {total:,} B"


def test_layers_per_function(built):
    assert [name for name, _ in built["ProcessorFunction"].layers] == ["CoreLayer", "ScientificLayer"]
    assert [name for name, _ in built["SchedulerFunction"].layers] == ["CoreLayer"]
    assert [name for name, _ in built["StartRunFunction"].layers] == ["CoreLayer"]
    assert [name for name, _ in built["TriggerFunction"].layers] == ["CoreLayer"]
    # numpy for POST /runs {"generate": ...}; FastAPI/Mangum are the function's own (functions/api/requirements.txt)
    assert [name for name, _ in built["ApiFunction"].layers] == ["CoreLayer", "ScientificLayer"]


def test_layers_do_not_shadow_the_runtime_or_each_other(built):
    """Lambda merges layers into /opt (a later one overwrites) and puts /opt before the runtime's boto3."""
    layers = dict(built["ProcessorFunction"].layers)
    names = {
        layer: {p.name.split("-", 1)[0].removesuffix(".py") for p in (folder / "python").iterdir()}
        for layer, folder in layers.items()
    }
    # jmespath is the exception: Powertools needs it, and botocore accepts any 1.x
    for layer, top_level in names.items():
        assert top_level & (set(RUNTIME_PACKAGES) - {"jmespath"}) == set(), layer
    for folder in layers.values():
        for dist_info in (folder / "python").glob("jmespath-*.dist-info"):
            assert dist_info.name.split("-")[1].startswith("1."), dist_info.name
    shared = names["CoreLayer"] & names["ScientificLayer"]
    assert shared == set()
    assert "pandas" not in names["ScientificLayer"]
    assert {"numpy", "pyarrow"} <= names["ScientificLayer"]
    assert {"jobgraph", "aws_lambda_powertools", "pydantic"} <= names["CoreLayer"]


def test_the_layers_ship_unchecked_bytecode_for_every_module_and_the_functions_none(built):
    """Lambda's /opt is read-only: a layer without .pyc compiles every import on each cold start.

    Each layer .py has a cpython-313 .pyc with the unchecked-hash flag (PEP 552: flags == 0b01), so the
    runtime never compares it with source mtimes; running the build (smoke test, benchmarks) adds none.
    """
    layers = {folder for f in built.values() for _, folder in f.layers}
    for layer in layers:
        sources = [p for p in (layer / "python").rglob("*.py")]
        assert sources, layer
        for source in sources:
            pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
            assert pyc.is_file(), f"no bytecode for {source}"
            assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b01, f"{pyc} is not unchecked-hash"
        extra = [p for p in (layer / "python").rglob("*.pyc") if not p.name.endswith(".cpython-313.pyc")]
        assert extra == []
    functions = [p for f in built.values() for p in f.code_dir.rglob("__pycache__")]
    assert functions == []


def test_the_core_layer_ships_only_the_lambda_facing_package(built):
    """The CLI, the local cloud and the template/build tooling need moto or samtranslator: not in Lambda."""
    package = dict(built["SchedulerFunction"].layers)["CoreLayer"] / "python" / "jobgraph"
    shipped = {p.name for p in package.iterdir()}
    assert {"core", "services", "adapters"} <= shipped
    assert {"stages.py", "delay_model.py", "models.py"} <= {p.name for p in (package / "core").iterdir()}
    assert shipped.isdisjoint({"localcloud", "cli", "runs", "sam"})


def test_the_api_function_ships_the_layers_pydantic(built):
    """FastAPI brings pydantic into the ApiFunction, which shadows the core layer's: it must be the same one."""
    import re

    from tests.lambda_support import ROOT

    pinned = re.search(r"^pydantic==(\S+)$", (ROOT / "layers/core/requirements.txt").read_text(), re.M).group(1)
    shipped = sorted(p.name for p in built["ApiFunction"].code_dir.glob("pydantic-*.dist-info"))
    assert shipped == [f"pydantic-{pinned}.dist-info"]
