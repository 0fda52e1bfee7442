"""The `sam build` output (.aws-sam/build): what each function ships, and running it like the Lambda runtime.

Used by the build tests (tests/build) and the build benchmarks (benchmarks/bench_build.py,
benchmarks/bench_import.py). Nothing here imports boto3 or the SAM translator at import time.

``built_functions(build_dir)`` reads ``<build_dir>/template.yaml`` (the template `sam build` writes,
whose CodeUri/ContentUri point at the built folders) and returns, per function, its code folder and
the folders of the layers it lists, in order. Nested applications (the shared pieces) are built into
``<build_dir>/<LogicalId>/template.yaml``; their functions are listed too, their layers being the
parent's layers they are passed as parameters (``CoreLayerArn: !Ref CoreLayer``).

``run_isolated(function, events, ...)`` runs a function's handler in a fresh interpreter started with
``-I -S -B`` from the base Python (no virtualenv, no site-packages, no bytecode written into the
build). Its ``sys.path`` is what Lambda gives: the function folder, the layers' ``python/`` folders,
then a folder standing in for the runtime's own boto3/botocore (``runtime_packages_dir``), then the
standard library. The child imports the handler, invokes it with each event and reports the import
time, the responses and which modules it loaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

LAMBDA_UNZIPPED_LIMIT = 262_144_000  # function code + all its layers, bytes
# What the python3.13 Lambda runtime ships itself (so the layers leave them out on purpose).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
HEAVY_MODULES = ("pandas", "pyarrow", "numpy")


def tree_size(path: Path) -> int:
    """Sum of the sizes of the regular files under ``path`` (what Lambda counts, unzipped)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root, name)
            if not file.is_symlink():
                total += file.stat().st_size
    return total


@dataclass(frozen=True)
class BuiltFunction:
    logical_id: str
    code_dir: Path
    handler: str  # "module.function"
    layers: tuple[tuple[str, Path], ...]  # (layer logical id, built layer folder), template order

    @property
    def layer_python_dirs(self) -> list[Path]:
        # Lambda extracts layers into /opt in order, a later layer overwriting an earlier one's files;
        # with one folder per layer, later layers therefore come first on the path.
        return [folder / "python" for _, folder in reversed(self.layers)]

    def sizes(self) -> dict[str, int]:
        sizes = {self.logical_id: tree_size(self.code_dir)}
        sizes.update({layer_id: tree_size(folder) for layer_id, folder in self.layers})
        return sizes

    def total_size(self) -> int:
        return sum(self.sizes().values())


def built_functions(build_dir: str | Path) -> dict[str, BuiltFunction]:
    build_dir = Path(build_dir).resolve()
    template_path = build_dir / "template.yaml"
    if not template_path.is_file():
        raise FileNotFoundError(f"{template_path} not found: run `make build` (sam build) first")
    return _built_functions(template_path, {}, {})


def _condition_holds(condition: dict, template: dict, passed: dict) -> bool:
    """The conditions nested templates put on their layers: Not / Equals of a parameter and a string."""
    ((fn, arg),) = condition.items()
    if fn == "Fn::Not":
        return not _condition_holds(arg[0], template, passed)
    if fn == "Condition":
        return _condition_holds(template["Conditions"][arg], template, passed)
    if fn == "Fn::Equals":

        def value(item):
            if not (isinstance(item, dict) and "Ref" in item):
                return item
            given = passed.get(item["Ref"], template["Parameters"][item["Ref"]].get("Default"))
            return f"<{given['Ref']}>" if isinstance(given, dict) else given  # a resource: never empty

        return value(arg[0]) == value(arg[1])
    raise ValueError(f"condition {fn} is not understood by sam/build.py")


def _built_functions(template_path: Path, passed: dict, parent_layers: dict[str, Path]) -> dict[str, BuiltFunction]:
    """``passed``: the Parameters the parent gives this (nested) template; ``parent_layers``: the parent's layer
    logical ids and built folders, which a nested function lists through those parameters."""
    from jobgraph.sam.template import load_template, nested_function_layers

    build_dir = template_path.parent
    template = load_template(template_path)
    resources = template["Resources"]
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    layer_folders = {
        **parent_layers,
        **{
            logical_id: build_dir / resource["Properties"]["ContentUri"]
            for logical_id, resource in resources.items()
            if resource["Type"] == "AWS::Serverless::LayerVersion"
        },
    }

    def holds(condition: str) -> bool:
        return _condition_holds({"Condition": condition}, template, passed)

    functions: dict[str, BuiltFunction] = {}
    for logical_id, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Application" and isinstance(properties.get("Location"), str):
            given = properties.get("Parameters") or {}
            functions.update(_built_functions(build_dir / properties["Location"], given, layer_folders))
            continue
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        listed = nested_function_layers(properties.get("Layers", []), passed, holds)
        layer_ids = [ref["Ref"] if isinstance(ref, dict) else ref for ref in listed]
        functions[logical_id] = BuiltFunction(
            logical_id=logical_id,
            code_dir=build_dir / properties.get("CodeUri", globals_.get("CodeUri")),
            handler=properties.get("Handler", globals_.get("Handler")),
            layers=tuple((layer_id, layer_folders[layer_id]) for layer_id in layer_ids),
        )
    return functions


def runtime_packages_dir(dest: str | Path) -> Path:
    """A folder of symlinks to this interpreter's boto3 & co., standing in for the runtime's copies."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"{name} is not installed in {sys.prefix}")
        source = Path(spec.origin)
        if spec.submodule_search_locations:  # a package: link its folder
            source = source.parent
        link = dest / source.name
        if not link.exists():
            link.symlink_to(source, target_is_directory=source.is_dir())
    return dest


def base_python() -> str:
    """The interpreter the current virtualenv was made from (same version, none of its packages)."""
    return getattr(sys, "_base_executable", None) or sys.executable


_CHILD = r"""
import importlib, json, sys, time, uuid
spec = json.load(open(sys.argv[1]))
sys.path[:0] = spec["path"]

class Context:
    function_name = spec["function_name"]
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:" + spec["function_name"]
    log_group_name = "/aws/lambda/" + spec["function_name"]
    log_stream_name = "smoke"
    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())
    def get_remaining_time_in_millis(self):
        return 60_000

module_name, handler_name = spec["handler"].rsplit(".", 1)
started = time.perf_counter()
handler = getattr(importlib.import_module(module_name), handler_name)
import_s = time.perf_counter() - started
results = []
for path in spec["events"]:
    with open(path) as f:
        event = json.load(f)
    try:
        results.append({"event": path, "response": handler(event, Context())})
    except Exception as exc:
        results.append({"event": path, "error": type(exc).__name__ + ": " + str(exc)})
modules = sorted(sys.modules)
files = {name: getattr(sys.modules.get(name), "__file__", None) for name in spec["report"]}
with open(spec["output"], "w") as f:
    json.dump({"import_s": import_s, "results": results, "modules": modules, "files": files,
               "sys_path": sys.path}, f)
"""


@dataclass(frozen=True)
class IsolatedRun:
    import_s: float
    results: list[dict]
    modules: list[str]
    files: dict[str, str | None]
    sys_path: list[str]
    stdout: str
    stderr: str

    def top_level_modules(self) -> set[str]:
        return {m.split(".", 1)[0] for m in self.modules}


def run_isolated(
    function: BuiltFunction,
    events: list[str | Path] = (),
    *,
    runtime_dir: str | Path,
    env: dict[str, str] | None = None,
    report: tuple[str, ...] = (),
    timeout: float = 120,
) -> IsolatedRun:
    """Import ``function``'s handler in a fresh isolated interpreter and invoke it with each event file."""
    module_file = function.handler.rsplit(".", 1)[0]
    with tempfile.TemporaryDirectory(prefix="jobgraph-isolated-") as tmp:
        spec = {
            "path": [str(function.code_dir)] + [str(p) for p in function.layer_python_dirs] + [str(runtime_dir)],
            "handler": function.handler,
            "function_name": function.logical_id,
            "events": [str(Path(e).resolve()) for e in events],
            "report": [*report, module_file],
            "output": str(Path(tmp, "result.json")),
        }
        spec_path = Path(tmp, "spec.json")
        spec_path.write_text(json.dumps(spec))
        child_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **(env or {})}
        completed = subprocess.run(
            [base_python(), "-I", "-S", "-B", "-c", _CHILD, str(spec_path)],
            env=child_env,
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"{function.logical_id}: isolated run failed ({completed.returncode})\n{completed.stderr[-4000:]}"
            )
        data = json.loads(Path(spec["output"]).read_text())
    return IsolatedRun(stdout=completed.stdout, stderr=completed.stderr, **data)
