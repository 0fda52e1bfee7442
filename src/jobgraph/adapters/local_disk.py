"""BlobStore on a local folder, mirroring the S3 layout key for key; a run's output folder (staged, marked, held);
the error log a one-line error points at."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobgraph.core.errors import JobGraphError, ObjectNotFoundError, StoreError


class LocalDiskBlobStore:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
            raise StoreError(f"invalid key {key!r}")
        return self.root.joinpath(*key.split("/"))

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # write-then-rename: a reader sees the old object or the whole new one, never a partial file
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFoundError(f"{key} not found in {self.describe()}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def describe(self) -> str:
        return str(self.root)


# --- run folders: <out>/<run_id>, replaced only when jobgraph wrote them (--overwrite) ---------------------

# Every run folder jobgraph writes carries this file (hidden: the blob store's listings skip it).
RUN_MARKER = ".jobgraph-run.json"
RUN_RECORD = "run.json"  # the run's record: its figures (bench/record.py), or why it failed (runs/execute.py)
# What jobgraph writes at the top of a run folder (GUIDE §5, the run record); anything else is someone's own.
RUN_ENTRIES = frozenset({"delays", "percentiles", "synthetic", "merged_percentiles.json", RUN_RECORD, RUN_MARKER})
_STAGING = re.compile(r"\.(?P<run_id>.+)\.partial-(?P<pid>[0-9]+)")


def check_out_dir(out_dir: Path) -> Path:
    """``out_dir``, created if needed and proven writable, before anything runs; JobGraphError otherwise."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise JobGraphError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".jobgraph-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise JobGraphError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return out


def foreign_entries(folder: Path) -> list[str]:
    """What in ``folder`` jobgraph did not write (empty: the folder may be replaced)."""
    entries = sorted(p.name for p in folder.iterdir())
    foreign = [name for name in entries if name not in RUN_ENTRIES]
    if (
        not foreign
        and entries
        and RUN_MARKER not in entries
        and not {"merged_percentiles.json", "run.json"} & set(entries)
    ):
        # only layout folders (delays/, ...) and no result or record: nothing says jobgraph made it
        return entries
    return foreign


def check_destination(out_dir: Path, run_id: str, overwrite: bool) -> Path:
    """``out_dir/run_id``, checked before a run starts: the out folder is writable, and an existing run
    folder is replaced only with --overwrite and only if jobgraph wrote it. JobGraphError otherwise."""
    destination = check_out_dir(out_dir) / run_id
    if not (destination.exists() or destination.is_symlink()):
        return destination
    if not overwrite:
        raise JobGraphError(f"{destination} already exists; choose another --run-id or pass --overwrite")
    if destination.is_symlink() or not destination.is_dir():
        kind = "a symbolic link" if destination.is_symlink() else "a file"
        raise JobGraphError(f"--overwrite: {destination} is {kind}, not a run folder jobgraph wrote; left as it is")
    try:
        foreign = foreign_entries(destination)
    except OSError as exc:
        raise JobGraphError(f"--overwrite: cannot read {destination} ({exc.strerror or exc})") from None
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise JobGraphError(
            f"--overwrite: {destination} holds what jobgraph did not write ({shown}); left as it is — "
            "move it away or choose another --run-id"
        )
    return destination


def mark_run_dir(folder: Path, run_id: str) -> None:
    """Mark ``folder`` as a run folder jobgraph wrote (what --overwrite may replace)."""
    marker = {"written_by": "jobgraph", "run_id": run_id}
    (Path(folder) / RUN_MARKER).write_text(json.dumps(marker) + "\n")


def fresh_run_dir(out_dir: Path, run_id: str, overwrite: bool) -> Path:
    """An empty, marked ``out_dir/run_id`` for a run whose folder holds its record only (a load's run.json);
    an existing folder is replaced only under :func:`check_destination`'s rules."""
    destination = check_destination(out_dir, run_id, overwrite)
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir()
    mark_run_dir(destination, run_id)
    return destination


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return bool(renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0)


def swap_into_place(staged: Path, destination: Path) -> None:
    """Put the finished ``staged`` folder at ``destination``: readers see the old folder or the new one."""
    if not destination.exists():
        staged.rename(destination)
        return
    if _exchange(staged, destination):
        shutil.rmtree(staged)  # it holds the old folder now
        return
    old = destination.with_name(f".{destination.name}.old-{os.getpid()}")
    destination.rename(old)
    staged.rename(destination)
    shutil.rmtree(old)


def _remove_stale_staging(out_dir: Path, run_id: str) -> None:
    """Staging folders of earlier runs of ``run_id`` whose process is gone (killed mid-run)."""
    for path in out_dir.glob(f".{glob.escape(run_id)}.partial-*"):
        match = _STAGING.fullmatch(path.name)
        if not match or match["run_id"] != run_id or not path.is_dir() or path.is_symlink():
            continue
        pid = int(match["pid"])
        try:
            if pid != os.getpid():  # this process stages one run of an id at a time: its own name is stale
                os.kill(pid, 0)
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue  # alive (another user's) or not a pid at all
        else:
            if pid != os.getpid():
                continue
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def staged_run(out_dir: Path, run_id: str, *, overwrite: bool) -> Iterator[LocalDiskBlobStore]:
    """A hidden staging store beside ``out_dir/run_id``: its ``<run_id>/`` replaces the destination only when
    the block succeeds (checked again then: --overwrite replaces only what jobgraph wrote), so a failed or
    interrupted run never leaves a complete-looking result behind."""
    check_destination(out_dir, run_id, overwrite)
    out = Path(out_dir)
    _remove_stale_staging(out, run_id)
    staging = out / f".{run_id}.partial-{os.getpid()}"
    staging.mkdir()  # fails rather than reuse a folder someone else made under this name
    try:
        yield LocalDiskBlobStore(staging)
        staged = staging / run_id
        staged.mkdir(exist_ok=True)
        mark_run_dir(staged, run_id)
        swap_into_place(staged, check_destination(out, run_id, overwrite))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def exclusive_folder(folder: Path, what: str) -> Iterator[Path]:
    """``folder`` (created), emptied and held for this process alone until the block ends; JobGraphError if
    another process holds it (two runs of one run id into one --out would write into each other's logs).

    The hold is a flock on the folder itself, which the kernel drops when the process ends however it ends,
    so a killed run never leaves a stale lock. The folder is emptied, not replaced, so the hold stays valid.
    """
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobGraphError(f"{what}: another jobgraph process is using {folder}; wait for it or stop it") from None
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        yield folder
    finally:
        os.close(fd)


def write_error_log(out: Path | None, text: str) -> Path | None:
    """``text`` in a fresh ``jobgraph-error-<time>-<pid>.log``, after the command that ran: in ``<out>/.logs`` when
    that folder exists (runs make it for their function logs), else in the system's temporary folder, never a
    folder jobgraph did not make. The path a one-line error points at; None if even that cannot be written."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    folders = [Path(tempfile.gettempdir())]
    logs = Path(out) / ".logs" if out is not None else None
    if logs is not None and logs.is_dir() and not logs.is_symlink() and os.access(logs, os.W_OK):
        folders.insert(0, logs)
    for folder in folders:
        for n in range(10):  # a second error of this process within the second gets its own file
            path = folder / f"jobgraph-error-{stamp}-{os.getpid()}{f'-{n}' if n else ''}.log"
            try:
                with path.open("x") as handle:  # never follows a link someone left under that name
                    handle.write(f"jobgraph {' '.join(sys.argv[1:])}\n\n{text}")
                return path
            except FileExistsError:
                continue
            except OSError:
                break
    return None
