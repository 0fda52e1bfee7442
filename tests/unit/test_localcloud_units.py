"""Pure parts of the local cloud: CloudWatch's alarm rule, the fault plan, message labels."""

from __future__ import annotations

import json
import random

import pytest

from jobgraph.core.models import message_label
from jobgraph.localcloud.faults import FaultPlan, poison_bodies
from jobgraph.localcloud.observability.alarms import alarm_state

DLQ_ALARM = {
    "ComparisonOperator": "GreaterThanThreshold",
    "Threshold": 5.0,
    "EvaluationPeriods": 1,
    "TreatMissingData": "notBreaching",
}


@pytest.mark.parametrize(
    ("alarm", "values", "state"),
    [
        (DLQ_ALARM, [6.0], "ALARM"),
        (DLQ_ALARM, [5.0], "OK"),  # "more than 5"
        (DLQ_ALARM, [None], "OK"),  # no data, treated as not breaching
        ({**DLQ_ALARM, "TreatMissingData": "missing"}, [None], "INSUFFICIENT_DATA"),
        ({**DLQ_ALARM, "TreatMissingData": "breaching"}, [None], "ALARM"),
        # age of the oldest message: all 5 periods must breach
        ({**DLQ_ALARM, "Threshold": 300.0, "EvaluationPeriods": 5}, [400.0] * 4 + [None], "OK"),
        ({**DLQ_ALARM, "Threshold": 300.0, "EvaluationPeriods": 5}, [400.0] * 5, "ALARM"),
        # M out of N
        ({**DLQ_ALARM, "EvaluationPeriods": 3, "DatapointsToAlarm": 2}, [9.0, 1.0, 9.0], "ALARM"),
        ({**DLQ_ALARM, "EvaluationPeriods": 3, "DatapointsToAlarm": 2}, [9.0, 1.0, 1.0], "OK"),
        ({**DLQ_ALARM, "ComparisonOperator": "LessThanOrEqualToThreshold"}, [5.0], "ALARM"),
    ],
)
def test_alarm_state_follows_cloudwatchs_rule(alarm, values, state):
    decided, reason = alarm_state(alarm, values)
    assert decided == state
    assert f"of {len(values)} periods breaching" in reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fail_rate": 1.5}, "--fail-rate must be between 0 and 1"),
        ({"duplicate_rate": -0.1}, "--duplicate-rate must be between 0 and 1"),
        ({"fail_rate": 0.5, "kill_rate": 0.5}, "above 0.9"),
        ({"poison": -1}, "--poison must be >= 0"),
    ],
)
def test_fault_plan_rejects_impossible_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FaultPlan(**kwargs)


def test_no_fault_is_injected_on_a_messages_last_receive():
    plan = FaultPlan(fail_rate=0.45, kill_rate=0.45)
    rng = random.Random(1)
    assert {plan.invocation_fault(rng, last_attempt=True) for _ in range(200)} == {None}
    assert {plan.invocation_fault(rng, last_attempt=False) for _ in range(200)} >= {"kill", "fail-before", "fail-after"}


def test_only_well_formed_messages_are_duplicated():
    plan = FaultPlan(duplicate_rate=1.0)
    rng = random.Random(0)
    job = json.dumps(
        {"job_id": "r-merge", "run_id": "r", "test_run_id": "t", "correlation_id": "r-merge", "exec_type": "MERGE",
         "scenarios": 10, "seed": 1}
    )  # fmt: skip
    assert plan.duplicate(rng, job)
    assert not any(plan.duplicate(rng, body) for _group, body in poison_bodies(8, "r"))


def test_message_label_names_jobs_and_completions():
    completion = json.dumps(
        {"job_id": "r-s1-r0", "status": "failed", "processing_time_ms": 3, "test_run_id": "t", "run_id": "r",
         "correlation_id": "r-s1", "exec_type": "FIRST"}
    )  # fmt: skip
    assert message_label(completion) == "r-s1-r0 (failed)"
    assert message_label('{"job_id": "x", "exec_type": "TAKEOFF"}') is None
    assert message_label("not json") is None


def test_connections_beyond_loopback_are_refused():
    import socket

    from jobgraph.localcloud.server import allow_loopback_only

    allow_loopback_only()  # the test session has it already (conftest); calling again is harmless
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match=r"203\.0\.113\.9 refused"):
        sock.connect(("203.0.113.9", 443))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(ConnectionRefusedError):
        sock.sendto(b"x", ("198.51.100.1", 2000))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5):
            pass  # loopback is fine
