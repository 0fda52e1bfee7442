"""Every AWS API call the local cloud answers, counted by service and action (the local usage counters).

The moto server's WSGI app is wrapped by ``RequestMeter.wrap``: each request is classified from what
every AWS SDK sends anyway — the SigV4 credential scope names the service; the action comes from
``X-Amz-Target`` (JSON protocols: SQS, DynamoDB, Step Functions), the Smithy RPC path
(``/service/…/operation/<Action>``: CloudWatch), the ``Action`` form field (query protocol:
CloudFormation, SNS, IAM) or the REST method and path (S3, Lambda). Requests made by the run harness
itself (its clients carry ``HARNESS_USER_AGENT``: progress polling, export) are kept apart from the
workload's, so figures per job describe the job graph, not the tool watching it.

Billing units are derived per request as AWS defines them: SQS bills each 64 KB chunk of a request's
payload as one request; DynamoDB on-demand bills a write request unit per 1 KB written (2 in a
transaction) and a read request unit per 4 KB read (strongly consistent; 2 in a transaction). Sizes are
estimates close to, but not exactly, DynamoDB's own accounting (which bills an item's size): a PutItem's
item, an UpdateItem's key and values (not its expression text), other requests' HTTP bodies.
"""

from __future__ import annotations

import io
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

HARNESS_USER_AGENT = "jobgraph-harness"
SQS_CHUNK = 64 * 1024
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_SMITHY = re.compile(r"^/service/[^/]+/operation/([^/?]+)")
_DYNAMO_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_DYNAMO_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}


def _s3_action(method: str, path: str, query: str) -> str:
    has_key = "/" in path.strip("/")
    if method == "PUT":
        return "PutObject" if has_key else "CreateBucket"
    if method == "GET":
        return "GetObject" if has_key else ("ListObjectsV2" if "list-type=2" in query else "ListObjects")
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "DELETE":
        return "DeleteObject" if has_key else "DeleteBucket"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return f"{method} {'object' if has_key else 'bucket'}"


def _lambda_action(method: str, path: str) -> str:
    if path.endswith("/invocations"):
        return "Invoke"
    parts = [p for p in path.split("/") if p and not p[:4].isdigit()]
    return f"{method} /{'/'.join(parts[:1])}"


def classify(environ: dict, body: bytes) -> tuple[str, str]:
    """(service, action) of one request, e.g. ("sqs", "SendMessageBatch")."""
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = scope.group(1) if scope else "unsigned"
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    path, method, query = (
        environ.get("PATH_INFO", "/"),
        environ.get("REQUEST_METHOD", "GET"),
        environ.get("QUERY_STRING", ""),
    )
    if target:
        return service, target.rsplit(".", 1)[-1]
    smithy = _SMITHY.match(path)
    if smithy:
        return service, smithy.group(1)
    if service == "s3":
        return service, _s3_action(method, path, query)
    if service == "lambda":
        return service, _lambda_action(method, path)
    fields = parse_qs(query)
    if not fields.get("Action") and body and "form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        fields = parse_qs(body.decode("utf-8", "replace"))
    action = (fields.get("Action") or [f"{method} {path.split('?')[0][:40]}"])[0]
    return service, action


CLASSIFIED = "jobgraph.classified"  # WSGI environ key: the request's (service, action), once it is known


def request_origin(environ: dict) -> str:
    """``control`` (the local cloud's own /moto-api calls: neither counted nor delayed), ``harness`` (the run
    harness's clients: counted apart) or ``workload`` (what the job graph does)."""
    if environ.get("PATH_INFO", "").startswith("/moto-api"):
        return "control"
    return "harness" if HARNESS_USER_AGENT in environ.get("HTTP_USER_AGENT", "") else "workload"


def classified(environ: dict, body: bytes) -> tuple[str, str]:
    """classify(), once per request: the meter's hooks, its counters, its observers and the latency profile
    (latency.py) all ask, some inside the server's lock."""
    found = environ.get(CLASSIFIED)
    if found is None:
        found = environ[CLASSIFIED] = classify(environ, body)
    return found


def _written_bytes(body: bytes, action: str) -> int:
    """The bytes of item a single-item write bills: PutItem's item, UpdateItem's key and values (its
    expressions and names are not stored), a DeleteItem's key; the whole body otherwise."""
    if action not in ("PutItem", "UpdateItem", "DeleteItem"):
        return len(body)
    try:
        request = json.loads(body)
    except ValueError:
        return len(body)
    parts = {"PutItem": ("Item",), "UpdateItem": ("Key", "ExpressionAttributeValues"), "DeleteItem": ("Key",)}
    return sum(len(json.dumps(request.get(part, {}), separators=(",", ":"))) for part in parts[action])


def _items(body: bytes, action: str) -> int:
    """Items a multi-item write touches (each is billed at least one unit); 1 for single-item writes."""
    if action not in ("TransactWriteItems", "BatchWriteItem"):
        return 1
    try:
        request = json.loads(body)
    except ValueError:
        return 1
    if action == "TransactWriteItems":
        return len(request.get("TransactItems", [])) or 1
    return sum(len(items) for items in request.get("RequestItems", {}).values()) or 1


def dynamodb_units(action: str, request_body: bytes, response_bytes: int) -> tuple[str | None, float]:
    """("dynamodb_wru" | "dynamodb_rru" | None, units) one DynamoDB request consumes (module docstring)."""
    if action in _DYNAMO_WRITES:
        written = max(_items(request_body, action), math.ceil(_written_bytes(request_body, action) / 1024))
        return "dynamodb_wru", written * (2 if action.startswith("Transact") else 1)
    if action in _DYNAMO_READS:
        read = max(1, math.ceil(response_bytes / 4096))
        return "dynamodb_rru", read * (2 if action.startswith("Transact") else 1)
    return None, 0


# called after each request with (service, action, request body, response body), inside the server's lock
RequestObserver = Callable[[str, str, bytes, bytes], None]
# called before a request is answered with (service, action), inside the server's lock
RequestHook = Callable[[str, str], None]


@dataclass
class RequestMeter:
    """Thread-safe counters; ``snapshot()`` returns plain dicts for reports and run records.

    ``observers`` see every request and its response (the local CloudWatch's SQS/DynamoDB metrics);
    ``before`` hooks run before a request is answered (the CloudWatch metrics are flushed before a read).
    """

    requests: Counter = field(default_factory=Counter)  # (origin, service, action) -> requests
    units: Counter = field(default_factory=Counter)  # (origin, unit) -> billing units
    lock: threading.Lock = field(default_factory=threading.Lock)
    observers: list[RequestObserver] = field(default_factory=list)
    before: list[RequestHook] = field(default_factory=list)

    def record(self, environ: dict, request_body: bytes, response_bytes: int) -> None:
        service, action = classified(environ, request_body)
        origin = request_origin(environ)
        units: dict[str, float] = {}
        if service == "sqs":
            units["sqs_requests_64kb"] = max(1, math.ceil(max(len(request_body), response_bytes) / SQS_CHUNK))
        elif service == "dynamodb":
            kind, consumed = dynamodb_units(action, request_body, response_bytes)
            if kind is not None:
                units[kind] = consumed
        elif service == "s3":
            kind = "s3_get" if action in ("GetObject", "HeadObject") else "s3_put"
            units[kind] = 1
        with self.lock:
            self.requests[(origin, service, action)] += 1
            for unit, value in units.items():
                self.units[(origin, unit)] += value

    def wrap(self, app):
        """WSGI middleware: count the request, then pass it (with its body intact) to ``app``."""

        def metered(environ, start_response):
            if request_origin(environ) == "control":
                return app(environ, start_response)
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            service, action = classified(environ, body)
            for hook in self.before:
                hook(service, action)
            chunks = list(app(environ, start_response))
            self.record(environ, body, sum(len(c) for c in chunks))
            if self.observers:
                response = b"".join(chunks)
                for observer in self.observers:
                    observer(service, action, body, response)
            return chunks

        return metered

    def snapshot(self, origin: str = "workload") -> dict:
        with self.lock:
            by_service: dict[str, dict[str, int]] = {}
            for (who, service, action), count in sorted(self.requests.items()):
                if who == origin:
                    by_service.setdefault(service, {})[action] = count
            units = {unit: value for (who, unit), value in sorted(self.units.items()) if who == origin}
        return {
            "requests": by_service,
            "units": units,
            "total_requests": sum(sum(a.values()) for a in by_service.values()),
        }
