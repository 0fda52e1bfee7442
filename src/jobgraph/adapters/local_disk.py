"""BlobStore on a local folder, mirroring the S3 layout key for key."""

from __future__ import annotations

import os
import shutil
import tempfile
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


def check_destination(out_dir: Path, run_id: str, overwrite: bool) -> Path:
    """``out_dir/run_id``; JobGraphError if it exists and may not be replaced."""
    destination = Path(out_dir) / run_id
    if destination.exists() and not overwrite:
        raise JobGraphError(f"{destination} already exists; choose another --run-id or pass --overwrite")
    return destination


@contextmanager
def staged_run(out_dir: Path, run_id: str, *, overwrite: bool) -> Iterator[LocalDiskBlobStore]:
    """A hidden staging store beside ``out_dir/run_id``: its ``<run_id>/`` replaces the destination only when
    the block succeeds, so a failed or interrupted run never leaves a complete-looking result behind."""
    destination = check_destination(out_dir, run_id, overwrite)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(out_dir) / f".{run_id}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        yield LocalDiskBlobStore(staging)
        if destination.exists():
            shutil.rmtree(destination)
        (staging / run_id).rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
