"""Issue 15.4: a failed message comes back after an exponential backoff the consumer sets before it returns,
never after the queue's visibility timeout (360 s here, as deployed), and the DLQ takes it after
maxReceiveCount receives. Real waits on moto's SQS, with the base the local cloud uses (1 s: 1, 2, 3–4 s)."""

from __future__ import annotations

import itertools
import time

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from jobgraph.adapters.sqs import FifoQueue, sqs_event
from jobgraph.core.graph import route_job
from jobgraph.core.models import Sequence
from jobgraph.core.run import RunSpec
from tests.lambda_support import FakeLambdaContext, event, load_handler

REGION, ACCOUNT = "eu-west-1", "123456789012"
DEADLINE_S = 40


@pytest.fixture
def processor(fake_stack, monkeypatch):
    monkeypatch.setenv("RETRY_BACKOFF_BASE_SECONDS", "1")
    monkeypatch.setenv("STATE_IN_MESSAGE_MAX_BYTES", "0")  # route 1 reads route 0's state from S3
    return load_handler("processor")


def arn(queue_url: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_url.rsplit('/', 1)[1]}"


def second_route(fake_stack):
    """Route 1 of the events' demo run, whose input (route 0's state) is not stored yet: it fails."""
    request = event("start-run")
    sequence = Sequence.model_validate(request["sequences"][0])
    spec = RunSpec(request["run_id"], "default", request["scenarios"], request["seed"])
    job = route_job(spec, sequence, 1)
    FifoQueue(fake_stack.incoming_url, client=fake_stack.sqs).send_jobs([job])
    return spec, sequence


def deliveries(fake_stack, handler, on_failure=None):
    """Receive the message whenever SQS hands it out and run it; yield (receive time, receive count, ok,
    time the handler returned — when the backoff it set starts)."""
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE_S:
        messages = fake_stack.sqs.receive_message(
            QueueUrl=fake_stack.incoming_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            if fake_stack.sqs.receive_message(QueueUrl=fake_stack.incoming_dlq_url, VisibilityTimeout=0).get(
                "Messages"
            ):
                return
            time.sleep(0.05)
            continue
        received = time.monotonic()
        count = int(messages[0]["Attributes"]["ApproximateReceiveCount"])
        try:
            response = handler(sqs_event(messages, arn(fake_stack.incoming_url), REGION), FakeLambdaContext())
            ok = response == {"batchItemFailures": []}
        except BatchProcessingError:
            ok = False
        yield received, count, ok, time.monotonic()
        if ok:
            return
        if on_failure is not None:
            on_failure(count)
    raise AssertionError(f"no outcome within {DEADLINE_S} s")


def test_a_job_failing_twice_then_succeeding_waits_a_growing_backoff(fake_stack, processor):
    spec, sequence = second_route(fake_stack)

    def after_failure(count: int) -> None:
        if count == 2:  # the missing input appears after the second failure
            processor(event("processor-first"), FakeLambdaContext())
            fake_stack.drain(fake_stack.outgoing_url)

    outcome = list(deliveries(fake_stack, processor, after_failure))
    assert [(count, ok) for _, count, ok, _ in outcome] == [(1, False), (2, False), (3, True)]
    # from the failed invocation's return to the next receive
    first_wait, second_wait = (b[0] - a[3] for a, b in itertools.pairwise(outcome))
    # 1 s, then 2 s (SQS counts whole seconds), never the queue's 360 s visibility timeout
    assert 0.8 <= first_wait < second_wait < 30
    assert second_wait >= 1.7
    record = fake_stack.item(f"RUN#{spec.run_id}", f"JOB#{spec.run_id}-s{sequence.sequence_id}-r1")
    assert record["status"] == "COMPLETED" and record["last_attempt"] == 3


def test_a_job_that_keeps_failing_reaches_the_dlq_after_max_receive_count(fake_stack, processor):
    second_route(fake_stack)
    outcome = list(deliveries(fake_stack, processor))
    assert [(count, ok) for _, count, ok, _ in outcome] == [(1, False), (2, False), (3, False)]  # maxReceiveCount 3
    waits = [b[0] - a[3] for a, b in itertools.pairwise(outcome)]
    assert 0.8 <= waits[0] < waits[1] < 30
    (dead,) = fake_stack.sqs.receive_message(QueueUrl=fake_stack.incoming_dlq_url).get("Messages", [])
    assert '"exec_type":"INTERMEDIATE"' in dead["Body"]


def test_the_scheduler_backs_off_its_failed_completions_too(fake_stack, monkeypatch):
    monkeypatch.setenv("RETRY_BACKOFF_BASE_SECONDS", "1")
    scheduler = load_handler("scheduler")
    # a route completion of a run whose sequence is not stored: the next job cannot be built
    completion = event("scheduler-first")["Records"][0]["body"]
    fake_stack.sqs.send_message(
        QueueUrl=fake_stack.outgoing_url, MessageBody=completion, MessageGroupId="g", MessageDeduplicationId="d"
    )
    (message,) = fake_stack.sqs.receive_message(QueueUrl=fake_stack.outgoing_url, AttributeNames=["All"])["Messages"]
    with pytest.raises(BatchProcessingError):
        scheduler(sqs_event([message], arn(fake_stack.outgoing_url), REGION), FakeLambdaContext())
    failed_at = time.monotonic()
    again = []
    while not again and time.monotonic() - failed_at < DEADLINE_S:
        again = fake_stack.sqs.receive_message(QueueUrl=fake_stack.outgoing_url, AttributeNames=["All"]).get(
            "Messages", []
        )
        time.sleep(0.05)
    assert again and again[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    assert 0.9 <= time.monotonic() - failed_at < 30  # 1 s, not the queue's visibility timeout
