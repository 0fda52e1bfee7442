"""`jobgraph run --serve --triggers`: the status API served beside a local run and kept up after it, and the
downstream triggers fired by the local runtime on the run's end (one fires, one fails into the trigger DLQ)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

TRIGGERS = """\
version: 1
triggers:
  - name: announce
    outcomes: [COMPLETED]
    target:
      type: eventbridge
      # the local stack's own bus; source jobgraph.downstream does not match its run-end rule
      event_bus_arn: arn:aws:events:eu-west-1:123456789012:event-bus/scenario-1-local-runs
      source: jobgraph.downstream
    payload: {run: "${run_id}", sequences: "${sequences_total}"}
  - name: missing-queue
    outcomes: [COMPLETED]
    target: {type: sqs, queue_url: "https://sqs.eu-west-1.amazonaws.com/123456789012/does-not-exist"}
  - name: only-on-failure
    outcomes: [FAILED]
    target: {type: sns, topic_arn: "arn:aws:sns:eu-west-1:123456789012:nowhere"}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_run_serve_with_triggers(tmp_path):
    config = tmp_path / "triggers.yaml"
    config.write_text(TRIGGERS)
    port = free_port()
    command = [
        sys.executable, "-m", "jobgraph.cli", "run", "--generate", "2", "--seed", "3", "--scenarios", "50",
        "--run-id", "served", "--out", str(tmp_path / "out"), "--no-progress",
        "--triggers", str(config), "--serve", "--api-port", str(port),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        # a background CI shell ignores SIGINT; the child must not inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "run done; the local cloud stays up" in line:
                break
        output = "".join(lines)
        assert "run done; the local cloud stays up" in output, output
        # Then the report lists what was triggered: one fired, one failed into the trigger DLQ
        assert "downstream triggers (trigger DLQ 1):" in output
        assert any(line.split()[:2] == ["FIRED", "announce"] for line in lines), output
        assert any(line.split()[:3] == ["NOT", "FIRED", "missing-queue"] for line in lines), output
        assert "only-on-failure" not in output
        assert any(line.split() == ["ALARM", "scenario-1-local-trigger-dlq-messages"] for line in lines), output
        # and the API still answers after the run, on the same local cloud
        base = f"http://127.0.0.1:{port}"
        run = httpx.get(f"{base}/runs/served", timeout=10).json()
        assert run["status"] == "COMPLETED" and run["progress"]["jobs_by_status"]["PENDING"] == 0
        links = httpx.get(f"{base}/runs/served/results", timeout=10).json()
        merged = httpx.get(links["merged_percentiles"], timeout=10).json()
        assert merged["run_id"] == "served" and sorted(links["sequences"]) == ["0", "1"]
        assert httpx.get(f"{base}/runs/unknown", timeout=10).status_code == 404
        task = httpx.post(f"{base}/tasks", json={}, headers={"Idempotency-Key": "e2e-task-1"}, timeout=10)
        assert task.status_code == 202, task.text
        record = json.loads((tmp_path / "out" / "served" / "run.json").read_text())
        assert record["run_id"] == "served"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0
