"""Fixtures for tests on the `sam build` output (.aws-sam/build); `make test` builds it first (`make build`)."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from jobgraph.sam.build import BuiltFunction, built_functions, runtime_packages_dir
from tests.lambda_support import ROOT

BUILD_DIR = ROOT / ".aws-sam" / "build"


@pytest.fixture(scope="session")
def built() -> dict[str, BuiltFunction]:
    if not (BUILD_DIR / "template.yaml").is_file():
        pytest.fail(f"{BUILD_DIR} has no template.yaml: run `make build` (or `make test`, which builds first)")
    return built_functions(BUILD_DIR)


def wheel_architecture(layer_python_dir: Path) -> str:
    """x86_64 or aarch64, from the platform tag of the numpy wheel installed into the layer."""
    (wheel,) = layer_python_dir.glob("numpy-*.dist-info/WHEEL")
    tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
    return "aarch64" if all(t.endswith("aarch64") for t in tags) else "x86_64"


@pytest.fixture(scope="session")
def runnable(built) -> dict[str, BuiltFunction]:
    """The built functions, if their native libraries can run on this machine."""
    scientific = dict(built["ProcessorFunction"].layers)["ScientificLayer"] / "python"
    built_for, machine = wheel_architecture(scientific), platform.machine().replace("arm64", "aarch64")
    if built_for != machine:
        # a capability absent here (an {built_for} CPU), not a gap: what does not need one ran anyway
        pytest.skip(
            f"no {built_for} CPU: the handlers built for {built_for} cannot be imported on this {machine} machine "
            "(their sizes and native-library architectures are checked by test_build_sizes.py and "
            "test_build_layout.py)"
        )
    return built


@pytest.fixture(scope="session")
def runtime_dir(tmp_path_factory) -> Path:
    """Stands in for the Lambda runtime's boto3/botocore (the layers leave them out on purpose)."""
    return runtime_packages_dir(tmp_path_factory.mktemp("lambda-runtime"))
