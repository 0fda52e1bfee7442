"""Scenarios 2 and 3 are observable as scenario 1 is (issue 15.6): the status API answers about their runs and
runs their tasks, and their downstream triggers fire on a run's end — from the shared template pieces.

Scenario 2 through the CLI (`jobgraph run --scenario 2 --serve --triggers`, ECS workers as local processes);
scenario 3 in-process: its stack deployed into the local cloud, the run started through the API (an
execution of the state machine, run by moto's engine with the local Lambda runtime behind its tasks).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from jobgraph.core.models import route_job_id
from jobgraph.core.triggers import TriggerConfig
from jobgraph.localcloud import motopatches
from jobgraph.localcloud.faults import FaultPlan
from jobgraph.localcloud.runtime import LocalLambdaRuntime
from jobgraph.localcloud.server import LocalEndpoint
from jobgraph.localcloud.stack import deploy
from jobgraph.runs.stepfunctions import TaskInvoker
from jobgraph.sam.triggers import LOCAL_ACCOUNT, template_parameters

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def own_bus_trigger(stack: str) -> str:
    """A trigger that fires on every completed run, at the stack's own bus (source not matched by its rule)."""
    return f"""\
version: 1
triggers:
  - name: announce
    outcomes: [COMPLETED]
    target:
      type: eventbridge
      event_bus_arn: arn:aws:events:eu-west-1:{LOCAL_ACCOUNT}:event-bus/{stack}-runs
      source: jobgraph.downstream
    payload: {{run: "${{run_id}}"}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


def test_scenario_2_serves_the_api_and_fires_its_triggers(tmp_path):
    config = tmp_path / "triggers.yaml"
    config.write_text(own_bus_trigger("scenario-2-local"))
    port = free_port()
    command = [
        sys.executable, "-m", "jobgraph.cli", "run", "--scenario", "2", "--generate", "2", "--seed", "4",
        "--scenarios", "20", "--run-id", "observed-2", "--out", str(tmp_path / "out"), "--no-progress",
        "--ecs-workers", "2", "--triggers", str(config), "--serve", "--api-port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "run done; the local cloud stays up" in line:
                break
        output = "".join(lines)
        assert "run done; the local cloud stays up" in output, output
        # the run's end was announced by scenario 2's Scheduler and the shared trigger function fired
        assert any(line.split()[:2] == ["FIRED", "announce"] for line in lines), output
        base = f"http://127.0.0.1:{port}"
        run = httpx.get(f"{base}/runs/observed-2", timeout=10).json()
        assert run["status"] == "COMPLETED" and run["progress"]["jobs_by_status"]["PENDING"] == 0
        assert [r["run_id"] for r in httpx.get(f"{base}/runs?status=COMPLETED", timeout=10).json()["runs"]] == [
            "observed-2"
        ]
        job = httpx.get(f"{base}/status/{route_job_id('observed-2', 0, 0)}", timeout=10).json()
        assert job["status"] == "COMPLETED" and set(job["files"]) == {"delays"}
        # a task is accepted onto the workers' queue and followed (`run --serve` stops the run's ECS workers
        # with the run, so here it stays QUEUED, with an estimate from its queue; scenario 3 below completes one)
        task = httpx.post(f"{base}/tasks", json={"work_duration_ms": 1}, headers={"Idempotency-Key": "s2-task-1"})
        assert task.status_code == 202, task.text
        queued = httpx.get(f"{base}/tasks/{task.json()['task_id']}", timeout=10).json()
        assert queued["status"] == "QUEUED" and queued["estimated_time_seconds"] >= 1
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0


def test_scenario_3_starts_runs_and_tasks_through_the_api_and_fires_its_triggers(tmp_path, seed_000_sequence):
    import yaml

    from jobgraph.api.app import create_app
    from jobgraph.services.settings import ApiSettings
    from jobgraph.services.status import ApiDeps

    stack_name = "observed-3"
    config = TriggerConfig.model_validate(yaml.safe_load(own_bus_trigger(stack_name)))
    with LocalEndpoint() as endpoint:
        parameters = template_parameters(config, endpoint.region, LOCAL_ACCOUNT)
        stack = deploy(endpoint, ROOT / "templates" / "scenario-3.yaml", stack_name=stack_name, parameters=parameters)
        runtime = LocalLambdaRuntime(endpoint, stack, tmp_path / "logs").start()
        motopatches.set_lambda_invoker(TaskInvoker(runtime, FaultPlan(), clean_from_retry=3))
        try:
            from jobgraph.runs.serve import LocalAsyncLambda

            api_function = runtime.functions["ApiFunction"]
            settings = ApiSettings(**{k: v for k, v in api_function.environment.items() if k.isupper()})
            local_lambda = LocalAsyncLambda(runtime)
            deps = ApiDeps.from_settings(
                settings, client=lambda service: local_lambda if service == "lambda" else endpoint.client(service)
            )
            api = TestClient(create_app(lambda: deps), follow_redirects=False)

            started = api.post("/runs", json={"run_id": "r3", "sequences": [seed_000_sequence], "scenarios": 20})
            assert started.status_code == 202 and started.json()["scenario"] == 3, started.text
            run = wait_for(lambda: (r := api.get("/runs/r3")).status_code == 200
                           and r.json()["status"] == "COMPLETED" and r.json(), 180, "run r3")  # fmt: skip
            assert run["progress"]["jobs_by_status"] == {"COMPLETED": 4, "PENDING": 0}
            assert set(run["timings"]["processing_ms_by_stage"]) == {"FIRST", "LAST", "AGGREGATION", "MERGE"}
            # the AnnounceRunCompleted state published the run's end; the shared trigger function fired on it
            fired = wait_for(lambda: deps.table.triggers_of_run("r3"), 60, "trigger")
            assert [(t["trigger"], t["status"]) for t in fired] == [("announce", "FIRED")]
            assert api.get("/download/r3-merge/merged_percentiles").status_code == 302

            task = api.post("/tasks", json={"work_duration_ms": 1}, headers={"Idempotency-Key": "s3-task-1"}).json()
            url = f"/tasks/{task['task_id']}"
            done = wait_for(lambda: (t := api.get(url).json())["status"] == "COMPLETED" and t, 90, "task on StepTask")
            assert done["attempts"] == 1 and done["download_url"]
        finally:
            motopatches.set_lambda_invoker(None)
            runtime.stop()
