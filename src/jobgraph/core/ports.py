"""Ports: what the core needs from storage, independent of where the bytes live."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class BlobStore(Protocol):
    """Keyed bytes (an S3 bucket prefix or a folder). Keys use '/' separators and never start with '/'."""

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key``; readers never see a partial object."""

    def get(self, key: str) -> bytes:
        """Return the bytes under ``key``; raise ObjectNotFoundError when absent."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix``, sorted."""

    def describe(self) -> str:
        """Human-readable location (for messages)."""
