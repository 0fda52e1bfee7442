"""The local cloud's controller: whatever is deployed into the endpoint runs, as AWS would run it.

Level-triggered, like a cloud's control plane: every RECONCILE_INTERVAL_S, and at once after a stack operation
or an UpdateService, it reads what moto holds and makes the local processes match it:

- every Lambda function runs in the local runtime at its current code and configuration (an updated function
  gets new workers, a deleted one loses them): invocations through the endpoint (lambda:Invoke, RequestResponse
  and Event: servicehooks.py), a state machine's Lambda tasks (stepfunctions/engine.py): lambda_runtime/functions.py;
- every enabled SQS event source mapping, polled by a MappingPoller as Lambda's pollers do (event_sources/);
- every active ECS service runs its desired count of local tasks of its task definition's command (ecs/),
  following UpdateService (desired count, task definition); ECS's runningCount says how many really run;
- the CloudWatch alarms a stack declares (moto's CloudFormation skips them) are created with the stack and
  deleted with it; every SAMPLE_INTERVAL_S the service metrics are written and every alarm
  evaluated (observability/).

Stack operations wait for it (cloudformation/changesets.py): a stack is CREATE/UPDATE_COMPLETE once its functions' packages are
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from jobgraph.localcloud.cloudformation import changesets as cfn
from jobgraph.localcloud.ecs.control import LocalService, ServiceControl
from jobgraph.localcloud.event_sources.mappings import LocalMapping, MappingControl
from jobgraph.localcloud.event_sources.poller import RuntimeStats
from jobgraph.localcloud.faults import FaultPlan
from jobgraph.localcloud.inventory import (
    read_functions,
    read_mappings,
    read_services,
    stack_resources,
)
from jobgraph.localcloud.lambda_runtime.code import CodeStore
from jobgraph.localcloud.lambda_runtime.functions import FunctionControl, LocalFunction
from jobgraph.localcloud.observability.cloudwatch import MotoCloudWatch, ServiceMetrics
from jobgraph.localcloud.observability.control import MetricsControl
from jobgraph.localcloud.server import LocalEndpoint
from jobgraph.localcloud.timescale import LOCAL_RETRY_DELAY_S

log = logging.getLogger(__name__)

RECONCILE_INTERVAL_S = 1.0
SAMPLE_INTERVAL_S = 2.0


class Controller(FunctionControl, MappingControl, ServiceControl, MetricsControl):
    """Runs what is deployed into ``endpoint``; ``start()`` attaches it, ``stop()`` stops every process it started."""

    def __init__(
        self,
        endpoint: LocalEndpoint,
        work_dir: Path,
        *,
        faults: FaultPlan | None = None,
        max_workers: int | None = None,
        retry_delay_s: int = LOCAL_RETRY_DELAY_S,
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
            self._delete_alarms(operation)
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
            self._delete_alarms(operation)
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
            self._forget_the_gone(functions, services)

    def _forget_the_gone(self, functions: dict, services: dict) -> None:
        """A function or service deleted (with its stack) takes its failure along: `cloud status` names only what
        exists; the stack's events keep the reason."""
        present = {revision.name for revision in functions.values()} | {arn.rsplit("/", 1)[-1] for arn in services}
        for name in list(self.failures):
            if name != "controller" and name not in present:
                self.failures.pop(name, None)

    # --- failures ------------------------------------------------------------------------------------------
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
