"""`jobgraph load` (the perf runner) on the embedded local cloud: every job completes, with a record and cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobgraph.cli.main import main
from tests.price_oracle import assert_cost_is_the_priced_usage

pytestmark = pytest.mark.e2e


def test_load_runs_every_job_and_reports_throughput_and_cost(tmp_path, capsys):
    code = main(
        ["load", "--messages", "40", "--work-duration-ms", "30", "--data-size-kb", "2", "--concurrency", "3",
         "--groups", "8", "--run-id", "burst", "--out", str(tmp_path), "--no-progress"]
    )  # fmt: skip
    report = capsys.readouterr().out
    assert code == 0, report
    assert "40 jobs of 30 ms / 2 KiB, 3 senders, 8 message groups" in report and "jobs/s" in report
    assert "per 1,000 jobs" in report and "dead-letter queues: incoming DLQ 0, outgoing DLQ 0" in report
    record = json.loads(Path(tmp_path, "burst", "run.json").read_text())
    assert record["kind"] == "load" and record["jobs"] == 40 and record["route_jobs"] == 40
    synthetic = record["stage_ms"]["SYNTHETIC"]
    assert synthetic["count"] == 40 and synthetic["p50"] >= 30  # each job worked its 30 ms
    requests = record["api_requests"]["requests"]
    # sent 10 per call (40 jobs: 4 calls), completions batched too: no single-message send anywhere;
    # and the Processor wrote each job's 2 KiB once
    assert requests["sqs"]["SendMessageBatch"] >= 4 and "SendMessage" not in requests["sqs"]
    assert requests["s3"]["PutObject"] == 40
    bill = assert_cost_is_the_priced_usage(record)
    assert record["usage"]["s3"]["put"] == 40 and set(bill) >= {"Lambda", "SQS", "S3"}


def test_load_limits_are_clear_errors(tmp_path, capsys):
    assert main(["load", "--messages", "1", "--data-size-kb", "999999", "--out", str(tmp_path)]) != 0
    assert "--data-size-kb at most 10240" in capsys.readouterr().err
