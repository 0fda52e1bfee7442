"""localcloud/lifetime.py: children die with their parent (kill -9 included) and exit soon after SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from jobgraph.localcloud import lifetime
from tests.processes import alive

SRC = str(Path(lifetime.__file__).resolve().parents[2])

# a parent that spawns a child (tied to it), which starts a grandchild in its own group; both print their pids
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    from jobgraph.localcloud import lifetime
    child = lifetime.spawn([sys.executable, "-c", sys.argv[1]], stdout=sys.stdout)
    time.sleep(600)
    """
)
CHILD = textwrap.dedent(
    """
    import subprocess, sys, time
    from jobgraph.localcloud import lifetime
    assert lifetime.follow_parent()
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(__import__("os").getpid(), grandchild.pid, flush=True)
    time.sleep(600)
    """
)


def wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def test_kill_9_of_the_parent_takes_children_and_grandchildren_along():
    env = {**os.environ, "PYTHONPATH": SRC}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD], stdout=subprocess.PIPE, text=True, env=env)
    try:
        child, grandchild = (int(p) for p in parent.stdout.readline().split())
        assert alive(child) and alive(grandchild)
        parent.kill()
        parent.wait()
        assert wait_gone([child, grandchild], 5) == []
    finally:
        parent.kill()


def test_stop_group_stops_what_the_child_started():
    child = lifetime.spawn(
        [sys.executable, "-c", CHILD], env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.PIPE, text=True
    )
    _pid, grandchild = (int(p) for p in child.stdout.readline().split())
    assert lifetime.stop_group(child, grace_s=2) == -signal.SIGTERM
    assert wait_gone([grandchild], 2) == []
    assert lifetime.stop_group(child, grace_s=2) == -signal.SIGTERM  # twice is fine


def test_a_child_without_a_lifeline_is_told_so():
    code = "from jobgraph.localcloud import lifetime; print(lifetime.follow_parent())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC}, capture_output=True)
    assert out.stdout.strip() == b"False"


def test_sigterm_backstop_ends_a_process_whose_handler_keeps_working():
    # a program that, like the ECS worker, only sets a flag on SIGTERM and then keeps "finishing its batch"
    code = textwrap.dedent(
        """
        import signal, time
        from jobgraph.localcloud import lifetime
        signal.signal(signal.SIGTERM, lambda *_: print("stopping", flush=True))
        lifetime.backstop_signals(1.0)
        print("ready", flush=True)
        while True:
            time.sleep(0.05)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 143
        assert 0.9 < time.monotonic() - started < 5
        assert process.stdout.read().strip() == "stopping"
    finally:
        process.kill()
