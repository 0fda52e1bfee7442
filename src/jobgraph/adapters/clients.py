"""The AWS clients the adapters talk through: one boto3 client per service and process, made on first use
(boto3 is imported then, not at a Lambda's cold start), unless the adapter was given its own."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def default_client(service: str) -> Any:
    import boto3  # honours AWS_ENDPOINT_URL, so the local cloud needs no special code

    return boto3.client(service)


class LazyClient:
    """An adapter's ``client`` attribute: the client given to its constructor (kept in ``_client``), else
    ``default_client(service)``, made when first used."""

    def __init__(self, service: str):
        self.service = service

    def __get__(self, adapter: Any, owner: type | None = None) -> Any:
        if adapter is None:
            return self
        if adapter._client is None:
            adapter._client = default_client(self.service)
        return adapter._client
