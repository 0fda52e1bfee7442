"""The local cloud's controller: whatever is deployed into the endpoint runs, as AWS would run it.

Level-triggered, like a cloud's control plane: every RECONCILE_INTERVAL_S, and at once after a stack operation
or an UpdateService, it reads what moto holds and makes the local processes match it:

- every Lambda function runs in the local runtime at its current code and configuration (an updated function
  gets new workers, a deleted one loses them): invocations through the endpoint (lambda:Invoke, RequestResponse
  and Event: servicehooks.py), a state machine's Lambda tasks (motopatches), and
- every enabled SQS event source mapping, polled by a MappingPoller (poller.py) as Lambda's pollers do;
- every active ECS service runs its desired count of local tasks of its task definition's command (ecs.py),
  following UpdateService (desired count, task definition); ECS's runningCount says how many really run;
- the CloudWatch alarms a stack declares (moto's CloudFormation skips them) are created with the stack and
  deleted with it; every SAMPLE_INTERVAL_S the service metrics are written (cloudwatch.py) and every alarm
  evaluated (alarms.py).

Stack operations wait for it (cfn.py): a stack is CREATE/UPDATE_COMPLETE once its functions' packages are
unpacked, its pollers and tasks started and its alarms made; a deleted stack's pollers, workers and tasks are
stopped before its resources go. Every function invocation writes START/END/REPORT and its output into
CloudWatch Logs /aws/lambda/<function> and counts in AWS/Lambda metrics, wherever it came from.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.localcloud.cloudformation import changesets as cfn
from jobgraph.localcloud.ecs.service import LocalEcsService
from jobgraph.localcloud.event_sources.poller import MappingPoller, MappingSpec, RuntimeStats
from jobgraph.localcloud.faults import FaultPlan
from jobgraph.localcloud.inventory import (
    FunctionRevision,
    MappingState,
    ServiceState,
    queue_metrics,
    read_functions,
    read_mappings,
    read_services,
    regional_backends,
    sqs_queue,
    stack_resources,
)
from jobgraph.localcloud.lambda_runtime.code import CodeStore, layer_path
from jobgraph.localcloud.lambda_runtime.interpreters import RuntimeNotAvailable, interpreter_for
from jobgraph.localcloud.lambda_runtime.runtime import (
    DEFAULT_UNSCALED_CONCURRENCY,
    DirectPool,
    default_max_workers,
    function_spec,
)
from jobgraph.localcloud.lambda_runtime.workers import FunctionSpec, HandlerImportError, Invocation, Worker
from jobgraph.localcloud.observability.alarms import evaluate_alarms
from jobgraph.localcloud.observability.cloudwatch import MotoCloudWatch, ServiceMetrics
from jobgraph.localcloud.server import LocalEndpoint

log = logging.getLogger(__name__)

RECONCILE_INTERVAL_S = 1.0
SAMPLE_INTERVAL_S = 2.0
EVENT_RETRIES = 2  # Lambda retries a failed asynchronous (Event) invocation twice
EVENT_RETRY_DELAY_S = 1.0  # local time scale: AWS waits about 1 and 2 minutes


# --- what runs locally ----------------------------------------------------------------------------------------
@dataclass
class LocalFunction:
    revision: FunctionRevision
    spec: FunctionSpec
    pool: DirectPool
    retired: bool = False


@dataclass
class LocalMapping:
    state: MappingState
    function_key: str
    poller: MappingPoller
    stop: threading.Event


@dataclass
class LocalService:
    state: ServiceState
    service: LocalEcsService
    shipped: dict[Path, int] = field(default_factory=dict)  # task log file -> bytes already sent to CloudWatch


class Controller:
    """Runs what is deployed into ``endpoint``; ``start()`` attaches it, ``stop()`` stops every process it started."""

    def __init__(
        self,
        endpoint: LocalEndpoint,
        work_dir: Path,
        *,
        faults: FaultPlan | None = None,
        max_workers: int | None = None,
        retry_delay_s: int = 1,
        log_dir: Path | None = None,
    ):
        self.endpoint = endpoint
        self.work_dir = Path(work_dir)
        # functions' logs in <log_dir>/<function>/, ECS tasks' as <log_dir>/<service>-<n>.log
        self.log_dir = Path(log_dir) if log_dir is not None else self.work_dir / "logs"
        self.faults = faults or FaultPlan()
        self.max_workers = max_workers
        self.retry_delay_s = retry_delay_s
        self.code = CodeStore(self.work_dir / "code")
        self.stats = RuntimeStats()
        self.cloudwatch = MotoCloudWatch(endpoint.lock, endpoint.region)
        self.functions: dict[str, LocalFunction] = {}  # by function ARN
        self.mappings: dict[str, LocalMapping] = {}  # by mapping UUID
        self.services: dict[str, LocalService] = {}  # by service ARN
        self.failures: dict[str, str] = {}  # what cannot run, by function/service name: shown by `cloud status`
        self.alarms: dict[str, list[str]] = {}  # stack id -> alarm names it made
        self._operations: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.RLock()  # functions/mappings/services: the controller thread and requests
        self._reconcile_lock = threading.RLock()
        self._operating = threading.local()  # this thread is applying a stack operation
        self._events = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lambda-event")
        self._seen_executions: dict[str, str] = {}
        self._service_metrics = ServiceMetrics(self.cloudwatch.buffer)

    # --- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> Controller:
        from jobgraph.localcloud import servicehooks

        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.endpoint.meter.observers.append(self._service_metrics.observe)
        self.endpoint.meter.before.append(self._before_request)
        servicehooks.attach(self)
        cfn.set_listener(self._on_operation)
        self._thread = threading.Thread(target=self._run, name="localcloud-controller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop every poller, worker and task (ECS tasks get their stopTimeout); safe to call twice."""
        from jobgraph.localcloud import servicehooks

        self._stop.set()
        cfn.set_listener(None)
        servicehooks.detach(self)
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._events.shutdown(wait=False, cancel_futures=True)
        with self._state_lock:
            mappings, self.mappings = list(self.mappings.values()), {}
            services, self.services = list(self.services.values()), {}
            functions, self.functions = list(self.functions.values()), {}
        for mapping in mappings:
            mapping.stop.set()
        threads = [threading.Thread(target=s.service.stop, daemon=True) for s in services]
        for thread in threads:
            thread.start()
        for mapping in mappings:
            mapping.poller.join(timeout=5)
            for worker in mapping.poller.workers:
                worker.stop()
        for function in functions:
            function.pool.stop()
        for thread in threads:
            thread.join(timeout=150)
        with contextlib.suppress(ValueError):
            self.endpoint.meter.observers.remove(self._service_metrics.observe)
        with contextlib.suppress(ValueError):
            self.endpoint.meter.before.remove(self._before_request)

    def _on_operation(self, operation: cfn.StackOperation) -> None:
        """A stack operation, handed over inside its request. Creates and updates are stabilised by the control
        loop (unpacking packages takes a while); a delete is done at once, the server's lock given up meanwhile,
        so the stack is gone when DeleteStack returns and `sam delete`'s first look finds it so."""
        if operation.kind != "DELETE":
            self._operations.put(operation)
            return
        if getattr(self._operating, "active", False):
            # a nested stack deleted by its parent's delete (moto deletes it inside finish_delete, holding the
            # lock): what ran its resources was stopped with the parent's (stack_resources recurses)
            self._delete_alarms(operation.stack_id)
            cfn.finish_delete(operation)
            return
        lock = self.endpoint.lock
        with lock.released() if lock.held_here() else contextlib.nullcontext():
            self._stack_operation(operation)

    def poke(self) -> None:
        """Reconcile now (an UpdateService, a new function): the controller thread picks it up."""
        self._operations.put(None)

    def _run(self) -> None:
        next_sample = time.monotonic() + SAMPLE_INTERVAL_S
        while not self._stop.is_set():
            try:
                operation = self._operations.get(timeout=RECONCILE_INTERVAL_S)
            except queue.Empty:
                operation = None
            try:
                if isinstance(operation, cfn.StackOperation):
                    self._stack_operation(operation)
                else:
                    self.reconcile()
                if time.monotonic() >= next_sample:
                    next_sample = time.monotonic() + SAMPLE_INTERVAL_S
                    self.sample()
                self.failures.pop("controller", None)
            except Exception as exc:  # the control loop must go on; what failed is shown by `cloud status`
                log.exception("local cloud controller")
                self.failures["controller"] = f"{type(exc).__name__}: {exc}"

    # --- stacks ----------------------------------------------------------------------------------------------
    def _stack_operation(self, operation: cfn.StackOperation) -> None:
        with self._reconcile_lock:  # one stack operation or reconciliation at a time
            self._operating.active = True
            try:
                self._apply_operation(operation)
            finally:
                self._operating.active = False

    def _apply_operation(self, operation: cfn.StackOperation) -> None:
        if operation.kind == "DELETE":
            with self.endpoint.lock:
                resources = stack_resources(operation)
            self._release(resources)
            self._delete_alarms(operation.stack_id)
            with self.endpoint.lock:
                cfn.finish_delete(operation)
            self.reconcile()
            return
        failure = None
        try:
            self.reconcile()
            with self.endpoint.lock:
                resources = stack_resources(operation)
            failure = self._problems_of(resources)
            if failure is None:
                self._make_alarms(operation)
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
        with self.endpoint.lock:
            cfn.complete(operation, failure)

    def _problems_of(self, resources: dict[str, list[str]]) -> str | None:
        names = [arn.rsplit(":", 1)[-1] for arn in resources.get("AWS::Lambda::Function", [])]
        names += [arn.rsplit("/", 1)[-1] for arn in resources.get("AWS::ECS::Service", [])]
        problems = [f"{name}: {self.failures[name]}" for name in names if name in self.failures]
        return "; ".join(problems) or None

    def _release(self, resources: dict[str, list[str]]) -> None:
        """Stop what runs a stack's mappings, services and functions (before moto deletes them)."""
        with self._state_lock:
            mappings = [
                self.mappings.pop(u) for u in resources.get("AWS::Lambda::EventSourceMapping", []) if u in self.mappings
            ]
            services = [self.services.pop(a) for a in resources.get("AWS::ECS::Service", []) if a in self.services]
            names = set(resources.get("AWS::Lambda::Function", []))
            functions = [
                self.functions.pop(arn)
                for arn, f in list(self.functions.items())
                if f.revision.name in names or arn in names
            ]
        for mapping in mappings:
            self._stop_mapping(mapping)
        for service in services:
            service.service.stop()
        for function in functions:
            function.retired = True
            function.pool.stop()

    def _make_alarms(self, operation: cfn.StackOperation) -> None:
        from moto.cloudformation.models import cloudformation_backends

        from jobgraph.localcloud.cloudformation.stack import alarm_definitions

        with self.endpoint.lock:
            stack = cloudformation_backends[operation.account_id][operation.region].stacks[operation.stack_id]
            definitions = alarm_definitions(stack)
        cloudwatch = self.endpoint.client("cloudwatch", region=operation.region)
        names = [properties["AlarmName"] for _logical_id, properties in definitions]
        stale = sorted(set(self.alarms.get(operation.stack_id, [])) - set(names))
        if stale:
            cloudwatch.delete_alarms(AlarmNames=stale)
        for _logical_id, properties in definitions:
            cloudwatch.put_metric_alarm(**properties)
        self.alarms[operation.stack_id] = names

    def _delete_alarms(self, stack_id: str) -> None:
        """The stack's alarms, deleted in moto's CloudWatch directly: this may run holding the lock."""
        from moto.cloudwatch.models import cloudwatch_backends

        names = self.alarms.pop(stack_id, [])
        if names:
            _arn, _partition, _service, region, account, *_rest = [*stack_id.split(":"), "", "", "", "", ""]
            with self.endpoint.lock:
                cloudwatch_backends[account or "123456789012"][region or self.endpoint.region].delete_alarms(names)

    # --- reconciliation ------------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Make the local processes match what moto holds; what cannot be prepared is recorded in ``failures``
        (and named by a stack operation waiting for it)."""
        with self._reconcile_lock:
            with self.endpoint.lock:
                functions, mappings, services = read_functions(), read_mappings(), read_services()
            self._reconcile_functions(functions)
            self._reconcile_mappings(mappings)
            self._reconcile_services(services)

    def _reconcile_functions(self, functions: dict[str, FunctionRevision]) -> None:
        for arn, revision in functions.items():
            current = self.functions.get(arn)
            if current is None or current.revision.key != revision.key:
                self._install(revision)
        with self._state_lock:
            gone = [self.functions.pop(arn) for arn in list(self.functions) if arn not in functions]
        for function in gone:
            function.retired = True
            function.pool.stop()

    def _install(self, revision: FunctionRevision) -> LocalFunction | None:
        """Prepare a function revision (packages unpacked) and make it the one invocations use."""
        try:
            code_dir = self.code.folder(*revision.package)
            layer_dirs = tuple(layer_path(self.code.folder(sha, package)) for sha, package in revision.layers)
            interpreter_for(revision.config.get("Runtime", ""), revision.name)  # fails now, not at invocation
        except (RuntimeNotAvailable, OSError, ValueError, zipfile.BadZipFile) as exc:
            self.failures[revision.name] = f"{type(exc).__name__}: {exc}"
            return None
        self.failures.pop(revision.name, None)
        spec = function_spec(
            revision.name, revision.config, code_dir, layer_dirs, self.endpoint.environment(region=revision.region)
        )
        size = self.max_workers or default_max_workers()
        pool = DirectPool(spec, self.log_dir / revision.name, size, make_worker=self._make_worker)
        function = LocalFunction(revision, spec, pool)
        with self._state_lock:
            previous, self.functions[revision.arn] = self.functions.get(revision.arn), function
        if previous is not None:
            previous.retired = True
            for worker in previous.pool.workers:
                if not worker.busy:
                    worker.stop()
        return function

    def _make_worker(self, spec: FunctionSpec, log_path: Path) -> Worker:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        return _EndpointWorker(spec, log_path, observer=self._observe, controller=self)

    def _reconcile_mappings(self, mappings: dict[str, MappingState]) -> None:
        for uuid, state in mappings.items():
            function = self.functions.get(state.function_arn) or self._function_named(state.function_arn)
            current = self.mappings.get(uuid)
            wanted = state.enabled and function is not None
            key = function.revision.key if function is not None else ""
            if current is not None and (not wanted or current.state != state or current.function_key != key):
                with self._state_lock:
                    self.mappings.pop(uuid, None)
                self._stop_mapping(current)
                current = None
            if wanted and current is None:
                self._start_mapping(state, function)
        with self._state_lock:
            gone = [self.mappings.pop(uuid) for uuid in list(self.mappings) if uuid not in mappings]
        for mapping in gone:
            self._stop_mapping(mapping)

    def _start_mapping(self, state: MappingState, function: LocalFunction) -> None:
        concurrency = state.max_concurrency or DEFAULT_UNSCALED_CONCURRENCY
        concurrency = max(1, min(int(concurrency), self.max_workers or default_max_workers()))
        spec = MappingSpec(
            function=function.spec,
            queue_url=state.queue_url,
            queue_arn=state.queue_arn,
            batch_size=state.batch_size,
            concurrency=concurrency,
            report_batch_item_failures=state.report_batch_item_failures,
            max_receive_count=state.max_receive_count,
            region=state.region,
        )
        name = function.revision.name
        workers = [
            self._make_worker(function.spec, self.log_dir / name / f"esm-{slot}.log") for slot in range(concurrency)
        ]
        stop = threading.Event()
        poller = MappingPoller(
            spec,
            workers,
            self.endpoint.client("sqs", billed=True, region=state.region),  # Lambda's pollers: SQS bills them
            self.stats,
            stop,
            self.faults,
            zlib.crc32(f"{self.faults.seed}:{name}".encode()),
            self.retry_delay_s,
            wait_for_messages=self._queue_signal(state),
        )
        with self._state_lock:
            self.mappings[state.uuid] = LocalMapping(state, function.revision.key, poller, stop)
        poller.start()

    def _queue_signal(self, state: MappingState):
        found = sqs_queue(state.queue_arn.split(":")[4], state.region, state.queue_arn)
        return found.wait_for_messages if found is not None else None

    def _stop_mapping(self, mapping: LocalMapping) -> None:
        mapping.stop.set()
        mapping.poller.join(timeout=10)
        for worker in mapping.poller.workers:
            worker.stop()  # an invoker stuck in an invocation still gets its process killed

    def _reconcile_services(self, services: dict[str, ServiceState]) -> None:
        for arn, state in services.items():
            current = self.services.get(arn)
            if state.problem or state.spec is None:
                self.failures[arn.rsplit("/", 1)[-1]] = state.problem
                continue
            if current is not None and current.state.task_definition != state.task_definition:
                with self._state_lock:
                    self.services.pop(arn, None)
                threading.Thread(target=current.service.stop, daemon=True).start()  # a new deployment
                current = None
            if current is None:
                try:
                    service = LocalEcsService(
                        state.spec,
                        self.endpoint,
                        self.log_dir,
                        tasks=state.desired,
                        faults=self.faults,
                    ).start()
                except Exception as exc:  # its command cannot run here, its queue is gone, ...
                    self.failures[state.spec.service_name] = f"{type(exc).__name__}: {exc}"
                    continue
                self.failures.pop(state.spec.service_name, None)
                with self._state_lock:
                    self.services[arn] = LocalService(state, service)
            elif current.service.tasks != state.desired:
                current.service.scale(state.desired)
                current.state = state
        with self._state_lock:
            gone = [self.services.pop(arn) for arn in list(self.services) if arn not in services]
        for service in gone:
            threading.Thread(target=service.service.stop, daemon=True).start()
        self._report_running(services)

    def _report_running(self, services: dict[str, ServiceState]) -> None:
        """ECS's runningCount/pendingCount and service events, from the local tasks (servicehooks)."""
        from jobgraph.localcloud import servicehooks

        with self._state_lock:
            running = {arn: local.service.running() for arn, local in self.services.items()}
            tasks = [(arn, local.state.spec, list(local.service.runs)) for arn, local in self.services.items()]
        with self.endpoint.lock:
            servicehooks.report_running(running)
            servicehooks.report_tasks(tasks)
        for local in list(self.services.values()):
            if local.service.fatal:
                self.failures[local.state.spec.service_name] = local.service.fatal

    def _function_named(self, name_or_arn: str) -> LocalFunction | None:
        name = name_or_arn.split(":function:", 1)[1].split(":", 1)[0] if ":function:" in name_or_arn else name_or_arn
        return next((f for f in self.functions.values() if f.revision.name == name), None)

    # --- invocations -------------------------------------------------------------------------------------
    def function(self, name_or_arn: str) -> LocalFunction | None:
        """The current revision of a deployed function (prepared now if the controller has not seen it yet)."""
        found = self.functions.get(name_or_arn) or self._function_named(name_or_arn)
        if found is not None:
            return found
        with self.endpoint.lock:
            revisions = read_functions()
        revision = revisions.get(name_or_arn) or next(
            (r for r in revisions.values() if r.name == name_or_arn.split(":function:")[-1].split(":")[0]), None
        )
        return self._install(revision) if revision is not None else None

    def invoke(self, function: LocalFunction, event, fault: str | None = None) -> Invocation:
        """A direct invocation (RequestResponse, a Step Functions task): a worker of the function's pool."""
        worker = function.pool.acquire()
        try:
            invocation = worker.invoke(event, fault)
        finally:
            if function.retired:
                worker.stop()  # the function was updated meanwhile: this environment is not reused
            else:
                function.pool.release(worker)
        name = function.revision.name
        with self.stats.lock:
            self.stats.record_invocation(name, invocation)
            if fault:
                self.stats.faults[fault] += 1
            if not invocation.ok:
                self.stats.errors[name] += 1
                self.stats.deaths[name] += invocation.died
                self.stats.last_error[name] = invocation.error
        return invocation

    def invoke_event(self, function: LocalFunction, event) -> None:
        """An asynchronous (Event) invocation: queued, retried twice on error as Lambda does."""

        def run() -> None:
            for attempt in range(EVENT_RETRIES + 1):
                if self._stop.is_set() or self.invoke(function, event).ok:
                    return
                if attempt < EVENT_RETRIES:
                    self._stop.wait(EVENT_RETRY_DELAY_S * (attempt + 1))

        self._events.submit(run)

    def sfn_invoker(self) -> Callable[[str, object], tuple[bool, object]]:
        """What moto's Step Functions engine calls for a Lambda task (sfn_engine.set_lambda_invoker)."""

        def invoke(function_name: str, payload) -> tuple[bool, object]:
            function = self.function(function_name)
            if function is None:
                return False, {"errorType": "ResourceNotFoundException", "errorMessage": f"{function_name} not found"}
            invocation = self.invoke(function, payload)
            return invocation.ok, invocation.result if invocation.ok else invocation.error_document()

        return invoke

    def _observe(self, worker: Worker, invocation: Invocation) -> None:
        """Every invocation: its log lines into CloudWatch Logs, its figures into AWS/Lambda metrics."""
        name = worker.spec.function_name
        self.cloudwatch.lambda_sink(name, worker.stream, invocation.log)
        dimensions = (("FunctionName", name),)
        buffer = self.cloudwatch.buffer
        buffer.add("AWS/Lambda", "Invocations", dimensions, 1, "Count")
        buffer.add("AWS/Lambda", "Errors", dimensions, 0 if invocation.ok else 1, "Count")
        buffer.add("AWS/Lambda", "Duration", dimensions, invocation.duration_ms, "Milliseconds")

    # --- metrics and alarms --------------------------------------------------------------------------------
    def _before_request(self, service: str, _action: str) -> None:
        """Inside the server's lock, before a request: a CloudWatch reader sees every metric so far."""
        if service == "monitoring":
            self.cloudwatch.flush(locked=True)

    def sample(self) -> None:
        """The periodic figures: queue depths, concurrency, executions, ECS task logs; then alarms."""
        buffer = self.cloudwatch.buffer
        with self._state_lock:
            busy = {f.revision.name: sum(w.busy for w in f.pool.workers) for f in self.functions.values()}
            for mapping in self.mappings.values():
                name = mapping.poller.mapping.function.function_name
                busy[name] = busy.get(name, 0) + sum(w.busy for w in mapping.poller.workers)
        for name, count in busy.items():
            buffer.add("AWS/Lambda", "ConcurrentExecutions", (("FunctionName", name),), count, "Count")
        with self.endpoint.lock:
            for namespace, metric, dimensions, value in queue_metrics() + self._execution_metrics():
                buffer.add(namespace, metric, dimensions, value, "Seconds" if "Age" in metric else "Count")
        self._ship_task_logs()
        self.cloudwatch.flush()
        for region in self._regions():
            evaluate_alarms(self.endpoint.client("cloudwatch", region=region), "")

    def _regions(self) -> list[str]:
        from moto.cloudwatch.models import cloudwatch_backends

        return sorted({region for _a, region, backend in regional_backends(cloudwatch_backends) if backend.alarms})

    def _execution_metrics(self) -> list[tuple[str, str, tuple, float]]:
        """AWS/States Executions{Started,Succeeded,Failed,TimedOut,Aborted} per state machine (holding the lock)."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        found = []
        for _account, _region, backend in regional_backends(stepfunctions_parser_backends):
            for machine in list(backend.state_machines):
                dimensions = (("StateMachineArn", machine.arn),)
                for execution in list(machine.executions):
                    status, seen = execution.status, self._seen_executions.get(execution.execution_arn)
                    if seen is None:
                        found.append(("AWS/States", "ExecutionsStarted", dimensions, 1.0))
                    if status != seen and status != "RUNNING":
                        metric = {"SUCCEEDED": "Succeeded", "FAILED": "Failed", "TIMED_OUT": "TimedOut"}.get(
                            status, "Aborted"
                        )
                        found.append(("AWS/States", f"Executions{metric}", dimensions, 1.0))
                    self._seen_executions[execution.execution_arn] = status
        return found

    def _ship_task_logs(self) -> None:
        """What ECS tasks printed since the last sample, into their awslogs group (as the awslogs driver)."""
        for local in list(self.services.values()):
            if not local.state.log_group:
                continue
            for path in sorted(local.service.log_dir.glob(f"{local.state.spec.service_name}-*.log")):
                offset = local.shipped.get(path, 0)
                try:
                    with open(path, "rb") as handle:
                        handle.seek(offset)
                        chunk = handle.read()
                except OSError:
                    continue
                complete = chunk[: chunk.rfind(b"\n") + 1]
                if not complete:
                    continue
                local.shipped[path] = offset + len(complete)
                slot = path.stem.rsplit("-", 1)[-1]
                stream = f"{local.state.log_prefix or 'ecs'}/{local.state.spec.container}/local-{slot}"
                now = int(time.time() * 1000)
                lines = [(now, line) for line in complete.decode("utf-8", "replace").splitlines() if line.strip()]
                self.cloudwatch.put_logs(local.state.log_group, stream, lines)

    def failure(self, names: set[str] | None = None) -> str | None:
        """What keeps a function or service (of ``names``, default any) from running, if anything does."""
        return next(
            (f"{name}: {problem}" for name, problem in list(self.failures.items())
             if name != "controller" and (names is None or name in names)),
            None,
        )  # fmt: skip

    # --- status -----------------------------------------------------------------------------------------------
    def status(self) -> dict:
        """What runs, for `jobgraph cloud status`."""
        with self._state_lock, self.stats.lock:
            return {
                "functions": {
                    f.revision.name: {
                        "invocations": self.stats.invocations[f.revision.name],
                        "errors": self.stats.errors[f.revision.name],
                        "cold_starts": self.stats.cold_starts[f.revision.name],
                        "workers": sum(1 for w in f.pool.workers if w.process is not None),
                    }
                    for f in self.functions.values()
                },
                "mappings": {
                    m.state.uuid: {
                        "function": m.poller.mapping.function.function_name,
                        "queue": m.state.queue_arn.rsplit(":", 1)[-1],
                        "workers": m.poller.mapping.concurrency,
                        "received": self.stats.received[m.poller.mapping.function.function_name],
                    }
                    for m in self.mappings.values()
                },
                "services": {
                    s.state.spec.service_name: {"desired": s.service.tasks, "running": s.service.running()}
                    for s in self.services.values()
                },
                "pids": self.pids(),
                "failures": dict(self.failures),
            }

    def pids(self) -> list[int]:
        """Every process the controller started that is still alive."""
        with self._state_lock:
            workers = [w for f in self.functions.values() for w in f.pool.workers]
            workers += [w for m in self.mappings.values() for w in m.poller.workers]
            pids = [w.process.pid for w in workers if w.process is not None and w.process.poll() is None]
            for local in self.services.values():
                pids += local.service.pids()
        return sorted(pids)


class _EndpointWorker(Worker):
    """A worker whose handler import errors are invocation errors, as Lambda's (Runtime.ImportModuleError),
    logged to the function's log group, instead of stopping whoever invoked it."""

    def __init__(self, spec: FunctionSpec, log_path: Path, *, observer, controller: Controller):
        super().__init__(spec, log_path, observer=observer)
        self._controller = controller

    def invoke(self, event: dict, fault: str | None = None) -> Invocation:
        try:
            return super().invoke(event, fault)
        except HandlerImportError as exc:
            self._controller.failures[self.spec.function_name] = str(exc).removeprefix(f"{self.spec.logical_id}: ")
            now = int(time.time() * 1000)
            message = f"[ERROR] Runtime.ImportModuleError: {exc}"
            invocation = Invocation(ok=False, error=f"Runtime.ImportModuleError: {str(exc).splitlines()[0]}")
            invocation.log = [(now, line) for line in message.splitlines()]
            if self.observer is not None:
                self.stream = self.stream or f"init-error/{self.spec.function_name}"
                self.observer(self, invocation)
            return invocation
