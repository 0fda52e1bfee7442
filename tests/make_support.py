"""Running the project's Makefile from the tests: its targets, a clean `make`, a dry run and its recipe lines."""

from __future__ import annotations

import os
import re
import subprocess

from tests.lambda_support import ROOT

TAGS = ("PerfTestRun", "Purpose", "Environment", "Project")  # the tags every deploy passes


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", (ROOT / "Makefile").read_text(), re.MULTILINE))


def make(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    # a clean make: under `make test` the parent's MAKEFLAGS/MAKELEVEL would leak into this one
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=check
    )


def dry_run(*args: str) -> str:
    return make("-n", *args).stdout


def recipe_lines(out: str) -> list[str]:
    """Recipe lines of a dry run, continuation lines joined."""
    return [" ".join(c.replace("\\\n", " ").split()) for c in out.replace("\\\n", " ").splitlines() if c.strip()]
