"""Local Lambda execution environments: one worker process per concurrency slot.

A worker imports the handler once (a cold start), then serves invocations until stopped (warm starts),
with the deployed function's environment plus AWS_ENDPOINT_URL, so handler code talks to the local
server without knowing it. Each worker is a fresh process of the interpreter the function's Runtime names
(interpreters.py) running sandbox.py, so python3.13 functions run on Python 3.13 whatever runs the CLI;
invocations travel over a socket pair as pickles. A process, not a fork: the parent runs the moto server
and poller threads, which must not be copied into a child. Each worker is tied to this process (lifetime.py):
its own process group, and it dies with the parent, even a parent killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from jobgraph.core.errors import JobGraphError
from jobgraph.localcloud import lifetime
from jobgraph.localcloud.lambda_runtime import lambdalogs, sandbox
from jobgraph.localcloud.lambda_runtime.interpreters import interpreter_for
from jobgraph.localcloud.lambda_runtime.sandbox import KILL_EXIT_CODE, InjectedFault

__all__ = [
    "KILL_EXIT_CODE",
    "FunctionSpec",
    "HandlerImportError",
    "InjectedFault",
    "Invocation",
    "InvocationObserver",
    "Worker",
]

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
    runtime: str = "python3.13"
    architecture: str = "x86_64"

    def for_sandbox(self) -> dict:
        """What sandbox.serve needs, as plain values (the other side may be another Python version)."""
        return {
            "function_name": self.function_name,
            "handler": self.handler,
            "code_dir": str(self.code_dir),
            "layer_dirs": [str(p) for p in self.layer_dirs],
            "timeout_s": self.timeout_s,
            "memory_mb": self.memory_mb,
            "arn": self.arn,
        }


@dataclass
class Invocation:
    ok: bool
    result: object = None
    error: str | None = None
    duration_ms: float = 0.0
    died: bool = False
    cold_start: bool = False
    init_ms: float = 0.0  # the handler's import (Lambda's INIT phase), on a cold start
    request_id: str = ""
    max_memory_mb: int = 0
    timed_out: bool = False
    log: list[tuple[int, str]] = field(default_factory=list, repr=False)  # (epoch ms, line): START … REPORT

    def error_document(self) -> dict:
        """The payload Lambda returns for a function error: {"errorType", "errorMessage"}."""
        error = self.error or "Unknown"
        if self.died:
            return {"errorType": "Runtime.ExitError", "errorMessage": error}
        if self.timed_out:
            return {"errorType": "Sandbox.Timedout", "errorMessage": error}
        error_type, _, message = error.partition(": ")
        return {"errorType": error_type, "errorMessage": message}


# called after every invocation with the worker and what happened (the local cloud's logs and metrics)
InvocationObserver = Callable[["Worker", Invocation], None]


class HandlerImportError(JobGraphError):
    """A function's handler cannot be imported (Lambda: Runtime.ImportModuleError); the run cannot progress."""


@dataclass
class Worker:
    """One execution environment (a process) for one function; respawned if it dies."""

    spec: FunctionSpec
    log_path: Path
    observer: InvocationObserver | None = None  # e.g. CloudWatch Logs /aws/lambda/<function> and metrics
    process: subprocess.Popen | None = None
    conn: Connection | None = None
    starts: int = 0
    python_version: str = ""  # of the interpreter running the handler, e.g. "3.13.0"
    stream: str = ""  # this environment's log stream (a new one per process, as Lambda's)
    _init_ms: float = field(default=0.0, repr=False)
    _fresh: bool = field(default=False, repr=False)
    _busy: bool = field(default=False, repr=False)

    def _start(self) -> None:
        interpreter = interpreter_for(self.spec.runtime, self.spec.logical_id)
        if self.conn is not None:
            self.conn.close()
        parent, child = socket.socketpair()
        with parent, child, open(self.log_path, "ab", buffering=0) as log:
            self.process = lifetime.spawn(
                [interpreter, "-I", sandbox.__file__, str(child.fileno())],
                env={**os.environ, **self.spec.environment},
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
            self.conn = Connection(os.dup(parent.fileno()))
        try:
            self.conn.send(self.spec.for_sandbox())
            kind, *payload = self.conn.recv()
        except (EOFError, OSError):
            kind, payload = "init-error", [f"the {self.spec.runtime} process exited (see {self.log_path})"]
        if kind != "ready":
            self.stop()
            raise HandlerImportError(
                f"{self.spec.logical_id}: handler {self.spec.handler} from {self.spec.code_dir} failed to import "
                f"under {interpreter}:\n{payload[0]}"
            )
        self._init_ms, self.python_version = payload[0], payload[1]
        self.starts += 1
        self._fresh = True
        self.stream = lambdalogs.stream_name()

    def invoke(self, event: dict, fault: str | None = None) -> Invocation:
        """Run one invocation; its START/END/REPORT lines and output go to the log file (and the observer)."""
        self._busy = True
        try:
            return self._invoke(event, fault)
        finally:
            self._busy = False

    def _invoke(self, event: dict, fault: str | None) -> Invocation:
        if self.process is None or self.process.poll() is not None:
            self._start()
        cold, self._fresh = self._fresh, False
        init_ms = self._init_ms if cold else 0.0
        request_id = str(uuid.uuid4())
        log = [self._platform_line(lambdalogs.start_line(request_id))]
        output_from = self._log_size()
        started = time.perf_counter()
        error, timed_out = None, False
        try:
            self.conn.send((event, fault, request_id))
            # Lambda's timeout: the environment is torn down, the batch counts as failed
            if not self.conn.poll(self.spec.timeout_s + TIMEOUT_GRACE_S):
                self._kill()
                error, died, timed_out = f"Task timed out after {self.spec.timeout_s} s", False, True
            else:
                kind, *payload = self.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            process, self.process = self.process, None
            if process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
                lifetime.stop_group(process, grace_s=0)  # whatever the dead handler started goes too
            error, died = f"worker process died (exit code {process and process.returncode})", True
        if error:
            elapsed = (time.perf_counter() - started) * 1000
            invocation = Invocation(
                ok=False, error=error, duration_ms=elapsed, died=died, cold_start=cold, init_ms=init_ms,
                timed_out=timed_out,
            )  # fmt: skip
        else:
            duration_ms, memory = payload[1], payload[2] if len(payload) > 2 else 0
            ok = kind == "ok"
            invocation = Invocation(
                ok=ok, result=payload[0] if ok else None, error=None if ok else payload[0], duration_ms=duration_ms,
                cold_start=cold, init_ms=init_ms, max_memory_mb=memory,
            )  # fmt: skip
        invocation.request_id = request_id
        invocation.log = log + self._output_since(output_from) + self._closing_lines(invocation)
        if self.observer is not None:
            self.observer(self, invocation)
        return invocation

    @property
    def busy(self) -> bool:
        """In an invocation right now (Lambda's ConcurrentExecutions counts these)."""
        return self._busy

    # --- the invocation's log lines ------------------------------------------------------------------
    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _platform_line(self, line: str) -> tuple[int, str]:
        """A line Lambda itself writes: into the environment's log file too (the function appends to it)."""
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
        return int(time.time() * 1000), line

    def _output_since(self, offset: int) -> list[tuple[int, str]]:
        """What the function wrote since ``offset``: it flushed before answering (sandbox.py)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return []
        now = int(time.time() * 1000)
        return [(now, line) for line in text.splitlines() if line.strip()]

    def _closing_lines(self, invocation: Invocation) -> list[tuple[int, str]]:
        request_id, spec = invocation.request_id, self.spec
        lines = []
        if invocation.timed_out:
            lines.append(self._platform_line(lambdalogs.timeout_line(request_id, spec.timeout_s)))
        lines.append(self._platform_line(lambdalogs.end_line(request_id)))
        status = "timeout" if invocation.timed_out else ("error" if invocation.died else None)
        report = lambdalogs.report_line(
            request_id,
            invocation.duration_ms,
            spec.memory_mb,
            invocation.max_memory_mb,
            invocation.init_ms if invocation.cold_start else None,
            status,
        )
        lines.append(self._platform_line(report))
        return lines

    def _kill(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            lifetime.stop_group(process, grace_s=0)

    def stop(self) -> None:
        """Ask the process to exit; kill it if it does not within 3 s (safe to call twice, from any thread)."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(BrokenPipeError, OSError):
            self.conn.send(None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=3)
        lifetime.stop_group(process, grace_s=1)  # a handler that ignores the request; what it started
        with contextlib.suppress(OSError):
            self.conn.close()
