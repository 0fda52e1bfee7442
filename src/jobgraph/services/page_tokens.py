"""Pagination tokens the status API hands out, signed so that a token it did not make is refused (400).

A token is ``base64url(payload) "." base64url(HMAC-SHA256(secret, payload)[:16])``; the payload (the listing's
run, status filter and DynamoDB start key) is read only once the signature matches, so a forged or edited
token never reaches DynamoDB (which would answer a malformed start key with a 500-worthy ValidationException).
The secret is per deployment: 32 random bytes kept in the jobs table (``core.ports.ConfigStore.page_token_secret``),
made by the first API call that needs it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

MAX_TOKEN_CHARS = 4096
_SIGNATURE_BYTES = 16


class ForgedTokenError(ValueError):
    """The token was not made by this deployment (or was changed)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def encode(secret: bytes, document: dict[str, Any]) -> str:
    payload = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(payload)}.{_b64(_signature(secret, payload))}"


def decode(secret: bytes, token: str) -> dict[str, Any]:
    """The document of a token this deployment made; ForgedTokenError for anything else."""
    body, dot, signature = token.partition(".")
    if not dot or len(token) > MAX_TOKEN_CHARS:
        raise ForgedTokenError("not a token this API made")
    try:
        payload, given = _unb64(body), _unb64(signature)
    except (binascii.Error, ValueError):
        raise ForgedTokenError("not a token this API made") from None
    if not hmac.compare_digest(given, _signature(secret, payload)):
        raise ForgedTokenError("not a token this API made (bad signature)")
    document = json.loads(payload)
    if not isinstance(document, dict):
        raise ForgedTokenError("not a token this API made")
    return document
