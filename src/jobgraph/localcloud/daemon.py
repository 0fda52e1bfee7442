"""`jobgraph cloud up | status | env | down`: one long-lived local cloud on a loopback port.

``up`` starts this module as a background process (its own session, so the terminal's Ctrl-C and hang-up do not
reach it): moto's server with the local cloud's patches, an artifacts bucket for `sam deploy`, and the
controller (controller.py) that runs whatever is deployed into it. It writes ``<dir>/cloud.json`` (pid, URL,
region, log) once it answers, ``<dir>/cloud.env`` (the shell exports) and ``<dir>/cloud.mk`` (the same for
make); ``status`` asks it what runs; ``down`` sends SIGTERM and waits: the controller stops every poller,
worker and ECS task it started (tasks get their stopTimeout), then the server stops and the files go.

Every process the local cloud starts is tied to it (lifetime.py's lifeline), so even a ``kill -9`` of the
endpoint leaves no worker behind. State (stacks, queues, tables, logs) lives in memory while it is up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jobgraph.core.errors import JobGraphError

DEFAULT_DIR = Path(".jobgraph")
DIR_VARIABLE = "JOBGRAPH_CLOUD_DIR"
ARTIFACTS_BUCKET = "jobgraph-local-sam-artifacts"  # samconfig.toml's [local.deploy.parameters] s3_bucket
STATUS_PATH = "/_jobgraph/status"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 180.0  # an ECS task's stopTimeout is up to 120 s


class CloudError(JobGraphError):
    """The local cloud could not be started, reached or stopped."""


def cloud_dir(given: Path | None = None) -> Path:
    return Path(given or os.environ.get(DIR_VARIABLE) or DEFAULT_DIR)


@dataclass(frozen=True)
class CloudState:
    pid: int
    url: str
    region: str
    log: str
    started_at: str

    @classmethod
    def read(cls, directory: Path) -> CloudState | None:
        try:
            return cls(**json.loads((directory / "cloud.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def exports(self) -> dict[str, str]:
        from jobgraph.localcloud.server import FAKE_CREDENTIALS

        return {
            "AWS_ENDPOINT_URL": self.url,
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "SAM_CLI_TELEMETRY": "0",
        }

    def shell_exports(self) -> str:
        """``exports()`` as shell lines (cloud.env; what `jobgraph cloud up` and `cloud env` print)."""
        return "".join(f"export {key}={value}\n" for key, value in self.exports().items())


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _write_state(directory: Path, state: CloudState) -> None:
    exports = state.exports()
    _write_atomic(directory / "cloud.env", state.shell_exports())
    _write_atomic(directory / "cloud.mk", "".join(f"export {k} := {v}\n" for k, v in exports.items()))
    _write_atomic(directory / "cloud.json", json.dumps(state.__dict__, indent=2) + "\n")


def _remove_state(directory: Path) -> None:
    for name in ("cloud.json", "cloud.env", "cloud.mk"):
        (directory / name).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def query_status(state: CloudState, timeout_s: float = 5.0) -> dict | None:
    """What the running endpoint says about itself, or None if it does not answer."""
    try:
        with urllib.request.urlopen(state.url + STATUS_PATH, timeout=timeout_s) as response:
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def running(directory: Path) -> tuple[CloudState, dict] | None:
    state = CloudState.read(directory)
    if state is None or not _alive(state.pid):
        return None
    answer = query_status(state)
    if answer is None or answer.get("pid") != state.pid:
        return None
    return state, answer


# --- the endpoint process ---------------------------------------------------------------------------------------
def serve(port: int, region: str, directory: Path) -> int:
    """Run the local cloud until SIGTERM/SIGINT (the process `up` starts)."""
    from jobgraph.localcloud.controller import Controller
    from jobgraph.localcloud.server import LocalEndpoint, allow_loopback_only, isolate_from_real_aws

    isolate_from_real_aws()
    allow_loopback_only()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    work_dir = directory / "cloud"
    shutil.rmtree(work_dir, ignore_errors=True)  # state lives while it is up: each `up` starts afresh
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    holder: dict = {}
    endpoint = LocalEndpoint(region=region, port=port, routes={STATUS_PATH: lambda: _status(holder)})
    endpoint.start()
    try:
        controller = Controller(endpoint, work_dir).start()
        holder.update(endpoint=endpoint, controller=controller, started_at=started_at)
        endpoint.client("s3").create_bucket(
            Bucket=ARTIFACTS_BUCKET, CreateBucketConfiguration={"LocationConstraint": region}
        )
        state = CloudState(os.getpid(), endpoint.url, region, str(directory / "cloud.log"), started_at)
        _write_state(directory, state)
        print(f"local cloud up: {endpoint.url} (pid {os.getpid()})", flush=True)
        stop.wait()
        print("local cloud stopping", flush=True)
        controller.stop()
    finally:
        _remove_state(directory)
        endpoint.stop()
    print("local cloud stopped", flush=True)
    return 0


def _status(holder: dict) -> dict:
    endpoint, controller = holder.get("endpoint"), holder.get("controller")
    if controller is None:
        return {"pid": os.getpid(), "ready": False}
    from moto.cloudformation.models import cloudformation_backends

    from jobgraph.localcloud.inventory import regional_backends

    with endpoint.lock:
        stacks = [
            {"name": stack.name, "status": stack.status, "region": region}
            for _account, region, backend in regional_backends(cloudformation_backends)
            for stack in list(backend.stacks.values())
        ]
    return {
        "pid": os.getpid(),
        "ready": True,
        "url": endpoint.url,
        "started_at": holder["started_at"],
        "stacks": stacks,
        "requests": sum(endpoint.meter.snapshot(origin)["total_requests"] for origin in ("workload", "harness")),
        **controller.status(),
    }


# --- the commands -----------------------------------------------------------------------------------------------
def up(directory: Path | None = None, port: int = 0, region: str = "eu-west-1") -> CloudState:
    """Start the local cloud in the background (or find the one running); returns its state."""
    directory = cloud_dir(directory)
    found = running(directory)
    if found is not None:
        return found[0]
    directory.mkdir(parents=True, exist_ok=True)
    _remove_state(directory)
    log_path = directory / "cloud.log"
    command = [sys.executable, "-m", "jobgraph.localcloud.daemon", "--port", str(port), "--region", region]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*command, "--dir", str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # not in the terminal's process group: Ctrl-C/hang-up there do not stop it
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CloudError(f"the local cloud did not start: {_tail(log_path, 1).removeprefix('error: ')}")
        found = running(directory)
        if found is not None and found[0].pid == process.pid:
            return found[0]
        time.sleep(0.2)
    process.terminate()
    raise CloudError(f"the local cloud did not answer within {START_TIMEOUT_S:.0f} s: {_tail(log_path)}")


def down(directory: Path | None = None, timeout_s: float = STOP_TIMEOUT_S) -> str:
    """Stop the running local cloud and everything it started; returns what was done."""
    directory = cloud_dir(directory)
    state = CloudState.read(directory)
    if state is None or not _alive(state.pid):
        _remove_state(directory)
        return "the local cloud is not running"
    answer = query_status(state) or {}
    children = [pid for pid in answer.get("pids", []) if isinstance(pid, int)]
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(state.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    forced = _alive(state.pid)
    if forced:  # its children follow it (lifeline); what still lives after that is killed by pid
        os.kill(state.pid, signal.SIGKILL)
        time.sleep(0.5)
    for pid in children:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    _remove_state(directory)
    how = "killed after not stopping" if forced else "stopped"
    return f"local cloud {how} (pid {state.pid}, {len(children)} worker processes)"


def _tail(path: Path, lines: int = 6) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return f"(no log at {path})"


def status_lines(state: CloudState, answer: dict) -> list[str]:
    """`jobgraph cloud status`: what the endpoint serves and runs."""
    lines = [f"local cloud: {state.url} (pid {state.pid}, up since {state.started_at}, region {state.region})"]
    lines.append(f"  log {state.log}; {answer.get('requests', 0)} API requests served")
    stacks = answer.get("stacks", [])
    listed = ", ".join(f"{stack['name']} {stack['status']}" for stack in stacks)
    lines.append(f"  stacks: {listed or 'none'}")
    for name, function in sorted(answer.get("functions", {}).items()):
        lines.append(
            f"  λ {name}: {function['invocations']} invocations ({function['cold_starts']} cold), "
            f"{function['errors']} errors, {function['workers']} direct workers"
        )
    for mapping in answer.get("mappings", {}).values():
        lines.append(f"  ⇢ {mapping['queue']} → {mapping['function']}: {mapping['workers']} pollers")
    for name, service in sorted(answer.get("services", {}).items()):
        lines.append(f"  ECS {name}: {service['running']} running / {service['desired']} desired")
    for name, problem in sorted(answer.get("failures", {}).items()):
        lines.append(f"  ! {name}: {problem}")
    lines.append(f"  {len(answer.get('pids', []))} worker processes")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the local cloud's endpoint process (started by `jobgraph cloud up`)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--region", default="eu-west-1")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    try:
        return serve(args.port, args.region, args.dir)
    except (OSError, JobGraphError) as exc:  # cannot listen, cannot write its state: said in one line
        print(f"error: {exc}", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
