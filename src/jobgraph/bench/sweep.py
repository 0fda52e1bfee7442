"""`jobgraph sweep`: the same graph at several Processor memory sizes / architectures, then compared.

Lambda Power Tuning for a whole job graph: for each setting the graph runs (on the local cloud with the
setting as template parameters, or on AWS after redeploying the stack with it), each run is recorded
(run.json) and `jobgraph compare` draws the cost-against-time sweep. Locally every worker is a process on
this machine, so memory changes the price but not the speed; on AWS CPU scales with memory.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jobgraph.core.bounds import quote
from jobgraph.core.errors import JobGraphError

ARCHITECTURES = ("x86_64", "arm64")


class SweepError(JobGraphError):
    """A sweep setting is invalid, or redeploying the stack for one failed."""


@dataclass(frozen=True)
class SweepPoint:
    memory_mb: int
    architecture: str

    def run_id(self, prefix: str) -> str:
        return f"{prefix}-{self.memory_mb}mb-{self.architecture.replace('_', '')}"

    def parameters(self) -> dict[str, str]:
        return {"ProcessorMemorySize": str(self.memory_mb), "Architecture": self.architecture}


def sweep_points(memories: str, architectures: str) -> list[SweepPoint]:
    """``"256,1024"`` x ``"x86_64,arm64"``; a clear error names the bad value."""
    words = [m.strip() for m in memories.split(",") if m.strip()]
    if not all(m.isascii() and m.isdigit() for m in words):
        raise SweepError(f"--memory {quote(memories)}: a comma-separated list of MB, e.g. 256,512,1024")
    bad = [m for m in words if len(m) > 5 or not 128 <= int(m) <= 10240]  # len first: int() of 10⁵ digits is slow
    if not words or bad:
        listed = ", ".join(bad)
        bad_text = "none given" if not bad else f"[{listed}]" if len(listed) <= 40 else quote(listed, 40)
        raise SweepError(f"--memory {quote(memories, 40)}: Lambda memory is 128..10240 MB (bad: {bad_text})")
    archs = [a.strip() for a in architectures.split(",") if a.strip()]
    unknown = [a for a in archs if a not in ARCHITECTURES]
    if not archs or unknown:
        raise SweepError(f"--architecture {quote(architectures)}: choose from {', '.join(ARCHITECTURES)}")
    return [SweepPoint(int(m), a) for a in archs for m in words]


def deploy_command(env: str, point: SweepPoint, test_run_id: str) -> list[str]:
    """Redeploy scenario-1-<env> with the point's settings (the Makefile's deploy: tags, parameters)."""
    return [
        "make", "deploy", f"ENV={env}", f"TEST_RUN_ID={test_run_id}", f"LAYER_ARCH={point.architecture}",
        f"PARAMS=ProcessorMemorySize={point.memory_mb}",
    ]  # fmt: skip


def redeploy(env: str, point: SweepPoint, test_run_id: str, runner: Callable = subprocess.run) -> None:
    command = deploy_command(env, point, test_run_id)
    result = runner(command)
    if result.returncode != 0:
        raise SweepError(f"redeploy for {point.memory_mb} MB {point.architecture} failed: {shlex.join(command)}")


def sweep(
    points: list[SweepPoint],
    prefix: str,
    run_one: Callable[[SweepPoint, str], Path],
    before_each: Callable[[SweepPoint, str], None] = lambda _point, _run_id: None,
) -> list[Path]:
    """Runs every point (``before_each``, e.g. a redeploy, then ``run_one``); returns the run folders."""
    folders = []
    for point in points:
        run_id = point.run_id(prefix)
        before_each(point, run_id)
        folders.append(run_one(point, run_id))
    return folders
