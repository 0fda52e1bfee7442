"""The local event source mapping honours the functions' own retry backoff (issue 15.4): it leaves a reported
failure's visibility as the function set it, and stands in for the queue's visibility timeout with the
same backoff curve only when an invocation fails as a whole."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from jobgraph.localcloud.event_sources.poller import MappingPoller, MappingSpec, RuntimeStats
from jobgraph.localcloud.faults import FaultPlan
from jobgraph.localcloud.lambda_runtime.workers import FunctionSpec, Invocation


class FakeSqs:
    def __init__(self):
        self.visibility: list[tuple[str, int]] = []
        self.deleted: list[str] = []

    def delete_message_batch(self, QueueUrl, Entries):
        self.deleted += [e["ReceiptHandle"] for e in Entries]
        return {"Successful": Entries}

    def change_message_visibility(self, QueueUrl, ReceiptHandle, VisibilityTimeout):
        self.visibility.append((ReceiptHandle, VisibilityTimeout))


class FakeWorker:
    def __init__(self, invocation: Invocation):
        self.invocation = invocation

    def invoke(self, event, fault=None) -> Invocation:
        return self.invocation


def message(index: int, receives: int) -> dict:
    return {
        "MessageId": f"m{index}",
        "ReceiptHandle": f"h{index}",
        "Body": "{}",
        "Attributes": {"ApproximateReceiveCount": str(receives), "MessageGroupId": f"g{index}"},
    }


def poller(sqs: FakeSqs) -> MappingPoller:
    function = FunctionSpec("ProcessorFunction", "processor", "app.lambda_handler", Path("."), (), {}, 30, 256)
    mapping = MappingSpec(function, "http://local/q.fifo", "arn:aws:sqs:eu-west-1:1:q.fifo", 10, 1, True, 3)
    return MappingPoller(mapping, [], sqs, RuntimeStats(), threading.Event(), FaultPlan(), rng_seed=1)


def test_a_reported_failure_keeps_the_backoff_the_function_set():
    sqs = FakeSqs()
    outcome = Invocation(ok=True, result={"batchItemFailures": [{"itemIdentifier": "m1"}]})
    poller(sqs).dispatch(FakeWorker(outcome), random.Random(1), [message(0, 1), message(1, 2)])
    assert sqs.deleted == ["h0"]
    assert sqs.visibility == []  # the function's ChangeMessageVisibility stands


def test_a_failed_invocation_backs_off_like_the_functions_do():
    sqs = FakeSqs()
    outcome = Invocation(ok=False, error="InjectedFault: injected failure before side effects")
    poller(sqs).dispatch(FakeWorker(outcome), random.Random(1), [message(0, 1), message(1, 2), message(2, 3)])
    delays = dict(sqs.visibility)
    assert sqs.deleted == [] and delays["h0"] == 1 and delays["h1"] == 2 and 3 <= delays["h2"] <= 4
