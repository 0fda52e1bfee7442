"""`jobgraph run --serve --triggers`: the status API served beside a local run and kept up after it, the downstream
workflow fired by the local runtime on the run's end (one trigger fires, one fails into the trigger DLQ), then —
on the same deployed stack, no redeploy — a new config pushed with `jobgraph triggers push` holds the next run
in PENDING_APPROVAL until `jobgraph triggers approve`, which fires its on_approval trigger."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import boto3
import httpx
import pytest

from tests.processes import jobgraph_cli, served_run, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

FIRST = """\
workflows:
  default:                      # the job name: runs started with the default --test-run-id
    on_success:
      - type: eventbridge
        name: announce
        # the local stack's own bus; source jobgraph.orchestrator matches none of its rules
        event_bus: scenario-1-local-runs
      - type: sqs
        name: missing-queue
        queue_url: https://sqs.eu-west-1.amazonaws.com/123456789012/does-not-exist
    on_failure:
      - {type: sns, name: only-on-failure, topic_arn: "arn:aws:sns:eu-west-1:123456789012:nowhere"}
"""
SECOND = """\
workflows:
  default:
    approval:
      when: [{field: metrics.scenarios, above: 10}]
      expires_after_hours: 1
    on_approval:
      - type: sqs
        name: after-approval
        queue_url: https://sqs.eu-west-1.amazonaws.com/123456789012/approved-runs
"""


def jobgraph(*args: str, endpoint: str) -> subprocess.CompletedProcess:
    """A second `jobgraph` process talking to the served local cloud, as a user's shell would."""
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}  # fmt: skip
    env.pop("AWS_PROFILE", None)
    return jobgraph_cli(*args, cwd=ROOT, env=env, timeout_s=120)


def test_run_serve_with_triggers_then_a_pushed_config_and_an_approval(tmp_path):
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(FIRST)
    second.write_text(SECOND)
    args = [
        "--generate", "2", "--seed", "3", "--scenarios", "50", "--run-id", "served", "--out", str(tmp_path / "out"),
        "--no-progress", "--triggers", str(first), "--parameter", "TriggerConfigCacheSeconds=1",
    ]  # fmt: skip
    with served_run(args, ready_within_s=240) as served:
        base, lines, output = served.base, served.lines, served.output
        # Then the report lists what was triggered: one fired, one failed into the trigger DLQ
        assert "downstream triggers (trigger DLQ 1):" in output
        assert any(line.split()[:2] == ["FIRED", "default/on_success/announce"] for line in lines), output
        assert any(line.split()[:3] == ["NOT", "FIRED", "default/on_success/missing-queue"] for line in lines), output
        assert "only-on-failure" not in output
        assert any(line.split() == ["ALARM", "scenario-1-local-trigger-dlq-messages"] for line in lines), output
        # and the API still answers after the run, on the same local cloud
        run = httpx.get(f"{base}/runs/served", timeout=10).json()
        assert run["status"] == "COMPLETED" and run["progress"]["jobs_by_status"]["PENDING"] == 0
        links = httpx.get(f"{base}/runs/served/results", timeout=10).json()
        merged = httpx.get(links["merged_percentiles"], timeout=10).json()
        assert merged["run_id"] == "served" and sorted(links["sequences"]) == ["0", "1"]
        assert httpx.get(f"{base}/runs/unknown", timeout=10).status_code == 404
        assert httpx.get(f"{base}/runs/served/approval", timeout=10).status_code == 404  # no approval asked
        task = httpx.post(f"{base}/tasks", json={}, headers={"Idempotency-Key": "e2e-task-1"}, timeout=10)
        assert task.status_code == 202, task.text
        record = json.loads((tmp_path / "out" / "served" / "run.json").read_text())
        assert record["run_id"] == "served"

        # When a new config is pushed to the running stack (no deploy: the stack was deployed once, above)
        endpoint = re.search(r"local AWS endpoint: (http://127\.0\.0\.1:\d+)", output).group(1)
        pushed = jobgraph("triggers", "push", str(second), "--stack", "scenario-1-local", "--force", endpoint=endpoint)
        assert pushed.returncode == 0, pushed.stderr
        # (the stack's role was granted the first config's targets only: push says so; IAM is not enforced locally)
        assert "warning: stack scenario-1-local does not allow" in pushed.stdout and "approved-runs" in pushed.stdout
        assert "pushed s3://scenario-1-local-data-123456789012/config/triggers.json" in pushed.stdout
        shown = jobgraph("triggers", "show", "--stack", "scenario-1-local", endpoint=endpoint)
        assert "in effect: s3://scenario-1-local-data-123456789012/config/triggers.json" in shown.stdout, shown
        assert re.search(r"on_approval\s+after-approval -> sqs", shown.stdout), shown.stdout
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="eu-west-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        approved_queue = sqs.create_queue(QueueName="approved-runs")["QueueUrl"]
        time.sleep(1.5)  # TriggerConfigCacheSeconds=1: the trigger function's cached first config is stale by now
        # Then the next run follows it: its scenarios fail the gate, it waits for approval, nothing fires
        started = httpx.post(f"{base}/runs", json={"run_id": "gated", "generate": {"count": 2, "seed": 4}, "scenarios": 50},
                             timeout=30)  # fmt: skip
        assert started.status_code == 202, started.text

        def approval():
            response = httpx.get(f"{base}/runs/gated/approval", timeout=10)
            return response.json() if response.status_code == 200 else None

        waiting = wait_for(approval, "the gated run's approval request", 90)
        assert waiting["status"] == "PENDING_APPROVAL" and waiting["reasons"] == ["metrics.scenarios = 50 > 10.0"]
        assert sqs.receive_message(QueueUrl=approved_queue).get("Messages") is None
        # When someone approves it from the command line, Then on_approval fires once, with the decision
        approved = jobgraph("triggers", "approve", "gated", "--stack", "scenario-1-local", "--by", "e2e-tester",
                            endpoint=endpoint)  # fmt: skip
        assert approved.returncode == 0, approved.stderr
        assert "gated (default): APPROVED by e2e-tester; its on_approval triggers fire now" in approved.stdout

        def delivered():
            return sqs.receive_message(QueueUrl=approved_queue, WaitTimeSeconds=1).get("Messages")

        (message,) = wait_for(delivered, "the on_approval trigger's message", 90)
        body = json.loads(message["Body"])
        assert body["triggered_by_run_id"] == "gated" and body["source_event"]["approval"]["decided_by"] == "e2e-tester"
        # the source event's metrics are the run's merged percentiles, as the trigger function read them from S3
        gated_merged = httpx.get(httpx.get(f"{base}/runs/gated/results", timeout=10).json()["merged_percentiles"],
                                 timeout=10).json()  # fmt: skip
        metrics = body["source_event"]["metrics"]
        assert metrics["curfew_breach_probability"] == gated_merged["curfew_breach_probability"]
        assert metrics["final_arrival_delay_min"] == gated_merged["final_arrival_delay_min"]
        shown = jobgraph("triggers", "show", "--stack", "scenario-1-local", "--run", "gated", endpoint=endpoint)
        assert "approval (default): APPROVED by e2e-tester" in shown.stdout, shown
        assert re.search(r"FIRED\s+on_approval\s+after-approval -> sqs \(attempts 1\)", shown.stdout), shown.stdout
