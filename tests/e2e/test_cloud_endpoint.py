"""The local cloud as the AWS endpoint of every AWS tool: the real SAM CLI deploys each scenario into
`jobgraph cloud up`, the AWS run path runs it, `jobgraph cost` prices it, `sam delete` removes it.

One endpoint (a background process, as users start it) serves the whole module. The templates are deployed from
source (`sam deploy -t template.yaml`, no `sam build`: SAM zips the code folders as they are, the local runtime
finds the libraries the layers would hold in its own interpreter), which keeps each deploy to seconds; the built
deploy runs in `make codebuild-local`. Checked for each scenario: results equal to `jobgraph solve`, file for
file; the Lambda requests read from the REPORT lines in CloudWatch Logs equal the invocations the local runtime
made. Last, the endpoint is killed mid-run: the run fails with one clear line, OUT holds nothing half-written,
and no worker outlives the endpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobgraph.localcloud import daemon
from jobgraph.runs.scenarios import SCENARIOS
from tests.run_files import assert_same_run, read_run

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".venv-sam" / "bin" / "sam"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not SAM.exists(), reason="needs the SAM CLI in .venv-sam (make sam-cli; make test installs it)"),
]
REGION = "eu-west-1"
GRAPH = ["--generate", "4", "--seed", "7", "--scenarios", "200"]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cloud")
    state = daemon.up(directory)
    env = {**os.environ, **state.exports(), daemon.DIR_VARIABLE: str(directory)}
    env.pop("AWS_PROFILE", None)
    try:
        yield state, env, directory
    finally:
        daemon.down(directory)


def run(env, *command, timeout_s: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    if check:
        assert result.returncode == 0, f"{command[:3]}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def jobgraph(env, *args, **kwargs) -> subprocess.CompletedProcess:
    return run(env, sys.executable, "-m", "jobgraph.cli", *args, **kwargs)


def sam_deploy(env, scenario: int, stack: str) -> None:
    run(
        env, str(SAM), "deploy", "--template-file", str(SCENARIOS[scenario].template), "--stack-name", stack,
        "--config-file", str(ROOT / "samconfig.toml"), "--config-env", "local", "--s3-prefix", stack, "--region", REGION,
        "--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND", "--no-confirm-changeset",
        "--parameter-overrides", "Stage=dev", "TestRunId=e2e",
    )  # fmt: skip


def ecs_scale(env, stack: str, desired: int) -> str:
    script = ROOT / "scripts" / "ecs_service.py"
    return run(
        env, sys.executable, str(script), "--stack", stack, "--region", REGION, "scale", str(desired), "--wait"
    ).stdout


def status(state) -> dict:
    answer = daemon.query_status(state)
    assert answer is not None, "the endpoint does not answer"
    return answer


def test_cloud_status_env_and_a_second_up_name_the_running_endpoint(cloud):
    state, env, directory = cloud
    assert daemon.up(directory).pid == state.pid  # already up: the same endpoint, not a second one
    again = jobgraph(env, "cloud", "up", "--dir", str(directory)).stdout
    assert again.startswith(f"the local cloud is already running: {state.url} (pid {state.pid}, region ")
    assert f"export AWS_ENDPOINT_URL={state.url}\n" in again
    assert jobgraph(env, "cloud", "up", "--quiet", "--dir", str(directory)).stdout == ""
    status = jobgraph(env, "cloud", "status", "--dir", str(directory)).stdout
    assert f"local cloud: {state.url} (pid {state.pid}" in status and "worker processes" in status
    exports = jobgraph(env, "cloud", "env", "--dir", str(directory)).stdout
    assert f"export AWS_ENDPOINT_URL={state.url}\n" in exports and "export AWS_ACCESS_KEY_ID=testing" in exports


def test_cloud_status_says_when_nothing_runs(tmp_path):
    result = jobgraph(os.environ, "cloud", "status", "--dir", str(tmp_path), check=False)
    assert result.returncode == 1 and "the local cloud is not running" in result.stdout
    assert (
        jobgraph(os.environ, "cloud", "down", "--dir", str(tmp_path)).stdout.strip() == "the local cloud is not running"
    )


@pytest.mark.parametrize("scenario", [1, 2, 3])
def test_sam_deploy_run_cost_and_delete_on_the_endpoint(cloud, scenario, tmp_path):
    state, env, _directory = cloud
    stack = f"e2e-scenario-{scenario}"
    sam_deploy(env, scenario, stack)
    if scenario == 2:  # the service is deployed at DesiredCount 0, as on AWS: `make scale-up` starts workers
        assert "2 running, 0 pending" in ecs_scale(env, stack, 2)

    out = tmp_path / "out"
    jobgraph(env, "run", "--scenario", str(scenario), "--stack", stack, "--run-id", "e2e", "--out", str(out),
             "--no-progress", *GRAPH)  # fmt: skip
    jobgraph(env, "solve", "--run-id", "e2e", "--out", str(tmp_path / "solve"), "--no-progress", *GRAPH)
    assert_same_run(read_run(out / "e2e"), read_run(tmp_path / "solve" / "e2e"))

    # the usage read from CloudWatch (REPORT lines) is what the local runtime did
    record = json.loads((out / "e2e" / "run.json").read_text())
    invocations = status(state)["functions"]
    reported = record["usage"]["lambda"]
    names = {logical: f"{stack}-{suffix}" for logical, suffix in _function_names(scenario).items()}
    for logical, name in names.items():
        assert reported.get(logical, {}).get("requests", 0) == invocations[name]["invocations"], logical
    assert record["usage"]["dynamodb"]["wru"] > 0 and record["usage"]["sqs"]["requests_64kb"] >= 0
    if scenario == 2:  # the tasks' time as ECS reports it (DescribeTasks), a minute at least each
        assert record["usage"]["fargate"]["tasks"] >= 2 and record["usage"]["fargate"]["vcpu_hours"] >= 2 / 60 * 0.25
    if scenario == 3:
        assert record["usage"]["stepfunctions"]["transitions"] >= 5
    cost = jobgraph(env, "cost", str(out / "e2e")).stdout
    assert "Lambda" in cost and "$" in cost

    if scenario == 2:
        assert "0 running, 0 pending" in ecs_scale(env, stack, 0)
    run(env, str(SAM), "delete", "--stack-name", stack, "--region", REGION, "--no-prompts")
    after = status(state)
    assert stack not in [s["name"] for s in after["stacks"]]
    assert not [name for name in after["functions"] if name.startswith(stack)]
    assert after["pids"] == [], "a deleted stack's processes stop"


def _function_names(scenario: int) -> dict[str, str]:
    """Logical id -> physical name suffix of the functions the run invokes (the templates name them so)."""
    if scenario == 3:
        return {"PrepareRunFunction": "prepare-run", "StepTaskFunction": "step-task"}
    names = {"StartRunFunction": "start-run", "SchedulerFunction": "scheduler"}
    return names if scenario == 2 else {**names, "ProcessorFunction": "processor"}


def test_killing_the_endpoint_mid_run_fails_the_run_in_one_line_and_leaves_nothing_behind(cloud, tmp_path):
    state, env, directory = cloud
    stack = "e2e-killed"
    sam_deploy(env, 1, stack)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "jobgraph.cli", "run", "--stack", stack, "--run-id", "killed", "--out", str(out),
               "--no-progress", "--generate", "30", "--seed", "3", "--scenarios", "2000"]  # fmt: skip
    running = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # mid-run: the Processor has started on the jobs
            answer = status(state)
            if answer["functions"].get(f"{stack}-processor", {}).get("invocations", 0) >= 1:
                break
            time.sleep(0.5)
        workers = answer["pids"]
        assert workers, "the endpoint runs workers"
        os.kill(state.pid, signal.SIGKILL)
        _stdout, stderr = running.communicate(timeout=180)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode != 0
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert f"the AWS endpoint {state.url} stopped answering during run killed" in lines[0], lines[0]
    assert "Traceback" not in stderr
    assert not (out / "killed").exists(), "no half-written result"
    assert not [p for p in out.rglob("*") if p.is_file() and ".logs" not in p.parts]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and [pid for pid in workers if daemon._alive(pid)]:
        time.sleep(0.2)
    assert [pid for pid in workers if daemon._alive(pid)] == [], "workers do not outlive the endpoint"
    assert daemon.running(directory) is None
