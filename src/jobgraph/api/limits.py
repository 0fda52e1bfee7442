"""Request limits of the status API, applied before FastAPI parses a body (an ASGI middleware).

- A body over MAX_BODY_BYTES is answered 413 without being read further: the Content-Length is checked
  first, and a body sent without one (chunked) is counted as it arrives. An 80 MB body costs nothing.
- A JSON body nested deeper than 32 levels or holding a number of more than 20 digits is answered 400
  before Python's json recurses or converts it (core/bounds.py, the same bounds as sequence files).

On AWS, API Gateway's HTTP API caps a request at 10 MB and Lambda's synchronous invoke at 6 MB, neither
configurable (no WAF on HTTP APIs): this middleware, inside the ApiFunction, is what enforces the stated limit.
Locally (`jobgraph serve`), uvicorn hands the body over in chunks and this is the only limit.
"""

from __future__ import annotations

import json

from jobgraph.core.bounds import JsonBoundsError, check_json_text

# POST /runs takes up to 500 sequences (api/schemas.py): 500 x 16 routes, pretty-printed, is ~1.3 MB
MAX_BODY_BYTES = 2 * 1024 * 1024
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


async def _reply(send, status: int, code: str, message: str, field: str) -> None:
    body = json.dumps({"error": code, "message": message, "errors": [{"field": field, "message": message}]})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


class BodyLimits:
    """413 over ``max_bytes``, 400 for a JSON body out of bounds; the body is then replayed to the app."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        too_large = f"request body over {self.max_bytes} bytes"
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await _reply(send, 413, "payload_too_large", too_large, "body")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await _reply(send, 413, "payload_too_large", too_large, "body")
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if b"json" in headers.get(b"content-type", b"application/json"):
            try:
                check_json_text(body.decode("utf-8", errors="replace"))
            except JsonBoundsError as exc:
                return await _reply(send, 400, "bad_request", f"request body refused before parsing: {exc}", "body")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)
