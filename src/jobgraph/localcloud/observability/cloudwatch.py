"""CloudWatch, written as AWS writes it: function logs, embedded-format metrics and the service metrics.

- ``MoToCloudWatch.put_logs``: a function's log lines (START, its own output, END, REPORT) into CloudWatch Logs
  ``/aws/lambda/<function>``, one stream per execution environment (the group is created if the stack did not
  declare one, as Lambda does). A line in CloudWatch's embedded metric format (Powertools' ``log_metrics``)
  also becomes the metrics it declares, as CloudWatch extracts them from any log group.
- ``MetricBuffer``: service metrics counted as requests happen — AWS/Lambda (Invocations, Errors, Duration,
  ConcurrentExecutions), AWS/SQS per queue (NumberOfMessagesSent/Received/Deleted, NumberOfEmptyReceives) and
  AWS/DynamoDB per table (ConsumedRead/WriteCapacityUnits) — aggregated and written as statistic sets, before
  any CloudWatch request is answered (so a reader never misses what already happened) and periodically.
- ``ServiceMetrics``: the request observer that feeds the SQS and DynamoDB figures (RequestMeter calls it).

Everything is written into moto's backends directly, holding the server's lock (moto is not thread-safe), so
none of it goes through HTTP or counts as anyone's API calls.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from jobgraph.localcloud.observability.meter import dynamodb_units

Dimensions = tuple[tuple[str, str], ...]


@dataclass
class _Stat:
    count: float = 0.0
    total: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")

    def add(self, value: float, count: float = 1.0) -> None:
        self.count += count
        self.total += value * count
        self.low = min(self.low, value)
        self.high = max(self.high, value)


@dataclass
class MetricBuffer:
    """Metric values since the last flush, per (namespace, metric, dimensions, unit)."""

    _stats: dict = field(default_factory=lambda: defaultdict(_Stat))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, namespace: str, metric: str, dimensions: Dimensions, value: float, unit: str = "None") -> None:
        with self._lock:
            self._stats[(namespace, metric, dimensions, unit)].add(float(value))

    def take(self) -> dict[str, list[dict]]:
        """The buffered values as put_metric_data entries per namespace (statistic sets), emptied."""
        with self._lock:
            stats, self._stats = self._stats, defaultdict(_Stat)
        # moto keeps naive UTC timestamps (its own utcnow()) and compares them with whole-second query bounds
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        data: dict[str, list[dict]] = defaultdict(list)
        for (namespace, metric, dimensions, unit), stat in stats.items():
            data[namespace].append(
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": name, "Value": value} for name, value in dimensions],
                    "Timestamp": now,
                    "Unit": unit,
                    "StatisticValues": {
                        "SampleCount": stat.count,
                        "Sum": stat.total,
                        "Minimum": stat.low,
                        "Maximum": stat.high,
                    },
                }
            )
        return data


def emf_metrics(line: str) -> list[tuple[str, str, Dimensions, float, str]]:
    """(namespace, metric, dimensions, value, unit) of each metric one embedded-metric-format line declares."""
    if not line.startswith("{") or '"_aws"' not in line:
        return []
    try:
        document = json.loads(line)
        directives = document["_aws"]["CloudWatchMetrics"]
    except (ValueError, KeyError, TypeError):
        return []
    found = []
    for directive in directives if isinstance(directives, list) else []:
        namespace = directive.get("Namespace")
        for names in directive.get("Dimensions") or [[]]:
            if not all(isinstance(document.get(name), str) for name in names):
                continue
            dimensions = tuple((name, document[name]) for name in names)
            for metric in directive.get("Metrics", []):
                values = document.get(metric.get("Name"))
                for value in values if isinstance(values, list) else [values]:
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        found.append((namespace, metric["Name"], dimensions, float(value), metric.get("Unit", "None")))
    return found


@dataclass
class MotoCloudWatch:
    """Writes logs and metrics into the moto backends of one account/region, under the server's lock."""

    lock: object  # the server's lock (motopatches.ServerLock): held while moto's backends are touched
    region: str
    account_id: str = "123456789012"
    buffer: MetricBuffer = field(default_factory=MetricBuffer)

    def _backends(self):
        from moto.cloudwatch.models import cloudwatch_backends
        from moto.logs.models import logs_backends

        return logs_backends[self.account_id][self.region], cloudwatch_backends[self.account_id][self.region]

    def put_logs(self, group: str, stream: str, events: list[tuple[int, str]]) -> None:
        """Append ``events`` (epoch ms, message) to ``group``/``stream``; EMF lines also become metrics."""
        if not events:
            return
        for _timestamp, message in events:
            for namespace, metric, dimensions, value, unit in emf_metrics(message):
                self.buffer.add(namespace, metric, dimensions, value, unit)
        ordered, last = [], 0
        for timestamp, message in events:  # one PutLogEvents must be in chronological order
            last = max(last, timestamp)
            ordered.append({"timestamp": last, "message": message[:262_000]})
        with self.lock:
            logs, _cloudwatch = self._backends()
            if group not in logs.groups:
                logs.create_log_group(group, {})
            logs.ensure_log_stream(group, stream)
            logs.put_log_events(group, stream, ordered)

    def lambda_sink(self, function_name: str, stream: str, events: list[tuple[int, str]]) -> None:
        """workers.LogSink: a function's environment writes to /aws/lambda/<function>."""
        self.put_logs(f"/aws/lambda/{function_name}", stream, events)

    def flush(self, locked: bool = False) -> None:
        """Write the buffered metrics (``locked``: the caller already holds the server's lock)."""
        data = self.buffer.take()
        if not data:
            return
        with contextlib.nullcontext() if locked else self.lock:
            _logs, cloudwatch = self._backends()
            for namespace, entries in data.items():
                cloudwatch.put_metric_data(namespace, entries)


def _json(body: bytes) -> dict:
    try:
        value = json.loads(body) if body else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _queue_name(request: dict) -> str | None:
    url = request.get("QueueUrl")
    return url.rstrip("/").rsplit("/", 1)[-1] if isinstance(url, str) and url else None


def _dynamodb_tables(action: str, request: dict) -> dict[str, int]:
    """Items each table takes part in, for a DynamoDB request (TransactItems and RequestItems span tables)."""
    if isinstance(request.get("TableName"), str):
        return {request["TableName"]: 1}
    tables: dict[str, int] = defaultdict(int)
    for table, items in (request.get("RequestItems") or {}).items():
        tables[table] += len(items) if isinstance(items, list) else len((items or {}).get("Keys", [])) or 1
    for item in request.get("TransactItems") or []:
        for operation in item.values() if isinstance(item, dict) else []:
            if isinstance(operation, dict) and isinstance(operation.get("TableName"), str):
                tables[operation["TableName"]] += 1
    return dict(tables)


@dataclass
class ServiceMetrics:
    """AWS/SQS and AWS/DynamoDB metrics from the requests themselves (a RequestMeter observer)."""

    buffer: MetricBuffer

    def observe(self, service: str, action: str, request_body: bytes, response_body: bytes) -> None:
        if service == "sqs":
            self._sqs(action, _json(request_body), response_body)
        elif service == "dynamodb":
            self._dynamodb(action, _json(request_body), request_body, len(response_body))

    def _sqs(self, action: str, request: dict, response_body: bytes) -> None:
        queue = _queue_name(request)
        if queue is None:
            return
        dimensions = (("QueueName", queue),)

        def count(metric: str, value: float) -> None:
            self.buffer.add("AWS/SQS", metric, dimensions, value, "Count")

        if action == "SendMessage":
            count("NumberOfMessagesSent", 1)
        elif action == "SendMessageBatch":
            count("NumberOfMessagesSent", len(_json(response_body).get("Successful") or []))
        elif action == "ReceiveMessage":
            received = len(_json(response_body).get("Messages") or [])
            count("NumberOfMessagesReceived", received)
            count("NumberOfEmptyReceives", int(received == 0))
        elif action == "DeleteMessage":
            count("NumberOfMessagesDeleted", 1)
        elif action == "DeleteMessageBatch":
            count("NumberOfMessagesDeleted", len(_json(response_body).get("Successful") or []))

    def _dynamodb(self, action: str, request: dict, request_body: bytes, response_bytes: int) -> None:
        kind, units = dynamodb_units(action, request_body, response_bytes)
        tables = _dynamodb_tables(action, request)
        if kind is None or not tables:
            return
        metric = "ConsumedWriteCapacityUnits" if kind == "dynamodb_wru" else "ConsumedReadCapacityUnits"
        items = sum(tables.values())
        for table, share in tables.items():
            self.buffer.add("AWS/DynamoDB", metric, (("TableName", table),), units * share / items, "Count")
