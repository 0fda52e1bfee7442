"""Waiting on and watching processes and servers the tests start: free loopback ports, polling with a deadline,
a process's children, `jobgraph` run as a process of its own, and `jobgraph run --serve` kept up after its run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port free now (other sessions run tests at the same time: never a fixed port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for[T](check: Callable[[], T], what: str, timeout_s: float = 60.0, every_s: float = 0.5) -> T:
    """``check()``'s first truthy value, polled every ``every_s``; fails naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what} ({timeout_s:.0f} s)")


def children(pid: int) -> set[int]:
    """The process's direct children, from every one of its threads."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "children").read_text().split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        found.update(int(child) for child in text)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie, ended but not yet reaped, is not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def started_children(process: subprocess.Popen, count: int, timeout_s: float = 120) -> set[int]:
    """The process's children once it has ``count`` of them (a run's worker processes); fails if it ends first."""
    deadline = time.monotonic() + timeout_s
    found: set[int] = set()
    while time.monotonic() < deadline and len(found) < count:
        assert process.poll() is None, process.communicate()
        found = children(process.pid)
        time.sleep(0.2)
    assert len(found) >= count, "the run never started its worker processes"
    return found


def jobgraph_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout_s: float = 300
) -> subprocess.CompletedProcess:
    """`jobgraph ARGS` as a user's shell runs it, in a process of its own: its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "jobgraph.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


SERVED = "run done; the local cloud stays up"


@dataclass
class ServedRun:
    base: str  # the status API's URL
    lines: list[str]  # the command's output up to the end of its run

    @property
    def output(self) -> str:
        return "".join(self.lines)


@contextmanager
def served_run(args: list[str], ready_within_s: float) -> Iterator[ServedRun]:
    """`jobgraph run ARGS --serve --api-port PORT` as a user's shell starts it, once its run is done and the local
    cloud stays up; on leaving, Ctrl-C, which must stop it with exit code 0."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jobgraph.cli", "run", *args, "--serve", "--api-port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # a background CI shell ignores SIGINT; the child must not inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    served = ServedRun(f"http://127.0.0.1:{port}", [])
    try:
        deadline = time.monotonic() + ready_within_s
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            served.lines.append(line)
            if SERVED in line:
                break
        assert SERVED in served.output, served.output
        yield served
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, served.output
