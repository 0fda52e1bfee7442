"""Which Python runs a function locally: the one its ``Runtime`` names (python3.13), not the CLI's own.

Looked up in this order, the first that is the runtime's version wins:
1. ``JOBGRAPH_PYTHON3_13`` (for Runtime python3.13; JOBGRAPH_PYTHON3_12 for python3.12, ...) — a path;
2. the interpreter running jobgraph, when it is that version (the usual case: `make venv` builds the
   virtualenv with Python 3.13, so the handlers' libraries are there);
3. ``python3.13`` on PATH, then pyenv's (``$PYENV_ROOT/versions/3.13.*``).
An interpreter found by 3. has only what is installed there: handlers that need libraries the local
stack's layers do not carry then fail to import with a message naming the interpreter.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from jobgraph.core.errors import JobGraphError


class RuntimeNotAvailable(JobGraphError):
    """No interpreter on this machine matches a function's Runtime."""


def runtime_version(runtime: str) -> tuple[int, int]:
    match = re.fullmatch(r"python(\d+)\.(\d+)", runtime or "")
    if not match:
        raise RuntimeNotAvailable(f"Runtime {runtime!r}: the local cloud runs python3.x runtimes only")
    return int(match[1]), int(match[2])


def override_variable(runtime: str) -> str:
    return "JOBGRAPH_" + runtime.upper().replace(".", "_")


@functools.cache
def _version_of(executable: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [executable, "-I", "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return int(out[0]), int(out[1])


def _candidates(runtime: str) -> list[str]:
    major, minor = runtime_version(runtime)
    found = []
    if sys.version_info[:2] == (major, minor):
        found.append(sys.executable)
    on_path = shutil.which(runtime)
    if on_path:
        found.append(on_path)
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"), "versions")
    found.extend(str(p) for p in sorted(pyenv.glob(f"{major}.{minor}.*/bin/{runtime}"), reverse=True))
    return found


def interpreter_for(runtime: str, function: str = "") -> str:
    """The path of a Python interpreter of ``runtime``'s version (see the module docstring for the order)."""
    wanted = runtime_version(runtime)
    who = f"{function}: " if function else ""
    override = os.environ.get(override_variable(runtime))
    if override:
        if _version_of(override) != wanted:
            raise RuntimeNotAvailable(
                f"{who}{override_variable(runtime)}={override} is not a Python {wanted[0]}.{wanted[1]} interpreter"
            )
        return override
    for candidate in _candidates(runtime):
        if candidate == sys.executable or _version_of(candidate) == wanted:
            return candidate
    raise RuntimeNotAvailable(
        f"{who}Runtime {runtime} needs a Python {wanted[0]}.{wanted[1]} interpreter and none was found "
        f"(looked at the running Python, PATH and pyenv). Install Python {wanted[0]}.{wanted[1]} "
        f"(e.g. `pyenv install {wanted[0]}.{wanted[1]}`) and run jobgraph from a virtualenv made with it "
        f"(`make venv` does), or set {override_variable(runtime)}=/path/to/{runtime}"
    )
