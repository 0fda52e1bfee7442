"""Scenario 3 on the embedded local cloud: the state machine of templates/scenario-3.yaml, executed by moto's
ASL engine with its Lambda tasks in the local runtime, gives the solver's results byte for byte."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from jobgraph.bench.record import RECORD_NAME
from jobgraph.cli.main import main
from jobgraph.core.generator import generate_sequences
from jobgraph.core.run import RunSpec
from jobgraph.localcloud.faults import FaultPlan
from jobgraph.runs.execute import execute
from jobgraph.runs.local import LocalOptions, LocalTarget
from jobgraph.runs.statemachine import StateMachineGraph
from jobgraph.runs.target import Output
from tests.e2e.conftest import RUN_ID, SCENARIOS, SEED
from tests.price_oracle import assert_cost_is_the_priced_usage
from tests.run_files import assert_same_run, read_run

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "templates" / "scenario-3.yaml"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def graph():
    return generate_sequences(4, seed=13)


def assert_identical_files(a: Path, b: Path) -> None:
    """Every result file byte for byte (``a``'s run.json is the record of the run, not a result)."""
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.relative_to(a).as_posix() != RECORD_NAME)
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    _match, mismatch, errors = filecmp.cmpfiles(a, b, [f.as_posix() for f in files], shallow=False)
    assert (mismatch, errors) == ([], [])


def test_run_scenario_3_matches_the_solver_file_for_file(graph, sequence_files, solved, tmp_path, capsys):
    # Given the graph as sequence files, when `jobgraph run --scenario 3` runs it on the local cloud
    code = main(
        ["run", "--scenario", "3", "--sequences", str(sequence_files), "--run-id", RUN_ID, "--out", str(tmp_path / "out"),
         "--scenarios", str(SCENARIOS), "--seed", str(SEED), "--no-progress"]
    )  # fmt: skip
    report = capsys.readouterr().out
    # then the execution completes and its results are the solver's, byte for byte
    assert code == 0, report
    assert_identical_files(tmp_path / "out" / RUN_ID, solved)
    record = json.loads((tmp_path / "out" / RUN_ID / "run.json").read_text())
    assert record["scenario"] == 3
    # every job is at least one Task state; the cost is exactly the usage at the published prices
    assert record["usage"]["stepfunctions"]["transitions"] >= sum(len(s.routes) + 1 for s in graph) + 1
    assert "Step Functions" in assert_cost_is_the_priced_usage(record)
    assert_same_run(read_run(tmp_path / "out" / RUN_ID), read_run(solved))
    # and the report names the scenario, per-stage times, the state machine and its functions
    jobs = sum(len(s.routes) + 1 for s in graph) + 1
    assert f"scenario 3 (Step Functions), on local stack scenario-3-local: 4 sequences, {jobs} jobs" in report
    for line in ("FIRST", "AGGREGATION", "MERGE", "states entered", "StepTaskFunction", "PrepareRunFunction"):
        assert line in report, line
    assert "OK                scenario-3-local-executions-failed" in report
    assert "dead-letter queues" not in report


def test_failed_invocations_are_retried_by_the_state_machine(graph, solved, tmp_path):
    # Given a third of the task invocations failing, before or after their side effects, and duplicates
    options = LocalOptions(
        template=TEMPLATE,
        stack_name="scenario-3-local",
        faults=FaultPlan(fail_rate=0.3, duplicate_rate=0.2, seed=3),
    )
    # when the run goes through the state machine
    target = LocalTarget(options, Output(tmp_path / "out"))
    outcome = execute(StateMachineGraph(graph), target, RunSpec(RUN_ID, "default", SCENARIOS, SEED))
    # then its Retry recovers every job: the results still equal the solver's
    assert outcome.run_record["status"] == "COMPLETED"
    assert_identical_files(outcome.out_dir, solved)
    step_task = outcome.extra["functions"]["StepTaskFunction"]
    faults = outcome.extra["faults"]
    assert step_task["errors"] == faults.get("fail-before", 0) + faults.get("fail-after", 0) > 0
    assert step_task["invocations"] >= outcome.jobs + step_task["errors"]
    # and every job is recorded once, completed; a job that failed before running shows its second attempt
    assert sum(len(v) for v in outcome.stage_ms.values()) == outcome.jobs == len(outcome.attempts)
    if faults.get("fail-before"):
        assert max(outcome.attempts.values()) >= 2
    assert outcome.alarms["scenario-3-local-step-task-errors"] == "ALARM"
    assert outcome.alarms["scenario-3-local-executions-failed"] == "OK"
