"""Where moto's server hands work to the local cloud's controller (patched in-process, like motopatches).

1. **lambda:Invoke**: moto's Lambda runs code only in Docker. With a controller attached, Invoke runs the
   function in the local runtime — RequestResponse returns its result (or ``X-Amz-Function-Error: Unhandled``
   with Lambda's error document, and the log tail when ``LogType=Tail``), Event queues it (202) with Lambda's
   two retries, DryRun answers 204 — so `aws lambda invoke`, `sam remote invoke` and the AWS run path work
   unchanged. The server's lock is given up while the function runs: its own calls come back to this server.
2. **SQS → Lambda**: the controller's pollers (moto's own trigger is off in every local server: motopatches 7).
3. **ECS**: moto reports ``runningCount`` = desired count the moment UpdateService is called; the local cloud
   reports the tasks really running (``report_running``, from the controller) and the service's events, and
   an UpdateService or DeleteService wakes the controller at once.

``attach(controller)`` installs the patches (once per process) and routes them to ``controller``;
``detach(controller)`` unroutes them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from datetime import UTC, datetime

from jobgraph.localcloud import motopatches
from jobgraph.localcloud.stepfunctions import engine as sfn_engine

_CONTROLLER: list = []
_ORIGINAL: dict = {}
_RUNNING: dict[str, int] = {}  # service ARN -> tasks the controller last saw running
LOG_TAIL_BYTES = 4096


def attach(controller) -> None:
    _apply()
    _CONTROLLER[:] = [controller]
    sfn_engine.set_lambda_invoker(controller.sfn_invoker())


def detach(controller) -> None:
    if _CONTROLLER and _CONTROLLER[0] is controller:
        _CONTROLLER.clear()
        sfn_engine.set_lambda_invoker(None)
        _RUNNING.clear()


def _controller():
    return _CONTROLLER[0] if _CONTROLLER else None


# --- Lambda ---------------------------------------------------------------------------------------------------
def _held_lock():
    return next((lock for lock in motopatches.SERVER_LOCKS if lock.held_here()), None)


def _invoke(self, function_name, qualifier, body, headers, response_headers):
    controller = _controller()
    if controller is None:
        return _ORIGINAL["invoke"](self, function_name, qualifier, body, headers, response_headers)
    found = self.get_function(function_name, qualifier)  # ResourceNotFoundException as moto answers it
    invocation_type = headers.get("X-Amz-Invocation-Type") or "RequestResponse"
    try:
        event = json.loads(body) if body else {}
    except ValueError:
        response_headers["x-amz-function-error"] = "Unhandled"
        return _document(
            {"errorType": "InvalidRequestContentException", "errorMessage": "Could not parse the payload as JSON"}
        )
    lock = _held_lock()
    with lock.released() if lock is not None else contextlib.nullcontext():
        function = controller.function(found.function_arn)
        if function is None:
            problem = controller.failures.get(found.function_name, "its code cannot be run locally")
            response_headers["x-amz-function-error"] = "Unhandled"
            return _document({"errorType": "Runtime.InvalidRuntime", "errorMessage": problem})
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":
            controller.invoke_event(function, event)
            return b""
        invocation = controller.invoke(function, event)
    response_headers["x-amz-executed-version"] = "$LATEST"
    tail = "\n".join(line for _ts, line in invocation.log).encode()[-LOG_TAIL_BYTES:]
    response_headers["x-amz-log-result"] = base64.b64encode(tail).decode()
    if not invocation.ok:
        response_headers["x-amz-function-error"] = "Unhandled"
        return _document(invocation.error_document())
    return _document(invocation.result)


def _document(value) -> bytes:
    return json.dumps(value).encode()


# --- ECS --------------------------------------------------------------------------------------------------------
def _update_service(self, service_properties):
    service = _ORIGINAL["update_service"](self, service_properties)
    running = _RUNNING.get(service.arn, 0)
    _set_counts(service, running)  # moto set runningCount = desired; the tasks start only now
    controller = _controller()
    if controller is not None:
        controller.poke()
    return service


def _delete_service(self, cluster_name, service_name, force):
    service = _ORIGINAL["delete_service"](self, cluster_name, service_name, force)
    controller = _controller()
    if controller is not None:
        controller.poke()
    return service


def _set_counts(service, running: int) -> None:
    service.running_count = running
    service.pending_count = max(0, int(service.desired_count or 0) - running)
    for deployment in service.deployments[:1]:
        deployment["runningCount"], deployment["pendingCount"] = running, service.pending_count
        deployment["desiredCount"] = service.desired_count
        steady = running == service.desired_count
        deployment["rolloutState"] = "COMPLETED" if steady else "IN_PROGRESS"


def _event(service, message: str) -> None:
    service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": datetime.now(UTC), "message": message})
    del service.events[100:]


class TaskRecord:
    """A local ECS task as moto's ListTasks/DescribeTasks serve it (moto's own Task runs nothing and keeps no
    start or stop times): what a reader of Fargate usage (runs/aws_usage.py) asks ECS for."""

    def __init__(self, arn: str, cluster_arn: str, service, spec, run):
        self.task_arn, self.cluster_arn, self.task_definition_arn = arn, cluster_arn, spec.task_definition_arn
        self.group, self.started_by, self.launch_type = f"service:{service.name}", "ecs-svc/local", "FARGATE"
        self.cpu, self.memory = str(spec.cpu_units), str(spec.memory_mb)
        self.container_instance_arn, self.containers, self.tags, self.attachments = None, [], [], []
        self.created_at = self.started_at = run.started_at
        self.update(run)

    def update(self, run) -> None:
        stopped = run.stopped_at is not None
        self.stopped_at, self.stopped_reason = run.stopped_at, run.stopped_reason or None
        self.last_status = self.desired_status = "STOPPED" if stopped else "RUNNING"

    def advance(self) -> None:
        """moto's describe_tasks moves its own tasks' state on; this one's is the process's."""


def report_tasks(services: list[tuple[str, object, list]]) -> None:
    """(service ARN, TaskSpec, TaskRuns) of every local service, as ECS tasks in moto (holding the lock)."""
    from moto.ecs.models import ecs_backends

    from jobgraph.localcloud.inventory import regional_backends

    by_arn = {arn: (spec, runs) for arn, spec, runs in services}
    for _account, region, backend in regional_backends(ecs_backends):
        for service in list(backend.services.values()):
            if service.arn not in by_arn:
                continue
            spec, runs = by_arn[service.arn]
            tasks = backend.tasks.setdefault(service.cluster_name, {})
            for run in runs:
                arn = f"arn:aws:ecs:{region}:{backend.account_id}:task/{service.cluster_name}/{run.task_id}"
                if arn in tasks and isinstance(tasks[arn], TaskRecord):
                    tasks[arn].update(run)
                else:
                    tasks[arn] = TaskRecord(arn, service.cluster_arn, service, spec, run)


def report_running(running: dict[str, int]) -> None:
    """The controller's count of running tasks per service ARN, into moto's services (holding the lock)."""
    from moto.ecs.models import ecs_backends

    from jobgraph.localcloud.inventory import regional_backends

    for _account, _region, backend in regional_backends(ecs_backends):
        for service in list(backend.services.values()):
            if service.status != "ACTIVE":
                continue
            now, before = running.get(service.arn, 0), _RUNNING.get(service.arn, 0)
            _RUNNING[service.arn] = now
            if now > before:
                _event(service, f"(service {service.name}) has started {now - before} tasks locally.")
            elif now < before:
                _event(service, f"(service {service.name}) has stopped {before - now} running tasks locally.")
            if now != before and now == service.desired_count:
                _event(service, f"(service {service.name}) has reached a steady state.")
            _set_counts(service, now)


def _apply() -> None:
    if _ORIGINAL:
        return
    from moto.awslambda.models import LambdaBackend
    from moto.ecs.models import EC2ContainerServiceBackend

    _ORIGINAL["invoke"] = LambdaBackend.invoke
    LambdaBackend.invoke = _invoke
    _ORIGINAL["update_service"] = EC2ContainerServiceBackend.update_service
    EC2ContainerServiceBackend.update_service = _update_service
    _ORIGINAL["delete_service"] = EC2ContainerServiceBackend.delete_service
    EC2ContainerServiceBackend.delete_service = _delete_service
