"""Every CLI error is one line on stderr and a non-zero exit, never a traceback (issue 17.2).

- ``OneLineParser``: argparse's errors as ``error: jobgraph run: argument --seed: ... (see jobgraph run --help)``
  instead of a usage block plus the error.
- ``report(args, exc)``: an error jobgraph raises on purpose prints its first line; its full text, when longer,
  goes to a log file the line points at. A file system error names the file and the reason (a path the user
  gave that cannot be read or written). Anything else (a bug, a failure nobody translated) prints its type
  and first line, with its traceback in that log file; ``--debug`` prints the traceback as well.

The log file is ``<--out>/.logs/jobgraph-error-<time>-<pid>.log`` when that ``.logs`` folder exists (runs make
it for their function logs), else in the system's temporary folder: never a folder jobgraph did not make
(adapters.local_disk.write_error_log, which a failed run's record also falls back on).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from jobgraph.adapters.local_disk import write_error_log
from jobgraph.core.errors import one_line


def usage_line(prog: str, message: str) -> str:
    """A usage error as argparse's are printed (exit 2): also for a check argparse cannot express."""
    return f"error: {prog}: {one_line(message)} (see {prog} --help)"


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, usage_line(self.prog, message) + "\n")


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
    out = getattr(args, "out", None)
    path = write_error_log(Path(out) if out is not None else None, detail)
    where = f"details in {path}" if path else "details could not be written"
    hint = "" if expected or debug else "; --debug prints the traceback"
    print(f"error: {line} ({where}{hint})", file=sys.stderr)
