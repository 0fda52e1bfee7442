"""Local Lambda execution environments: one worker process per concurrency slot.

A worker imports the handler once (a cold start), then serves invocations until stopped (warm starts),
with the deployed function's environment plus AWS_ENDPOINT_URL, so handler code talks to the local
server without knowing it. Workers are spawned, not forked: the parent runs the moto server and poller
threads, which must not be copied into a child.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.errors import JobGraphError
from jobgraph.localcloud.server import allow_loopback_only

KILL_EXIT_CODE = 137
TIMEOUT_GRACE_S = 1.0


@dataclass(frozen=True)
class FunctionSpec:
    """What the runtime needs to run one deployed function locally."""

    logical_id: str
    function_name: str
    handler: str  # "module.function", relative to code_dir
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    environment: dict[str, str]
    timeout_s: int
    memory_mb: int
    arn: str = ""


@dataclass
class Invocation:
    ok: bool
    result: object = None
    error: str | None = None
    duration_ms: float = 0.0
    died: bool = False
    cold_start: bool = False


class LocalLambdaContext:
    def __init__(self, spec: FunctionSpec, deadline: float):
        self.function_name = spec.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn or f"arn:aws:lambda:local:000000000000:function:{spec.function_name}"
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.function_name}"
        self.log_stream_name = f"local/{os.getpid()}"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class HandlerImportError(JobGraphError):
    """A function's handler cannot be imported (Lambda: Runtime.ImportModuleError); the run cannot progress."""


class InjectedFault(RuntimeError):
    """Raised by the fault injector (``jobgraph run --fail-rate``), never by real code."""


def _worker_main(spec: FunctionSpec, conn, log_path: str) -> None:
    # Ctrl-C reaches the whole process group; the parent stops workers in order instead
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    allow_loopback_only()
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    os.environ.update(spec.environment)
    for path in reversed([spec.code_dir, *spec.layer_dirs]):
        sys.path.insert(0, str(path))
    module_name, _, function_name = spec.handler.rpartition(".")
    started = time.perf_counter()
    try:
        module = __import__(module_name, fromlist=[function_name])
        handler = getattr(module, function_name)
    except BaseException:
        conn.send(("init-error", traceback.format_exc()))
        return
    conn.send(("ready", (time.perf_counter() - started) * 1000))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        event, fault = request
        context = LocalLambdaContext(spec, time.monotonic() + spec.timeout_s)
        started = time.perf_counter()
        try:
            if fault == "fail-before":
                raise InjectedFault("injected failure before side effects")
            if fault == "kill":
                # die mid-batch: the first half of the records has had its side effects
                records = event.get("Records", [])
                handler({**event, "Records": records[: max(1, len(records) // 2)]}, context)
                log.flush()
                os._exit(KILL_EXIT_CODE)
            result = handler(event, context)
            if fault == "fail-after":
                raise InjectedFault("injected failure after side effects")
            conn.send(("ok", result, (time.perf_counter() - started) * 1000))
        except Exception as exc:
            print(traceback.format_exc(), file=log)
            conn.send(("error", f"{type(exc).__name__}: {exc}", (time.perf_counter() - started) * 1000))


@dataclass
class Worker:
    """One execution environment (a process) for one function; respawned if it dies."""

    spec: FunctionSpec
    log_path: Path
    process: multiprocessing.Process | None = None
    conn: object = None
    starts: int = 0
    _fresh: bool = field(default=False, repr=False)

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main, args=(self.spec, child, str(self.log_path)), daemon=True, name=self.spec.logical_id
        )
        self.process.start()
        child.close()
        self.conn = parent
        kind, payload = parent.recv()
        if kind != "ready":
            self.stop()
            raise HandlerImportError(
                f"{self.spec.logical_id}: handler {self.spec.handler} from {self.spec.code_dir} failed to import:\n{payload}"
            )
        self.starts += 1
        self._fresh = True

    def invoke(self, event: dict, fault: str | None = None) -> Invocation:
        if self.process is None or not self.process.is_alive():
            self._start()
        cold, self._fresh = self._fresh, False
        started = time.perf_counter()
        error = None
        try:
            self.conn.send((event, fault))
            # Lambda's timeout: the environment is torn down, the batch counts as failed
            if not self.conn.poll(self.spec.timeout_s + TIMEOUT_GRACE_S):
                self._kill()
                error, died = f"Task timed out after {self.spec.timeout_s} s", False
            else:
                kind, *payload = self.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            process, self.process = self.process, None
            if process is not None:
                process.join(timeout=5)
            error, died = f"worker process died (exit code {process and process.exitcode})", True
        if error:
            elapsed = (time.perf_counter() - started) * 1000
            return Invocation(ok=False, error=error, duration_ms=elapsed, died=died, cold_start=cold)
        if kind == "ok":
            return Invocation(ok=True, result=payload[0], duration_ms=payload[1], cold_start=cold)
        return Invocation(ok=False, error=payload[0], duration_ms=payload[1], cold_start=cold)

    def _kill(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.join(timeout=5)

    def stop(self) -> None:
        """Ask the process to exit; kill it if it does not within 3 s (safe to call twice, from any thread)."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(BrokenPipeError, OSError):
            self.conn.send(None)
        process.join(timeout=3)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
