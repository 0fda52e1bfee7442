"""Fixtures the end-to-end files share. Each file that compares runs with the reference solver names its own
``graph`` (module scope); ``reference`` is then that graph solved once per file, in the layout a run writes, and
``sequence_files`` the graph as the folder of sequence files `--sequences` reads.
``chromium`` is the headless browser command the report checks render pages with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jobgraph.adapters.local_disk import staged_run
from jobgraph.core.run import RunSpec
from jobgraph.core.solver import solve
from tests.conftest import BROWSER_OPT_IN, capability_absent
from tests.run_files import read_run

SCENARIOS = 100  # per route, in every run compared with the reference
SEED = 5
RUN_ID = "same"

# flags for a machine without network or display (see the machine notes in docs/development.md)
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=5000",
)  # fmt: skip


@pytest.fixture(scope="session")
def chromium() -> tuple[str, ...]:
    """The browser and its flags: Debian's chromium (.ci/run installs it) or Google Chrome (CodeBuild's standard
    image ships it). Absent, the test is skipped — or fails where the run opted in to browser tests."""
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    browser = next(filter(None, map(shutil.which, names)), None)
    if browser is None:
        capability_absent(
            "no headless browser: Debian's chromium is not installed (.ci/run installs it)", BROWSER_OPT_IN
        )
    return (browser, *CHROMIUM_FLAGS)


@pytest.fixture(scope="module")
def solved(graph, tmp_path_factory) -> Path:
    """The reference solver's run of the module's ``graph``: what every run of it must reproduce exactly."""
    out = tmp_path_factory.mktemp("solve")
    solve(graph, RunSpec(RUN_ID, "default", SCENARIOS, SEED), out, staging=staged_run)
    return out / RUN_ID


@pytest.fixture(scope="module")
def reference(solved) -> dict:
    """``solved``'s result files, read as ``read_run`` reads a run's."""
    return read_run(solved)


@pytest.fixture
def sequence_files(graph, tmp_path) -> Path:
    """The module's ``graph`` written as a user gives it to `jobgraph run --sequences`: one JSON file a sequence."""
    folder = tmp_path / "sequences"
    folder.mkdir()
    for sequence in graph:
        (folder / f"{sequence.sequence_id}.json").write_text(sequence.model_dump_json())
    return folder
