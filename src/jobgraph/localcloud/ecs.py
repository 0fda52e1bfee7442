"""ECS, locally: each ECS service of the deployed stack runs as local processes of its task definition.

moto's ECS keeps clusters, services and task definitions but runs nothing. For every ``AWS::ECS::Service``
of the stack, ``LocalEcsService`` reads the service and its task definition back from moto (the container's
command and environment, its stopTimeout) and runs ``tasks`` copies of the command: each a process of the
local Python the command names (``python3.13`` → interpreters.py, as functions' Runtime), with the container's
environment plus the local endpoint (AWS_ENDPOINT_URL, fake credentials), so the worker's boto3 code talks to
moto unchanged. The command goes through ecs_task.py (loopback guard, fault injector).

Like ECS, a task that exits (killed by ``--kill-rate``, crashed) is replaced and the restart counted; a task
that keeps failing at start (exit code other than the injected kill's, 3 times in a row) stops the run with
its log's tail. ``stop()`` sends SIGTERM, waits the container's stopTimeout (at most LOCAL_STOP_TIMEOUT_S), then
kills, as ECS does. Each task is tied to this process (lifetime.py): its own process group, and it dies with the
parent, even a parent killed with SIGKILL; a task also exits by itself LOCAL_STOP_TIMEOUT_S after a SIGTERM.

Local differences (the same spirit as the Lambda runtime's 1 s retry delay): the long poll is 2 s instead
of 20 s, a failed job backs off from 1 s instead of RETRY_BACKOFF_BASE_SECONDS, and a killed task's messages are
visible again after 4 s instead of VISIBILITY_TIMEOUT_SECONDS, so runs, retries and shutdown take seconds. The task's own output (Powertools JSON logs) is ``<log_dir>/<service>-<n>.log``; the report reads
its "batch processed" lines for queue waits and batch times.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jobgraph
from jobgraph.core.errors import JobGraphError
from jobgraph.localcloud import lifetime
from jobgraph.localcloud.ecs_task import FAULT_PLAN_VARIABLE, STOP_GRACE_VARIABLE
from jobgraph.localcloud.faults import FaultPlan
from jobgraph.localcloud.interpreters import interpreter_for
from jobgraph.localcloud.sandbox import KILL_EXIT_CODE
from jobgraph.localcloud.server import LocalEndpoint
from jobgraph.localcloud.stack import DeployedStack

DEFAULT_TASKS = 2
# Local time scale (module docstring): short long polls, quick retries, and a killed task's batch visible again
# after 4 s instead of 2 minutes (the heartbeat keeps a running batch invisible meanwhile).
LOCAL_OVERRIDES = {
    "WAIT_TIME_SECONDS": "2",
    "RETRY_BACKOFF_BASE_SECONDS": "1",
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


def task_specs(endpoint: LocalEndpoint, stack: DeployedStack) -> list[TaskSpec]:
    """The stack's ECS services, read back from the deployed service and task definition in moto."""
    ecs = endpoint.client("ecs")
    specs = []
    for logical_id in stack.resources_of_type("AWS::ECS::Service"):
        service_arn = stack.physical_ids[logical_id]
        cluster = stack.transformed["Resources"][logical_id]["Properties"]["Cluster"]
        cluster_name = stack.physical_ids[cluster["Ref"]] if isinstance(cluster, dict) else cluster
        (service,) = ecs.describe_services(cluster=cluster_name, services=[service_arn])["services"]
        definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        essential = [c for c in definition["containerDefinitions"] if c.get("essential", True)]
        if len(essential) != 1:
            raise TaskStartError(f"{service['serviceName']}: the local cloud runs one essential container per task")
        (container,) = essential
        environment = {e["name"]: str(e["value"]) for e in container.get("environment", [])}
        specs.append(
            TaskSpec(
                service_name=service["serviceName"],
                cluster=cluster_name,
                task_definition_arn=definition["taskDefinitionArn"],
                container=container["name"],
                command=tuple(container.get("command") or ()),
                environment=environment,
                stop_timeout_s=int(container.get("stopTimeout") or 30),
                queue_url=environment.get("INCOMING_QUEUE_URL", ""),
                cpu_units=int(definition.get("cpu") or 256),
                memory_mb=int(definition.get("memory") or 512),
                architecture=(
                    "arm64" if definition.get("runtimePlatform", {}).get("cpuArchitecture") == "ARM64" else "x86_64"
                ),
            )
        )
    return specs


def local_command(spec: TaskSpec) -> list[str]:
    """``python3.13 -m module args`` → the local interpreter running ecs_task.py, which runs the module."""
    if len(spec.command) < 3 or not re.fullmatch(r"python\d+\.\d+", spec.command[0]) or spec.command[1] != "-m":
        raise TaskStartError(
            f"{spec.service_name}: container {spec.container} command {list(spec.command)}: the local cloud runs "
            "`python3.x -m <module> [args]` commands only"
        )
    interpreter = interpreter_for(spec.command[0], spec.service_name)
    return [interpreter, "-m", "jobgraph.localcloud.ecs_task", *spec.command[1:]]


@dataclass
class LocalTask:
    slot: int
    log_path: Path
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    starts: int = 0
    failed_starts: int = 0  # consecutive exits other than an injected kill


@dataclass
class LocalEcsService:
    """One ECS service: ``tasks`` local processes, replaced when they exit, stopped like ECS stops tasks."""

    spec: TaskSpec
    endpoint: LocalEndpoint
    log_dir: Path
    tasks: int = DEFAULT_TASKS
    faults: FaultPlan = field(default_factory=FaultPlan)
    restarts: int = 0
    exit_codes: Counter = field(default_factory=Counter)
    fatal: str | None = None
    _tasks: list[LocalTask] = field(default_factory=list)
    _command: list[str] = field(default_factory=list)
    _environment: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _monitor: threading.Thread | None = None
    _started_at: float = 0.0
    _stopped_at: float = 0.0

    def start(self) -> LocalEcsService:
        self._started_at = time.monotonic()
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
        self._tasks = [
            LocalTask(slot, self.log_dir / f"{self.spec.service_name}-{slot}.log") for slot in range(self.tasks)
        ]
        for task in self._tasks:
            self._launch(task)
        self._monitor = threading.Thread(target=self._watch, daemon=True, name=f"{self.spec.service_name}-monitor")
        self._monitor.start()
        return self

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

    def _watch(self) -> None:
        while not self._stop.wait(MONITOR_INTERVAL_S):
            for task in self._tasks:
                with self._lock:
                    if self._stop.is_set() or task.process is None:
                        continue
                    code = task.process.poll()
                    if code is None:
                        continue
                    self.exit_codes[code] += 1
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

    def task_seconds(self) -> float:
        """Seconds the service's tasks ran, as Fargate bills them: per second, at least a minute per task."""
        end = self._stopped_at or time.monotonic()
        return self.tasks * max(60.0, end - self._started_at) if self._started_at else 0.0

    def stop(self) -> None:
        """SIGTERM every task, wait its stopTimeout, then SIGKILL what is left (safe to call twice)."""
        if self._started_at and not self._stopped_at:
            self._stopped_at = time.monotonic()
        with self._lock:
            self._stop.set()
            started = [t.process for t in self._tasks if t.process is not None]
            for process in started:
                lifetime.signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for process in started:
            # after the deadline: SIGKILL to the task and to whatever it started
            lifetime.stop_group(process, grace_s=max(0.1, deadline - time.monotonic()))
        if self._monitor is not None:
            self._monitor.join(timeout=5)

    def pids(self) -> list[int]:
        return [t.process.pid for t in self._tasks if t.process is not None]

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
            "tasks": self.tasks,
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


@dataclass
class LocalEcs:
    """Every ECS service of the stack, run locally."""

    endpoint: LocalEndpoint
    stack: DeployedStack
    log_dir: Path
    faults: FaultPlan = field(default_factory=FaultPlan)
    tasks: int = DEFAULT_TASKS
    services: list[LocalEcsService] = field(default_factory=list)

    def start(self) -> LocalEcs:
        for spec in task_specs(self.endpoint, self.stack):
            service = LocalEcsService(spec, self.endpoint, self.log_dir, self.tasks, self.faults)
            self.services.append(service)
            service.start()
        return self

    def failure(self) -> str | None:
        return next((s.fatal for s in self.services if s.fatal), None)

    def stop(self) -> None:
        for service in self.services:
            service.stop()

    def figures(self) -> dict[str, dict]:
        return {service.spec.service_name: service.figures() for service in self.services}

    def usage(self) -> dict:
        """Fargate's billing counters for the run: vCPU-hours and GB-hours of every task that ran."""
        hours = [(s, s.task_seconds() / 3600) for s in self.services]
        return {
            "vcpu_hours": sum(h * s.spec.cpu_units / 1024 for s, h in hours),
            "gb_hours": sum(h * s.spec.memory_mb / 1024 for s, h in hours),
            "architecture": self.services[0].spec.architecture if self.services else "x86_64",
            "source": "local tasks' run time at the task definition's CPU and memory (1 minute minimum)",
        }
