"""Lambda functions of the local cloud: each deployed function's current revision runs in a pool of workers of
the local runtime; direct (RequestResponse), asynchronous (Event) and Step Functions task invocations.

``FunctionControl`` is the Controller's part for functions (controller.py composes it): it uses the controller's
endpoint, code store, stats, state lock and failures.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jobgraph.localcloud.inventory import FunctionRevision, read_functions
from jobgraph.localcloud.lambda_runtime.code import layer_path
from jobgraph.localcloud.lambda_runtime.interpreters import RuntimeNotAvailable, interpreter_for
from jobgraph.localcloud.lambda_runtime.runtime import DirectPool, default_max_workers, function_spec
from jobgraph.localcloud.lambda_runtime.workers import FunctionSpec, HandlerImportError, Invocation, Worker

EVENT_RETRIES = 2  # Lambda retries a failed asynchronous (Event) invocation twice
EVENT_RETRY_DELAY_S = 1.0  # local time scale: AWS waits about 1 and 2 minutes


@dataclass
class LocalFunction:
    revision: FunctionRevision
    spec: FunctionSpec
    pool: DirectPool
    retired: bool = False


class FunctionControl:
    """The functions deployed, installed and invoked (a part of the Controller)."""

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

    def _function_named(self, name_or_arn: str) -> LocalFunction | None:
        name = _function_name(name_or_arn)
        return next((f for f in self.functions.values() if f.revision.name == name), None)

    def function(self, name_or_arn: str) -> LocalFunction | None:
        """The current revision of a deployed function (prepared now if the controller has not seen it yet)."""
        found = self.functions.get(name_or_arn) or self._function_named(name_or_arn)
        if found is not None:
            return found
        with self.endpoint.lock:
            revisions = read_functions()
        name = _function_name(name_or_arn)
        revision = revisions.get(name_or_arn) or next((r for r in revisions.values() if r.name == name), None)
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


def _function_name(name_or_arn: str) -> str:
    """The function name in a name or a (possibly qualified) function ARN."""
    return name_or_arn.split(":function:", 1)[-1].split(":", 1)[0]


class _EndpointWorker(Worker):
    """A worker whose handler import errors are invocation errors, as Lambda's (Runtime.ImportModuleError),
    logged to the function's log group, instead of stopping whoever invoked it."""

    def __init__(self, spec: FunctionSpec, log_path: Path, *, observer, controller):
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
