"""Deployed code packages, unpacked where the local runtime can run them.

Lambda runs a function from its zip (and each layer from its own zip, under /opt). The local runtime unpacks
each package once per content (Lambda's CodeSha256) into ``<root>/<sha>/``, so a redeploy of unchanged code
costs nothing and an updated function gets a new folder. The fast in-process deploy (stack.py) zips source
folders itself and registers them with :func:`register_source`: those packages run from the folder they were
made of, which is what they contain.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import threading
import zipfile
from pathlib import Path

_SOURCES: dict[str, Path] = {}  # CodeSha256 -> the folder whose zip has that hash
_LOCK = threading.Lock()


def code_sha256(package: bytes) -> str:
    """Lambda's CodeSha256: the base64 of the package's SHA-256."""
    return base64.b64encode(hashlib.sha256(package).digest()).decode()


def register_source(package: bytes, folder: Path) -> str:
    """Remember that ``package`` is the zip of ``folder`` (run it from there); returns its CodeSha256."""
    sha = code_sha256(package)
    with _LOCK:
        _SOURCES[sha] = Path(folder)
    return sha


def _folder_name(sha: str) -> str:
    return base64.b64decode(sha).hex() if sha else "empty"


class CodeStore:
    """Unpacked packages under ``root``, one folder per CodeSha256."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._lock = threading.Lock()

    def folder(self, sha: str, package: bytes) -> Path:
        """The folder holding ``package`` (a zip), unpacked on first use."""
        with _LOCK:
            source = _SOURCES.get(sha)
        if source is not None and source.is_dir():
            return source
        target = self.root / _folder_name(sha)
        with self._lock:
            if target.is_dir():
                return target
            staging = target.with_name(target.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            with zipfile.ZipFile(io.BytesIO(package)) as archive:
                archive.extractall(staging)
            staging.rename(target)  # whole or not at all: a half-unpacked package is never used
        return target

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def layer_path(folder: Path) -> Path:
    """Lambda unpacks a layer to /opt and puts /opt/python on sys.path; a source layer is importable as is."""
    python = folder / "python"
    return python if python.is_dir() else folder
