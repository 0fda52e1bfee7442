"""Nothing outlives its parent (issue 17.5): `kill -9` of `jobgraph run` (each scenario) or `jobgraph serve`
leaves no Lambda sandbox, ECS task or anything they started alive 5 s later.

Every process the command starts inherits a tag in its environment, so the check finds them all (children,
grandchildren, processes re-parented to init) by reading /proc/*/environ.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e
TAG = "JOBGRAPH_LIFETIME_TEST"


def tagged(tag: str) -> set[int]:
    needle = f"{TAG}={tag}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
            if needle in environment and "\nState:\tZ" not in (entry / "status").read_text():
                found.add(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def start(args: list[str], tag: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jobgraph.cli", *args],
        env={**os.environ, TAG: tag},
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        **kwargs,
    )


def kill_9_and_count_survivors(process: subprocess.Popen, tag: str, wait_s: float = 5.0) -> set[int]:
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + wait_s
    survivors = tagged(tag)
    while survivors and time.monotonic() < deadline:
        time.sleep(0.1)
        survivors = tagged(tag)
    for pid in survivors:  # leave the machine clean even when the test fails
        os.kill(pid, signal.SIGKILL)
    return survivors


def wait_for_children(process: subprocess.Popen, tag: str, count: int, timeout_s: float = 150) -> set[int]:
    deadline = time.monotonic() + timeout_s
    children: set[int] = set()
    while time.monotonic() < deadline:
        assert process.poll() is None, "the command ended before its workers started"
        children = tagged(tag) - {process.pid}
        if len(children) >= count:
            return children
        time.sleep(0.2)
    raise AssertionError(f"only {len(children)} worker processes after {timeout_s} s")


@pytest.mark.parametrize(("scenario", "workers"), [(1, 3), (2, 3), (3, 2)])
def test_kill_9_of_run_leaves_nothing_alive(tmp_path, scenario, workers):
    # Given a run of each scenario whose workers (sandboxes, ECS tasks) are up
    tag = uuid.uuid4().hex
    process = start(
        ["run", "--scenario", str(scenario), "--generate", "40", "--seed", "2", "--scenarios", "50",
         "--out", str(tmp_path), "--no-progress"],
        tag, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_children(process, tag, workers)
        # When the CLI is killed with SIGKILL (no handler runs), Then within 5 s nothing it started lives
        assert kill_9_and_count_survivors(process, tag) == set()
    finally:
        process.kill()


def test_kill_9_of_serve_leaves_nothing_alive(tmp_path):
    tag = uuid.uuid4().hex
    process = start(
        ["serve", "--port", "0", "--out", str(tmp_path)], tag, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        url = re.search(r"status API[^h]*(http://127\.0\.0\.1:\d+)", line)
        assert url, line
        # a run started through the API, so the server has Lambda workers running
        request = urllib.request.Request(
            f"{url.group(1)}/runs",
            data=json.dumps({"generate": {"count": 20, "seed": 1}, "scenarios": 50}).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        assert urllib.request.urlopen(request, timeout=30).status == 202
        wait_for_children(process, tag, 2)
        assert kill_9_and_count_survivors(process, tag) == set()
    finally:
        process.kill()


def test_a_second_run_of_the_same_id_is_refused_while_the_first_runs(tmp_path, capsys):
    # Given a run in progress into tmp_path
    tag = uuid.uuid4().hex
    args = ["run", "--generate", "40", "--seed", "2", "--scenarios", "50", "--out", str(tmp_path), "--no-progress"]
    first = start(args, tag, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_children(first, tag, 2)
        log = next((tmp_path / ".logs" / "example").rglob("*.log"))  # <function>/<worker>.log
        # When the same run is started again: refused in one line, the first run's logs untouched
        from jobgraph.cli.main import main

        assert main([*args, "--overwrite"]) == 1
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == f"error: run example: another jobgraph process is using {tmp_path / '.logs' / 'example'}; " \
            "wait for it or stop it"  # fmt: skip
        assert log.exists()
        assert kill_9_and_count_survivors(first, tag) == set()
    finally:
        first.kill()
