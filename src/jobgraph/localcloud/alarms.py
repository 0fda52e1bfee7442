"""CloudWatch, locally: the metrics AWS would emit for the stack, and the alarm evaluation moto does not do.

moto stores metric data and alarms but never evaluates an alarm. ``LocalMetrics.sample()`` puts the
service metrics the template's alarms and dashboard use into moto's CloudWatch (AWS/SQS queue depths and
age of the oldest message, AWS/Lambda Invocations, Errors, Duration and ConcurrentExecutions), and
``evaluate_alarms()`` applies CloudWatch's rule to every alarm of the stack: the statistic per period over
the last EvaluationPeriods periods, compared with the threshold, missing periods treated per
TreatMissingData; ALARM when DatapointsToAlarm (default: all) periods breach. States are written with
SetAlarmState, so `describe_alarms` on the local endpoint answers as it would on AWS.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from jobgraph.adapters.sqs import FifoQueue
from jobgraph.localcloud.poller import MappingSpec, RuntimeStats

_COMPARE = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
QUEUE_METRICS = ("ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible")


@dataclass
class LocalMetrics:
    """Publishes the stack's AWS/SQS and AWS/Lambda metrics into the local CloudWatch."""

    cloudwatch: object
    sqs: object
    queue_urls: list[str]
    mappings: list[MappingSpec]
    stats: RuntimeStats
    depths: dict[str, tuple[int, int]] = field(default_factory=dict)  # queue url -> (visible, in flight), last sample
    _reported: dict = field(default_factory=dict)

    def sample(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        data: list[tuple[str, dict]] = []
        for url in self.queue_urls:
            self.depths[url] = FifoQueue(url, client=self.sqs).depth()
            dims = [{"Name": "QueueName", "Value": url.rsplit("/", 1)[1]}]
            for metric, value in zip(QUEUE_METRICS, self.depths[url], strict=True):
                entry = {"MetricName": metric, "Dimensions": dims, "Value": float(value), "Timestamp": now}
                data.append(("AWS/SQS", entry))
            age = self.stats.take_oldest_age(url)
            if age is not None:
                metric = {"MetricName": "ApproximateAgeOfOldestMessage", "Dimensions": dims, "Value": age}
                data.append(("AWS/SQS", {**metric, "Timestamp": now}))
        with self.stats.lock:
            for mapping in self.mappings:
                logical_id, name = mapping.function.logical_id, mapping.function.function_name
                dims = [{"Name": "FunctionName", "Value": name}]
                counts = {
                    "Invocations": self.stats.invocations[logical_id],
                    "Errors": self.stats.errors[logical_id],
                }
                for metric, total in counts.items():
                    delta = total - self._reported.get((logical_id, metric), 0)
                    self._reported[(logical_id, metric)] = total
                    entry = {"MetricName": metric, "Dimensions": dims, "Value": float(delta), "Timestamp": now}
                    data.append(("AWS/Lambda", entry))
                durations = self.stats.invocation_ms[logical_id]
                seen = self._reported.get((logical_id, "Duration"), 0)
                new = durations[seen:]
                self._reported[(logical_id, "Duration")] = len(durations)
                if new:
                    entry = {"MetricName": "Duration", "Dimensions": dims, "Values": new, "Timestamp": now}
                    data.append(("AWS/Lambda", {**entry, "Unit": "Milliseconds"}))
                busy = float(self.stats.in_flight[logical_id] > 0)  # pollers with a batch in hand, roughly
                entry = {"MetricName": "ConcurrentExecutions", "Dimensions": dims, "Value": busy, "Timestamp": now}
                data.append(("AWS/Lambda", entry))
        for namespace in {ns for ns, _ in data}:
            entries = [entry for ns, entry in data if ns == namespace]
            for start in range(0, len(entries), 20):
                self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=entries[start : start + 20])


def _period_values(cloudwatch, alarm: dict, now: datetime) -> list[float | None]:
    """The alarm's statistic for each of its last EvaluationPeriods periods (None: no data), oldest first."""
    period = int(alarm["Period"])
    periods = int(alarm["EvaluationPeriods"])
    start = now - timedelta(seconds=period * periods)
    statistic = alarm.get("Statistic") or "Maximum"
    response = cloudwatch.get_metric_statistics(
        Namespace=alarm["Namespace"],
        MetricName=alarm["MetricName"],
        Dimensions=alarm.get("Dimensions", []),
        StartTime=start,
        EndTime=now + timedelta(seconds=1),
        Period=period,
        Statistics=[statistic],
    )
    values: list[float | None] = [None] * periods
    for point in response.get("Datapoints", []):
        index = int((point["Timestamp"] - start).total_seconds() // period)
        index = min(max(index, 0), periods - 1)
        value = point[statistic]
        current = values[index]
        values[index] = value if current is None else _combine(statistic, current, value)
    return values


def _combine(statistic: str, a: float, b: float) -> float:
    return {"Maximum": max, "Minimum": min}.get(statistic, operator.add)(a, b)


def alarm_state(alarm: dict, values: list[float | None]) -> tuple[str, str]:
    """CloudWatch's decision for one alarm given its per-period values; returns (state, reason)."""
    compare = _COMPARE[alarm["ComparisonOperator"]]
    threshold = float(alarm["Threshold"])
    treat_missing = alarm.get("TreatMissingData", "missing")
    needed = int(alarm.get("DatapointsToAlarm") or alarm["EvaluationPeriods"])
    breaching = 0
    present = [v for v in values if v is not None]
    for value in values:
        if value is None:
            breaching += treat_missing == "breaching"
        else:
            breaching += bool(compare(value, threshold))
    if breaching >= needed:
        state = "ALARM"
    elif not present and treat_missing == "missing":
        state = "INSUFFICIENT_DATA"
    else:
        state = "OK"
    shown = ", ".join("-" if v is None else f"{v:g}" for v in values)
    reason = f"{breaching} of {len(values)} periods breaching ({alarm['ComparisonOperator']} {threshold:g}): [{shown}]"
    return state, reason


def evaluate_alarms(cloudwatch, prefix: str = "", now: datetime | None = None) -> dict[str, str]:
    """Evaluate every alarm whose name starts with ``prefix`` (every alarm: ""); returns name -> state."""
    now = now or datetime.now(UTC)
    states = {}
    alarms = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(**({"AlarmNamePrefix": prefix} if prefix else {})):
        alarms.extend(page.get("MetricAlarms", []))
    for alarm in alarms:
        state, reason = alarm_state(alarm, _period_values(cloudwatch, alarm, now))
        if state != alarm.get("StateValue"):
            cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue=state, StateReason=reason)
        states[alarm["AlarmName"]] = state
    return states
