"""services/records: what a consumer takes from a record, what it does with poison, where the backoff goes, and
how a batch's next messages are sent — each asserted by its effect (the job built, the calls made, the metric)."""

from __future__ import annotations

import json
import random
import threading
from types import SimpleNamespace

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel

from jobgraph.core.generator import generate_sequences
from jobgraph.core.graph import route_job
from jobgraph.core.models import PRODUCER_RUN_ID, ExecType
from jobgraph.core.run import RunSpec
from jobgraph.services.observability import metrics
from jobgraph.services.records import (
    FifoBatch,
    JobRecord,
    RetryBackoff,
    message_groups,
    process_batch_then_send,
    receive_count,
    retry_backoff,
)
from tests.fifo_records import Recorder, interleaved, record
from tests.log_lines import log_lines

JOB = route_job(RunSpec("r", "default", 10, 1), generate_sequences(1, seed=4)[0], 0)


class FakeSqs:
    """The calls a RetryBackoff makes; a queue named in ``broken`` refuses them."""

    def __init__(self, broken: frozenset[str] = frozenset()):
        self.meta = SimpleNamespace(endpoint_url="http://127.0.0.1:1/")
        self.broken = broken
        self.calls: list[tuple[str, list[tuple[str, int]]]] = []

    def change_message_visibility_batch(self, QueueUrl, Entries):
        if QueueUrl.rsplit("/", 1)[1] in self.broken:
            raise RuntimeError(f"{QueueUrl} is gone")
        self.calls.append((QueueUrl, [(e["ReceiptHandle"], e["VisibilityTimeout"]) for e in Entries]))
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def on_queue(r: dict, name: str) -> dict:
    return {**r, "eventSourceARN": f"arn:aws:sqs:eu-west-1:123456789012:{name}"}


def test_a_job_record_is_the_job_it_carries():
    parsed = JobRecord.model_validate(record("r-s0", 0, body=JOB.model_dump_json()))
    assert parsed.job("ignored") == JOB


@pytest.mark.parametrize(("group", "expected"), [("aircraft-7", "aircraft-7"), (None, "p-1")])
def test_a_producers_message_is_a_synthetic_job_in_its_message_group(group, expected):
    raw = record("g", 0, body=json.dumps({"job_id": "p-1", "work_duration_ms": 20}))
    if group is None:
        del raw["attributes"]["MessageGroupId"]
    else:
        raw["attributes"]["MessageGroupId"] = group
    job = JobRecord.model_validate(raw).job("load-7")
    assert (job.job_id, job.run_id, job.exec_type) == ("p-1", PRODUCER_RUN_ID, ExecType.SYNTHETIC)
    assert (job.correlation_id, job.test_run_id, job.work_duration_ms) == (expected, "load-7", 20)


def test_the_attempt_is_the_records_receive_count():
    assert receive_count(SqsRecordModel.model_validate(record("g", 0, receives=4))) == 4


def test_a_poison_record_is_handed_over_counted_and_failed_alone():
    poisoned: list[tuple[str, str, str]] = []
    batch = FifoBatch(JobRecord, on_poison=lambda *args: poisoned.append(args), max_concurrency=2)
    good = record("g1", 0, body=JOB.model_dump_json())
    bad = record("g0", 0, body='{"job": "x"}')
    metrics.clear_metrics()
    try:
        with log_lines() as logged:
            response = batch.process({"Records": [bad, good]}, None, lambda record: record.body.job_id)
        assert metrics.metric_set["PoisonMessages"] == {"Unit": "Count", "Value": [1.0], "StorageResolution": 60}
    finally:
        metrics.clear_metrics()
    assert response == {"batchItemFailures": [{"itemIdentifier": "g0-0"}]}
    ((message_id, error, body),) = poisoned
    assert (message_id, body) == ("g0-0", '{"job": "x"}') and "validation error" in error
    line = logged["poison message: it goes to the DLQ after the queue's maxReceiveCount receives"]
    assert (line["level"], line["message_id"]) == ("ERROR", "g0-0")
    assert 1 <= len(line["errors"]) <= 5 and all(e["type"] and e["loc"] and "url" not in e for e in line["errors"])


def test_a_poison_record_that_cannot_be_stored_still_fails_only_itself():
    def refuse(*args):
        raise RuntimeError("table unreachable")

    batch = FifoBatch(JobRecord, on_poison=refuse)
    good = record("g1", 0, body=JOB.model_dump_json())
    with log_lines() as logged:
        response = batch.process({"Records": [record("g0", 0, body="{}"), good]}, None, lambda record: "ok")
    assert response == {"batchItemFailures": [{"itemIdentifier": "g0-0"}]}
    line = logged["could not record the poison message"]
    assert line["level"] == "ERROR" and "table unreachable" in line["exception"]


def test_the_backoff_goes_to_the_queue_each_failed_record_came_from():
    sqs = FakeSqs()
    records = [on_queue(record("a", 0, receives=2), "q1.fifo"), on_queue(record("b", 0, receives=1), "q2.fifo")]
    RetryBackoff(4, 300, rng=random.Random(3), sqs=sqs).apply(records)
    assert [url for url, _ in sqs.calls] == [
        "http://127.0.0.1:1/123456789012/q1.fifo",
        "http://127.0.0.1:1/123456789012/q2.fifo",
    ]
    (handle_a, wait_a), (handle_b, wait_b) = sqs.calls[0][1][0], sqs.calls[1][1][0]
    assert (handle_a, handle_b) == ("handle-a-0", "handle-b-0")
    assert 6 <= wait_a <= 8 and 3 <= wait_b <= 4  # 4 x 2^(2-1) and 4 x 2^0, up to a quarter off


def test_a_queue_refusing_the_backoff_does_not_keep_the_others_from_theirs():
    sqs = FakeSqs(broken=frozenset({"q1.fifo"}))
    records = [on_queue(record("a", 0), "q1.fifo"), on_queue(record("b", 0), "q2.fifo")]
    with log_lines() as logged:
        RetryBackoff(4, 300, rng=random.Random(3), sqs=sqs).apply(records)
    assert [url.rsplit("/", 1)[1] for url, _ in sqs.calls] == ["q2.fifo"]
    # the operator reads which queue kept its messages' old visibility, and why; and what the others got
    broken, applied = logged["could not set the retry backoff"], logged["failed messages return after backoff"]
    assert (broken["level"], broken["queue"]) == ("ERROR", records[0]["eventSourceARN"])
    assert broken["exception_name"] == "RuntimeError" and "q1.fifo is gone" in broken["exception"]
    ((_, [(_, wait)]),) = sqs.calls
    assert (applied["level"], applied["queue"]) == ("INFO", records[1]["eventSourceARN"])
    assert (applied["delays_s"], applied["refused"]) == ([wait], 0)


def test_a_consumers_backoff_comes_from_its_settings():
    policy = retry_backoff(SimpleNamespace(retry_backoff_base_s=2.5, retry_backoff_max_s=90))
    assert (policy.base_s, policy.max_s) == (2.5, 90)


def test_records_of_one_group_stay_together_in_their_order():
    records = [record("b", 0), record("a", 0), record("b", 1), record("a", 1)]
    assert [[r["messageId"] for r in g] for g in message_groups(records)] == [["b-0", "b-1"], ["a-0", "a-1"]]


def test_two_groups_run_at_once_when_two_may():
    handler = Recorder(barrier=threading.Barrier(2))
    FifoBatch(SqsRecordModel, max_concurrency=2).process({"Records": interleaved(2, 2)}, None, handler)
    assert handler.peak == 2


def test_a_batch_whose_every_record_failed_names_its_errors():
    handler = Recorder(fail={"g0-0", "g1-0"})
    with pytest.raises(
        BatchProcessingError, match=r"^All records failed processing\. 4 individual errors logged separately below\."
    ) as info:
        FifoBatch(SqsRecordModel, max_concurrency=2).process({"Records": interleaved(2, 2)}, None, handler)
    # each group's failed record, and the record after it that its group skipped
    errors = sorted(str(e[1]) for e in info.value.child_exceptions)
    assert errors[2:] == ["g0-0 failed", "g1-0 failed"] and all("previous record" in e for e in errors[:2])


def test_an_empty_batch_succeeds():
    assert FifoBatch(SqsRecordModel).process({"Records": []}, None, Recorder()) == {"batchItemFailures": []}


def test_the_next_messages_are_sent_once_after_the_batch_and_not_at_all_without_any():
    sent: list[list] = []
    pending = ["left over from a failed invocation"]

    def handler(record):
        pending.append(record.messageId)

    batch = FifoBatch(SqsRecordModel)
    process_batch_then_send({"Records": interleaved(1, 2)}, None, batch, handler, pending, sent.append)
    assert sent == [["g0-0", "g0-1"]] and pending == []
    process_batch_then_send({"Records": [record("x", 0)]}, None, batch, lambda record: None, pending, sent.append)
    assert sent == [["g0-0", "g0-1"]]


def test_the_failed_records_are_released_through_process_batch_then_send():
    """The ECS worker hands ``release`` to process_batch_then_send: the failed group's messages (and only
    them) reach it once, so their visibility heartbeat stops before the backoff is set."""
    released: list[list[str]] = []
    pending: list[str] = []
    batch = FifoBatch(SqsRecordModel, max_concurrency=2)
    handler = Recorder(fail={"g1-0"})
    response = process_batch_then_send(
        {"Records": interleaved(2, 2)},
        None,
        batch,
        handler,
        pending,
        lambda batch_: None,
        release=lambda ids: released.append(sorted(ids)),
    )
    assert released == [["g1-0", "g1-1"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": "g1-0"}, {"itemIdentifier": "g1-1"}]}


def test_a_record_without_attributes_is_poison_that_fails_alone_and_backs_off_as_a_first_attempt():
    """No MessageGroupId, no receive count: it is its own group and comes back after the base delay, and the
    batch's other records are still done."""
    sqs = FakeSqs()
    bare = on_queue(record("g0", 0, body=JOB.model_dump_json()), "q.fifo")
    del bare["attributes"]
    done: list[str] = []

    def handler(record):
        done.append(record.body.job_id)

    batch = FifoBatch(JobRecord, backoff=RetryBackoff(4, 300, rng=random.Random(3), sqs=sqs))
    response = batch.process({"Records": [bare, record("g1", 0, body=JOB.model_dump_json())]}, None, handler)
    assert response == {"batchItemFailures": [{"itemIdentifier": "g0-0"}]} and done == [JOB.job_id]
    ((url, [(handle, wait)]),) = sqs.calls
    assert (url.rsplit("/", 1)[1], handle) == ("q.fifo", "handle-g0-0") and 3 <= wait <= 4  # 4 x 2^0, a quarter off


class LargestJitter(random.Random):
    """Always draws the largest jitter: a quarter off the nominal delay."""

    def random(self) -> float:
        return 1.0


def test_the_jitter_is_drawn_from_the_policys_own_generator():
    # second receive at base 8 s: 16 s nominal, a quarter off = 12 s (any other draw gives 13..16)
    ((_, seconds),) = RetryBackoff(8, 300, rng=LargestJitter()).delays([record("a", 0, receives=2)])
    assert seconds == 12


def test_an_event_without_records_is_an_empty_batch():
    assert FifoBatch(SqsRecordModel).process({}, None, Recorder()) == {"batchItemFailures": []}
