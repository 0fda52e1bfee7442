"""CloudWatch alarms, evaluated as CloudWatch evaluates them (moto stores alarms but never evaluates one).

``evaluate_alarms()`` applies CloudWatch's rule to every alarm (of a name prefix): the statistic per period over
the last EvaluationPeriods periods, compared with the threshold, missing periods treated per TreatMissingData;
ALARM when DatapointsToAlarm (default: all) periods breach. States are written with SetAlarmState, so
`describe_alarms` on the local endpoint answers as it would on AWS. The metrics they read are written by the
local cloud as AWS would write them (cloudwatch.py, the controller's samples).
"""

from __future__ import annotations

import operator
from datetime import UTC, datetime, timedelta

_COMPARE = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
QUEUE_METRICS = ("ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible")


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
