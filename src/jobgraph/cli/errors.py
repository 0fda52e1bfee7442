"""Every CLI error is one line on stderr and a non-zero exit, never a traceback (issue 17.2).

- ``OneLineParser``: argparse's errors as ``error: jobgraph run: argument --seed: ... (see jobgraph run --help)``
  instead of a usage block plus the error.
- ``report(args, exc)``: an error jobgraph raises on purpose prints its first line; its full text, when longer,
  goes to a log file the line points at. A file system error names the file and the reason (a path the user
  gave that cannot be read or written). Anything else (a bug, a failure nobody translated) prints its type
  and first line, with its traceback in that log file; ``--debug`` prints the traceback as well.

The log file is ``<--out>/.logs/jobgraph-error-<time>-<pid>.log`` when that ``.logs`` folder exists (runs make
it for their function logs), else in the system's temporary folder: never a folder jobgraph did not make.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from jobgraph.core.errors import one_line


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {one_line(message)} (see {self.prog} --help)\n")


def _log_folder(args: argparse.Namespace) -> Path:
    out = getattr(args, "out", None)
    logs = Path(out) / ".logs" if out is not None else None
    if logs is not None and logs.is_dir() and not logs.is_symlink() and os.access(logs, os.W_OK):
        return logs
    return Path(tempfile.gettempdir())


def write_log(args: argparse.Namespace, text: str) -> Path | None:
    """``text`` into a fresh log file (see the module docstring); None if even that cannot be written."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for folder in (_log_folder(args), Path(tempfile.gettempdir())):
        try:
            path = folder / f"jobgraph-error-{stamp}-{os.getpid()}.log"
            path.write_text(f"jobgraph {' '.join(sys.argv[1:])}\n\n{text}")
            return path
        except OSError:
            continue
    return None


def report(args: argparse.Namespace, exc: BaseException, *, expected: bool) -> None:
    """Print ``exc`` as one line on stderr (details to a log file when there are more)."""
    debug = getattr(args, "debug", False)
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        exc, expected = OSError(f"{exc.filename}: {exc.strerror}"), True  # a path given that cannot be used
    text = str(exc) if expected else f"{type(exc).__name__}: {exc}"
    line = one_line(text)
    detail = text if expected else "".join(traceback.format_exception(exc))
    if expected and line == text.strip():
        print(f"error: {line}", file=sys.stderr)
        return
    if debug:
        print(detail, file=sys.stderr, end="" if detail.endswith("\n") else "\n")
    path = write_log(args, detail)
    where = f"details in {path}" if path else "details could not be written"
    hint = "" if expected or debug else "; --debug prints the traceback"
    print(f"error: {line} ({where}{hint})", file=sys.stderr)
