"""ECS, locally: an ECS service runs as local processes of its task definition's command.

moto's ECS keeps clusters, services and task definitions but runs nothing. For every active service the local
cloud's controller (controller.py) reads the service and its task definition back from moto (the container's
command and environment, its stopTimeout) and runs desired-count copies of the command in a
``LocalEcsService``: each a process of the local Python the command names (``python3.13`` → interpreters.py, as
functions' Runtime), with the container's environment plus the local endpoint (AWS_ENDPOINT_URL, fake
credentials), so the worker's boto3 code talks to moto unchanged. The command goes through ecs/task.py (loopback
guard, fault injector). No container image is needed: the command runs from the installed source.

Like ECS, a task that exits (killed by ``--kill-rate``, crashed) is replaced and the restart counted; a task
that keeps failing at start (exit code other than the injected kill's, 3 times in a row) marks the service
failed with its log's tail. ``scale()`` follows UpdateService's desired count; ``stop()`` and a scale-down send
SIGTERM, wait the container's stopTimeout (at most LOCAL_STOP_TIMEOUT_S), then kill, as ECS does. Each task is
tied to this process (lifetime.py): its own process group, and it dies with the parent, even a parent killed
with SIGKILL; a task also exits by itself LOCAL_STOP_TIMEOUT_S after a SIGTERM.

Local differences (the local time scale, localcloud/timescale.py, as for the Lambda runtime): the long poll is
2 s instead of 20 s, a failed job backs off from 1 s instead of RETRY_BACKOFF_BASE_SECONDS, and a killed task's
messages are visible again after 4 s instead of VISIBILITY_TIMEOUT_SECONDS, so runs, retries and shutdown take
seconds.
The task's own output (Powertools JSON logs) is ``<log_dir>/<service>-<n>.log`` (and its awslogs group in
CloudWatch Logs); the report reads its "batch processed" lines for queue waits and batch times.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import jobgraph
from jobgraph.core.errors import JobGraphError
from jobgraph.localcloud import lifetime
from jobgraph.localcloud.ecs.task import FAULT_PLAN_VARIABLE, STOP_GRACE_VARIABLE
from jobgraph.localcloud.faults import FaultPlan
from jobgraph.localcloud.lambda_runtime.interpreters import interpreter_for
from jobgraph.localcloud.lambda_runtime.sandbox import KILL_EXIT_CODE
from jobgraph.localcloud.server import LocalEndpoint
from jobgraph.localcloud.timescale import LOCAL_RETRY_DELAY_S

DEFAULT_TASKS = 2
# Local time scale (module docstring): short long polls, quick retries, and a killed task's batch visible again
# after 4 s instead of 2 minutes (the heartbeat keeps a running batch invisible meanwhile).
LOCAL_OVERRIDES = {
    "WAIT_TIME_SECONDS": "2",
    "RETRY_BACKOFF_BASE_SECONDS": str(LOCAL_RETRY_DELAY_S),
    "VISIBILITY_TIMEOUT_SECONDS": "4",
    "HEARTBEAT_SECONDS": "1",
    "PYTHONUNBUFFERED": "1",
}
CRASH_LOOP = 3
# ECS waits the container's stopTimeout (120 s in scenario 2) after SIGTERM; locally a task that has not finished
# its batch by then is killed after this, as the local time scale above (its messages are redelivered).
LOCAL_STOP_TIMEOUT_S = 10
MONITOR_INTERVAL_S = 0.2


class TaskStartError(JobGraphError):
    """A local ECS task keeps exiting (its command cannot run here); the run cannot progress."""


@dataclass(frozen=True)
class TaskSpec:
    """What the local cloud needs to run one ECS service's tasks."""

    service_name: str
    cluster: str
    task_definition_arn: str
    container: str
    command: tuple[str, ...]
    environment: dict[str, str]
    stop_timeout_s: int
    queue_url: str  # INCOMING_QUEUE_URL of the container, for the fault injector's redrive limit
    cpu_units: int = 256  # the task definition's, for Fargate's vCPU-hours (1024 units = 1 vCPU)
    memory_mb: int = 512
    architecture: str = "x86_64"


def _max_receive_count(endpoint: LocalEndpoint, queue_url: str) -> int | None:
    if not queue_url:
        return None
    attributes = endpoint.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
    policy = attributes.get("Attributes", {}).get("RedrivePolicy")
    return int(json.loads(policy)["maxReceiveCount"]) if policy else None


def local_command(spec: TaskSpec) -> list[str]:
    """``python3.13 -m module args`` → the local interpreter running ecs/task.py, which runs the module."""
    if len(spec.command) < 3 or not re.fullmatch(r"python\d+\.\d+", spec.command[0]) or spec.command[1] != "-m":
        raise TaskStartError(
            f"{spec.service_name}: container {spec.container} command {list(spec.command)}: the local cloud runs "
            "`python3.x -m <module> [args]` commands only"
        )
    interpreter = interpreter_for(spec.command[0], spec.service_name)
    return [interpreter, "-m", "jobgraph.localcloud.ecs.task", *spec.command[1:]]


@dataclass
class TaskRun:
    """One ECS task as ECS reports it (DescribeTasks): each start of a slot is a task of its own, as a replaced
    task is a new one on ECS, billed by Fargate per second from its start, at least a minute."""

    task_id: str
    started_at: datetime
    stopped_at: datetime | None = None
    exit_code: int | None = None
    stopped_reason: str = ""


@dataclass
class LocalTask:
    slot: int
    log_path: Path
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    starts: int = 0
    failed_starts: int = 0  # consecutive exits other than an injected kill
    run: TaskRun | None = None  # the ECS task its process is


def _end_run(task: LocalTask, exit_code: int | None, reason: str) -> None:
    if task.run is not None and task.run.stopped_at is None:
        task.run.stopped_at, task.run.exit_code, task.run.stopped_reason = datetime.now(UTC), exit_code, reason


@dataclass
class LocalEcsService:
    """One ECS service: ``tasks`` local processes, replaced when they exit, stopped like ECS stops tasks."""

    spec: TaskSpec
    endpoint: LocalEndpoint
    log_dir: Path
    tasks: int = DEFAULT_TASKS
    faults: FaultPlan = field(default_factory=FaultPlan)
    restarts: int = 0
    peak_tasks: int = 0
    exit_codes: Counter = field(default_factory=Counter)
    fatal: str | None = None
    _tasks: list[LocalTask] = field(default_factory=list)
    _command: list[str] = field(default_factory=list)
    _environment: dict[str, str] = field(default_factory=dict)
    _retired: list[LocalTask] = field(default_factory=list)  # stopped by a scale-down
    runs: list[TaskRun] = field(default_factory=list)  # every task started, running or stopped
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _monitor: threading.Thread | None = None
    _next_slot: int = 0

    def start(self) -> LocalEcsService:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._command = local_command(self.spec)
        package_root = str(Path(jobgraph.__file__).resolve().parents[1])
        self._environment = {
            **os.environ,
            **self.spec.environment,
            **self.endpoint.environment(),
            **LOCAL_OVERRIDES,
            # jobgraph importable under any interpreter of the command's version (as the image's site-packages)
            "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        }
        self._max_receive_count = _max_receive_count(self.endpoint, self.spec.queue_url)
        with self._lock:
            self.peak_tasks = max(self.peak_tasks, self.tasks)
            self._tasks = [self._new_task() for _ in range(self.tasks)]
            for task in self._tasks:
                self._launch(task)
        self._monitor = threading.Thread(target=self._watch, daemon=True, name=f"{self.spec.service_name}-monitor")
        self._monitor.start()
        return self

    def _new_task(self) -> LocalTask:
        slot, self._next_slot = self._next_slot, self._next_slot + 1
        return LocalTask(slot, self.log_dir / f"{self.spec.service_name}-{slot}.log")

    def scale(self, desired: int) -> None:
        """Follow a new desired count (UpdateService): start tasks up to it, stop those above it as ECS does
        (SIGTERM, the container's stopTimeout, then SIGKILL), the newest first, in the background."""
        with self._lock:
            if self._stop.is_set():
                return
            self.tasks = desired
            self.peak_tasks = max(self.peak_tasks, desired)
            while len(self._tasks) < desired:
                task = self._new_task()
                self._tasks.append(task)
                self._launch(task)
            extra, self._tasks = self._tasks[desired:], self._tasks[:desired]
            self._retired.extend(extra)
        if extra:
            threading.Thread(
                target=self._stop_tasks, args=(extra,), daemon=True, name=f"{self.spec.service_name}-stop"
            ).start()

    def running(self) -> int:
        """Tasks whose process is alive (ECS's runningCount)."""
        with self._lock:
            return sum(1 for t in self._tasks if t.process is not None and t.process.poll() is None)

    def _launch(self, task: LocalTask) -> None:
        seed = self.faults.seed * 1_000_003 + task.slot * 1009 + task.starts
        plan = {
            "plan": {
                "fail_rate": self.faults.fail_rate,
                "duplicate_rate": self.faults.duplicate_rate,
                "kill_rate": self.faults.kill_rate,
                "seed": self.faults.seed,
            },
            "seed": seed,
            "max_receive_count": self._max_receive_count,
        }
        environment = {**self._environment, FAULT_PLAN_VARIABLE: json.dumps(plan)}
        environment[STOP_GRACE_VARIABLE] = str(self.stop_timeout_s)
        with open(task.log_path, "ab", buffering=0) as log:
            task.process = lifetime.spawn(
                self._command, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        task.started_at = time.monotonic()
        task.starts += 1
        task.run = TaskRun(uuid.uuid4().hex, datetime.now(UTC))
        self.runs.append(task.run)

    def _watch(self) -> None:
        while not self._stop.wait(MONITOR_INTERVAL_S):
            with self._lock:
                tasks = list(self._tasks)
            for task in tasks:
                with self._lock:
                    if self._stop.is_set() or task.process is None or task not in self._tasks:
                        continue  # stopped, or retired by a scale-down meanwhile: not replaced
                    code = task.process.poll()
                    if code is None:
                        continue
                    self.exit_codes[code] += 1
                    _end_run(task, code, f"Essential container in task exited (exit code {code})")
                    task.failed_starts = 0 if code in (KILL_EXIT_CODE, -signal.SIGKILL) else task.failed_starts + 1
                    if task.failed_starts >= CRASH_LOOP:
                        self.fatal = (
                            f"ECS service {self.spec.service_name}: task {task.slot} exited with code {code} "
                            f"{task.failed_starts} times in a row: {_tail(task.log_path)}"
                        )
                        task.process = None
                        continue
                    self.restarts += 1
                    self._launch(task)

    @property
    def stop_timeout_s(self) -> float:
        return min(self.spec.stop_timeout_s, LOCAL_STOP_TIMEOUT_S)

    def _stop_tasks(self, tasks: list[LocalTask]) -> None:
        """SIGTERM each task's process group, wait its stopTimeout, then SIGKILL the group (what it started too)."""
        running = []
        with self._lock:
            for task in tasks:
                process = task.process
                if process is not None and process.poll() is None:
                    lifetime.signal_group(process, signal.SIGTERM)
                    running.append((task, process))
                else:
                    _end_run(task, process.returncode if process is not None else None, "Task stopped")
        deadline = time.monotonic() + self.stop_timeout_s
        for task, process in running:
            lifetime.stop_group(process, grace_s=max(0.1, deadline - time.monotonic()))
            _end_run(task, process.returncode, "Scaling activity initiated by the service (SIGTERM)")

    def stop(self) -> None:
        """SIGTERM every task, wait its stopTimeout, then SIGKILL what is left (safe to call twice)."""
        with self._lock:
            self._stop.set()
            tasks = list(self._tasks)
        self._stop_tasks(tasks)
        if self._monitor is not None:
            self._monitor.join(timeout=5)

    def pids(self) -> list[int]:
        with self._lock:
            return [t.process.pid for t in self._tasks + self._retired if t.process is not None]

    def figures(self) -> dict:
        """The report's figures: tasks, restarts, and what the tasks' "batch processed" log lines say."""
        batches, faults = [], Counter()
        for path in sorted(self.log_dir.glob(f"{self.spec.service_name}-*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if not line.startswith("{"):
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("message") == "batch processed":
                    batches.append(entry["batch"])
                elif entry.get("message") == "injected fault":
                    faults[entry["fault"]] += 1
        return {
            "tasks": self.peak_tasks,  # the most that ran at once (a scale-down at the end leaves 0)
            "task_definition": self.spec.task_definition_arn,
            "restarts": self.restarts,
            "exit_codes": dict(self.exit_codes),
            "batches": len(batches),
            "received": sum(b["received"] for b in batches),
            "deleted": sum(b["deleted"] for b in batches),
            "retried": sum(b["retried"] for b in batches),
            "redeliveries": sum(b.get("redeliveries", 0) for b in batches),
            "queue_wait_ms": [w for b in batches for w in b.get("queue_wait_ms", [])],
            "batch_ms": [b["duration_ms"] for b in batches],
            "faults": dict(faults),
        }


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
