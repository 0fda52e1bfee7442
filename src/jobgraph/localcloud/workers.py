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
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from jobgraph.core.errors import JobGraphError
from jobgraph.localcloud import lifetime, sandbox
from jobgraph.localcloud.interpreters import interpreter_for
from jobgraph.localcloud.sandbox import KILL_EXIT_CODE, InjectedFault

__all__ = ["KILL_EXIT_CODE", "FunctionSpec", "HandlerImportError", "InjectedFault", "Invocation", "Worker"]

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


class HandlerImportError(JobGraphError):
    """A function's handler cannot be imported (Lambda: Runtime.ImportModuleError); the run cannot progress."""


@dataclass
class Worker:
    """One execution environment (a process) for one function; respawned if it dies."""

    spec: FunctionSpec
    log_path: Path
    process: subprocess.Popen | None = None
    conn: Connection | None = None
    starts: int = 0
    python_version: str = ""  # of the interpreter running the handler, e.g. "3.13.0"
    _init_ms: float = field(default=0.0, repr=False)
    _fresh: bool = field(default=False, repr=False)

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

    def invoke(self, event: dict, fault: str | None = None) -> Invocation:
        if self.process is None or self.process.poll() is not None:
            self._start()
        cold, self._fresh = self._fresh, False
        init_ms = self._init_ms if cold else 0.0
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
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
                lifetime.stop_group(process, grace_s=0)  # whatever the dead handler started goes too
            error, died = f"worker process died (exit code {process and process.returncode})", True
        if error:
            elapsed = (time.perf_counter() - started) * 1000
            return Invocation(ok=False, error=error, duration_ms=elapsed, died=died, cold_start=cold, init_ms=init_ms)
        if kind == "ok":
            return Invocation(ok=True, result=payload[0], duration_ms=payload[1], cold_start=cold, init_ms=init_ms)
        return Invocation(ok=False, error=payload[0], duration_ms=payload[1], cold_start=cold, init_ms=init_ms)

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
