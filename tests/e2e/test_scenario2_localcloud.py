"""Scenario 2 end to end on the embedded local cloud: templates/scenario-2.yaml deployed into moto, the ECS
service emulated by local worker processes running the task definition's command, the Scheduler and StartRun
in the local Lambda runtime — and the same results as the reference solver, with and without faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobgraph.cli.main import main
from jobgraph.core.generator import generate_sequences
from jobgraph.core.run import RunSpec
from jobgraph.localcloud.faults import FaultPlan
from jobgraph.runs.execute import execute
from jobgraph.runs.graph import QueueGraph
from jobgraph.runs.local import LocalOptions, LocalTarget
from jobgraph.runs.target import Output, Patience
from tests.e2e.conftest import RUN_ID, SCENARIOS, SEED
from tests.price_oracle import assert_cost_is_the_priced_usage
from tests.processes import alive, started_children
from tests.run_files import assert_same_run, read_run

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "templates" / "scenario-2.yaml"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def graph():
    return generate_sequences(6, seed=12)


def test_scenario_2_cli_matches_the_solver_and_reports(graph, sequence_files, reference, tmp_path, capsys, monkeypatch):
    # Given the graph as sequence files, when `jobgraph run --scenario 2` runs it with 3 local ECS tasks
    monkeypatch.chdir(ROOT)  # the scenario's template path is relative to the project folder
    code = main(
        ["run", "--scenario", "2", "--sequences", str(sequence_files), "--run-id", RUN_ID, "--out", str(tmp_path / "out"),
         "--scenarios", str(SCENARIOS), "--seed", str(SEED), "--ecs-workers", "3", "--no-progress"]
    )  # fmt: skip
    report = capsys.readouterr().out
    # then its exported results equal the solver's, file for file
    assert code == 0, report
    assert_same_run(read_run(tmp_path / "out" / RUN_ID), reference)
    # and the record prices the 3 tasks' Fargate time: at least a minute each at 256 CPU units / 512 MB
    record = json.loads((tmp_path / "out" / RUN_ID / "run.json").read_text())
    fargate = record["usage"]["fargate"]
    assert fargate["vcpu_hours"] >= 3 * 60 / 3600 * 0.25 and fargate["gb_hours"] == pytest.approx(
        2 * fargate["vcpu_hours"]
    )
    bill = assert_cost_is_the_priced_usage(record)
    assert bill["Fargate"] == pytest.approx(fargate["vcpu_hours"] * 0.04048 + fargate["gb_hours"] * 0.004445)
    jobs = sum(len(s.routes) + 1 for s in graph) + 1
    assert f"scenario 2 (SQS FIFO + ECS Fargate), on local stack scenario-2-local: 6 sequences, {jobs} jobs" in report
    for line in (
        "processing time per stage (ECS workers",
        "ECS service scenario-2-local-service: 3 tasks",
        "0 task restarts",
        "SchedulerFunction: 2 workers",
        "dead-letter queues: incoming DLQ 0, outgoing DLQ 0",
        "OK                scenario-2-local-incoming-dlq-messages",
    ):
        assert line in report, line
    assert "ProcessorFunction" not in report
    # the worker logs are there, one per task
    logs = sorted(p.name for p in (tmp_path / "out" / ".logs" / RUN_ID).glob("scenario-2-local-service-*.log"))
    assert logs == [f"scenario-2-local-service-{n}.log" for n in range(3)]


def test_scenario_2_faults_still_give_the_clean_result(graph, reference, tmp_path):
    # Given failures, duplicates, tasks dying mid-batch (worker and Scheduler alike) and 2 malformed messages
    faults = FaultPlan(fail_rate=0.1, duplicate_rate=0.1, kill_rate=0.1, poison=2, seed=4)
    options = LocalOptions(template=TEMPLATE, stack_name="scenario-2-local", faults=faults)
    target = LocalTarget(options, Output(tmp_path), Patience(stall_s=30))
    outcome = execute(QueueGraph(graph, scenario=2), target, RunSpec(RUN_ID, "default", SCENARIOS, SEED))
    # then every valid sequence completes with exactly the clean result
    assert_same_run(read_run(outcome.out_dir), reference)
    assert outcome.run_record["status"] == "COMPLETED" and outcome.run_record["sequences_remaining"] == 0
    (service,) = outcome.extra["services"].values()
    # the workers' faults happened: killed tasks were replaced, failed batches came back for retry
    # (a task killed while the run is being stopped is not replaced any more)
    assert service["faults"].get("kill", 0) > 0 and 0 < service["restarts"] <= service["faults"]["kill"]
    assert set(service["exit_codes"]) <= {137, 0}
    assert service["faults"].get("duplicate", 0) > 0
    assert service["retried"] > 0 and service["redeliveries"] > 0
    # only the poison messages are dead-lettered
    assert outcome.dlq == {"incoming DLQ": 2, "outgoing DLQ": 0}
    assert all(item.startswith("malformed") for item in outcome.dlq_contents["incoming DLQ"])


def test_sigterm_stops_the_run_and_its_worker_tasks(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "jobgraph.cli", "run", "--scenario", "2", "--generate", "40", "--seed", "2",
         "--out", str(tmp_path), "--scenarios", "50", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    workers = started_children(process, 3)  # 2 worker tasks + a Scheduler/StartRun worker
    os.kill(process.pid, signal.SIGTERM)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    time.sleep(0.5)
    assert [pid for pid in workers if alive(pid)] == []
