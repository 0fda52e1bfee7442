"""The whole SQS → Lambda loop on the embedded local cloud: same results as the solver, faults, failures."""

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
TEMPLATE = ROOT / "template.yaml"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def graph():
    return generate_sequences(6, seed=11)


def test_run_cli_matches_the_solver_and_reports(graph, sequence_files, reference, tmp_path, capsys):
    # Given the graph as sequence files, when `jobgraph run` runs it on the local cloud
    code = main(
        ["run", "--sequences", str(sequence_files), "--run-id", RUN_ID, "--out", str(tmp_path / "out"),
         "--scenarios", str(SCENARIOS), "--seed", str(SEED), "--template", str(TEMPLATE), "--no-progress"]
    )  # fmt: skip
    report = capsys.readouterr().out
    # then it completes, and its exported results equal the solver's, file for file and value for value
    assert code == 0, report
    assert_same_run(read_run(tmp_path / "out" / RUN_ID), reference)
    # and the report has the figures a performance test needs
    jobs = sum(len(s.routes) + 1 for s in graph) + 1
    assert f"6 sequences, {jobs} jobs" in report and "jobs/s" in report
    for line in (
        "FIRST",
        "AGGREGATION",
        "MERGE",
        "queue wait p50",
        "dead-letter queues: incoming DLQ 0, outgoing DLQ 0",
    ):
        assert line in report, line
    assert "OK                scenario-1-local-incoming-dlq-messages" in report
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".logs", RUN_ID]
    # and the run is recorded: settings, timings, usage per service, requests per job, and its cost
    record = json.loads((tmp_path / "out" / RUN_ID / "run.json").read_text())
    route_jobs = sum(len(s.routes) for s in graph)
    assert record["scenario"] == 1 and record["jobs"] == jobs and record["route_jobs"] == route_jobs
    assert record["settings"]["functions"]["ProcessorFunction"]["memory_mb"] == 256
    assert record["stage_ms"]["FIRST"]["count"] == len(graph)
    lambda_usage = record["usage"]["lambda"]
    assert lambda_usage["StartRunFunction"]["requests"] == 1
    # the run's end, handled by the TriggerFunction before the report (not left in flight, uncounted)
    assert (
        lambda_usage["TriggerFunction"]["requests"] == 1 and record["functions"]["TriggerFunction"]["invocations"] == 1
    )
    assert lambda_usage["ProcessorFunction"]["requests"] >= 1 and lambda_usage["ProcessorFunction"]["duration_ms"] > 0
    requests = record["api_requests"]["requests"]
    # every route job wrote its delays once; its state travelled in the messages, not as an S3 object
    # (StartRun: one file per 100 sequence ids + the manifest; AGGREGATION: a percentiles file each; MERGE: one)
    blocks = len({s.sequence_id // 100 for s in graph})
    assert requests["s3"]["PutObject"] == route_jobs + blocks + 1 + len(graph) + 1
    assert requests["sqs"]["ReceiveMessage"] >= 1
    assert record["api_requests"]["per_job"] == pytest.approx(record["api_requests"]["total_requests"] / jobs)
    # its cost is exactly the measured usage at the published prices, for the four services scenario 1 uses
    assert set(assert_cost_is_the_priced_usage(record)) == {"Lambda", "SQS", "DynamoDB", "S3"}
    assert "per 1,000 route jobs" in report and "AWS requests" in report and "run record:" in report
    # `jobgraph cost` re-prices the record line by line, here with us-east-1 prices
    capsys.readouterr()
    assert main(["cost", str(tmp_path / "out" / RUN_ID), "--price-region", "us-east-1"]) == 0
    priced = capsys.readouterr().out
    assert "prices 2026-11-01, us-east-1" in priced and "SQS            FIFO requests" in priced


def test_faults_still_give_the_clean_result_and_dead_letter_only_the_poison(graph, reference, tmp_path):
    # Given failures before/after side effects, duplicate deliveries, dying workers and 6 malformed messages
    faults = FaultPlan(fail_rate=0.1, duplicate_rate=0.1, kill_rate=0.05, poison=6, seed=3)
    target = LocalTarget(LocalOptions(template=TEMPLATE, faults=faults), Output(tmp_path), Patience(stall_s=30))
    outcome = execute(QueueGraph(graph), target, RunSpec(RUN_ID, "default", SCENARIOS, SEED))
    # then every valid sequence completes with exactly the clean result
    assert_same_run(read_run(outcome.out_dir), reference)
    assert outcome.run_record["status"] == "COMPLETED" and outcome.run_record["sequences_remaining"] == 0
    # the faults really happened
    injected = outcome.extra["faults"]
    assert injected.get("kill", 0) + injected.get("fail-before", 0) + injected.get("fail-after", 0) > 0
    assert sum(f["duplicates"] for f in outcome.extra["functions"].values()) > 0
    # every injected fault fails its whole batch, which SQS delivers again (beyond the poison messages'
    # own two redeliveries each before the DLQ)
    assert sum(f["redeliveries"] for f in outcome.extra["functions"].values()) > 2 * faults.poison
    # only the 6 poison messages are dead-lettered, and the DLQ alarm fired (> 5)
    assert outcome.dlq == {"incoming DLQ": 6, "outgoing DLQ": 0}
    assert all(item.startswith("malformed") for item in outcome.dlq_contents["incoming DLQ"])
    assert outcome.alarms["scenario-1-local-incoming-dlq-messages"] == "ALARM"
    assert outcome.alarms["scenario-1-local-outgoing-dlq-messages"] == "OK"
    # the report names what went wrong
    assert any(f["last_error"] for f in outcome.extra["functions"].values())


def test_a_run_that_cannot_complete_exits_non_zero_with_the_reason(graph, tmp_path, capsys):
    # Given a template whose Processor handler does not exist
    broken = tmp_path / "project"
    broken.mkdir()
    (broken / "template.yaml").write_text(
        TEMPLATE.read_text().replace(
            "CodeUri: functions/processor/", "CodeUri: functions/processor/\n      Handler: app.no_such_handler", 1
        )
    )
    for folder in ("functions", "src", "layers", "templates"):  # templates/shared: the nested pieces
        (broken / folder).symlink_to(ROOT / folder)
    code = main(
        ["run", "--generate", "2", "--seed", "1", "--run-id", "broken", "--out", str(tmp_path / "out"),
         "--scenarios", "10", "--template", str(broken / "template.yaml"), "--no-progress", "--timeout", "120"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "error: local runtime stopped: ProcessorFunction: handler app.no_such_handler" in err
    # the reason is kept in the run's record (the local cloud is gone), and nothing looks like a result
    assert f"details: {tmp_path / 'out' / 'broken' / 'run.json'}" in err
    kept = json.loads((tmp_path / "out" / "broken" / "run.json").read_text())
    assert kept["status"] == "FAILED" and "failed to import" in kept["reason"]
    assert not (tmp_path / "out" / "broken" / "merged_percentiles.json").exists()


def test_unknown_template_parameter_is_a_clear_error(tmp_path, capsys):
    code = main(
        ["run", "--generate", "1", "--seed", "1", "--out", str(tmp_path), "--template", str(TEMPLATE),
         "--parameter", "ProcessorMemory=512", "--no-progress"]
    )  # fmt: skip
    assert code == 1
    assert "parameter 'ProcessorMemory': the template declares no such parameter" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("signum", "code", "said"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_ctrl_c_or_kill_stops_server_and_workers(tmp_path, signum, code, said):
    # Given a run in progress (a graph big enough to still be running after its workers have started)
    process = subprocess.Popen(
        [sys.executable, "-m", "jobgraph.cli", "run", "--generate", "40", "--seed", "2", "--out", str(tmp_path),
         "--scenarios", "50", "--template", str(TEMPLATE), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        # a shell's background job (CI) ignores SIGINT, and children inherit that; a terminal's does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    workers = started_children(process, 3)
    # When the user presses Ctrl-C (SIGINT to the whole process group, as a terminal does) or kills it
    os.kill(process.pid, signum)
    if signum == signal.SIGINT:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    # then the command exits 130 (143), and no worker process is left behind
    assert process.returncode == code, err
    assert said in err
    time.sleep(0.5)
    assert [pid for pid in workers if alive(pid)] == []


def test_progress_bar_shows_jobs_in_flight_retries_and_dlq(tmp_path, capsys):
    sequences = generate_sequences(2, seed=8)
    target = LocalTarget(LocalOptions(template=TEMPLATE), Output(tmp_path, progress_bar=True))
    outcome = execute(QueueGraph(sequences), target, RunSpec("bar", "default", 20, 1))
    err = capsys.readouterr().err
    assert f"{outcome.jobs}/{outcome.jobs}" in err  # the bar ends full
    assert "in_flight=" in err and "retries=" in err and "dlq=" in err


def test_generated_graph_option_feeds_run_and_solve_alike(tmp_path, capsys):
    assert main(["solve", "--generate", "3", "--seed", "4", "--out", str(tmp_path / "s"), "--scenarios", "20",
                 "--no-progress"]) == 0  # fmt: skip
    assert main(["run", "--generate", "3", "--seed", "4", "--out", str(tmp_path / "r"), "--scenarios", "20",
                 "--template", str(TEMPLATE), "--no-progress", "--max-workers", "2"]) == 0  # fmt: skip
    capsys.readouterr()
    assert_same_run(read_run(tmp_path / "r" / "example"), read_run(tmp_path / "s" / "example"))
    merged = json.loads((tmp_path / "r" / "example" / "merged_percentiles.json").read_text())
    assert merged["sequences"] == 3
