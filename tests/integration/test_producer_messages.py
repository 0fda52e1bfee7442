"""Issue 15.2: seed 001's producer message, sent raw to the incoming queue, completes as a SYNTHETIC job;
anything else malformed is recorded with its reason and dead-lettered, never retried forever."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from jobgraph.adapters.sqs import sqs_event
from jobgraph.core.models import PRODUCER_RUN_ID
from tests.lambda_support import FakeLambdaContext, load_handler

REGION, ACCOUNT = "eu-west-1", "123456789012"


@pytest.fixture
def processor(fake_stack, monkeypatch):
    monkeypatch.setenv("RETRY_BACKOFF_BASE_SECONDS", "0")  # a failed message is visible again at once
    monkeypatch.setenv("TEST_RUN_ID", "producer-test")
    return load_handler("processor")


def send_and_process(fake_stack, processor, body: str, group: str = "producer-1") -> dict:
    fake_stack.sqs.send_message(
        QueueUrl=fake_stack.incoming_url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body[:100]
    )
    messages = fake_stack.sqs.receive_message(QueueUrl=fake_stack.incoming_url, AttributeNames=["All"])["Messages"]
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{fake_stack.incoming_url.rsplit('/', 1)[1]}"
    return processor(sqs_event(messages, queue_arn, REGION), FakeLambdaContext())


def test_seed_001_message_completes_as_a_synthetic_job_and_records_its_input_size(fake_stack, processor):
    details = json.dumps({"customer": "acme", "pages": list(range(200))}).encode()
    fake_stack.s3.put_object(Bucket=fake_stack.bucket, Key="jobs/job-123.json", Body=details)
    body = json.dumps(
        {"job_id": "job-123", "work_duration_ms": 20, "data_size_kb": 3, "input_key": "jobs/job-123.json"}
    )
    assert send_and_process(fake_stack, processor, body) == {"batchItemFailures": []}
    (completion,) = fake_stack.drain(fake_stack.outgoing_url)
    report = completion["body"]
    # the seed's outgoing fields, plus jobgraph's
    assert report["job_id"] == "job-123" and report["status"] == "completed" and report["exec_type"] == "SYNTHETIC"
    assert report["test_run_id"] == "producer-test" and report["run_id"] == PRODUCER_RUN_ID
    assert report["processing_time_ms"] >= 20 and report["input_size_bytes"] == len(details)
    assert completion["group"] == "producer-1"
    output = fake_stack.s3.get_object(Bucket=fake_stack.bucket, Key=report["output_key"])["Body"].read()
    assert len(output) == 3 * 1024
    record = fake_stack.item(f"RUN#{PRODUCER_RUN_ID}", "JOB#job-123")
    assert record["status"] == "COMPLETED" and record["input_size_bytes"] == len(details)


def test_only_the_job_id_is_required(fake_stack, processor):
    assert send_and_process(fake_stack, processor, '{"job_id": "bare-1"}') == {"batchItemFailures": []}
    (completion,) = fake_stack.drain(fake_stack.outgoing_url)
    # the defaults: seed 001's example job (100 ms of work, 10 KiB of output), no input
    assert completion["body"]["processing_time_ms"] >= 100 and "input_size_bytes" not in completion["body"]
    key = completion["body"]["output_key"]
    assert fake_stack.s3.head_object(Bucket=fake_stack.bucket, Key=key)["ContentLength"] == 10 * 1024


def test_a_missing_input_fails_the_job_which_is_retried(fake_stack, processor):
    with pytest.raises(BatchProcessingError, match="ObjectNotFoundError"):
        send_and_process(fake_stack, processor, '{"job_id": "no-input", "input_key": "jobs/absent.json"}')
    record = fake_stack.item(f"RUN#{PRODUCER_RUN_ID}", "JOB#no-input")
    assert record["status"] == "FAILED" and "jobs/absent.json" in record["error_message"]


@pytest.mark.parametrize(
    "body",
    [
        '{"job_id": "x", "work_duration_ms": 100, "priority": "high"}',  # a field the seed does not have
        '{"job_id": "../escape", "work_duration_ms": 1}',  # not a job id a key can be made of
        '{"job_id": "x", "input_key": "../../etc/passwd"}',  # outside the bucket's keys
        '{"work_duration_ms": 100}',  # no job id
        '{"job_id": "x", "work_duration_ms": -5}',
    ],
)
def test_anything_else_malformed_is_recorded_and_goes_to_the_dlq(fake_stack, processor, body):
    for _receive in range(3):  # maxReceiveCount 3: each receive fails it
        with pytest.raises(BatchProcessingError):
            send_and_process(fake_stack, processor, body, group="bad")
    # the next receive finds it in the DLQ, not on the queue
    assert fake_stack.sqs.receive_message(QueueUrl=fake_stack.incoming_url).get("Messages", []) == []
    (dead,) = fake_stack.sqs.receive_message(QueueUrl=fake_stack.incoming_dlq_url)["Messages"]
    assert dead["Body"] == body
    assert fake_stack.drain(fake_stack.outgoing_url) == []  # never reported as a job
    # with its reason, for inspection
    poison = fake_stack.item("POISON", f"MSG#{dead['MessageId']}")
    assert poison["status"] == "FAILED" and "validation error" in poison["error_message"]


def test_reports_and_fault_injection_know_a_producers_message_as_a_job():
    from jobgraph.core.models import message_label
    from jobgraph.localcloud.faults import poison_bodies

    assert message_label('{"job_id": "job-123", "work_duration_ms": 5}') == "job-123"
    # the rehearsals' poison stays poison (DLQ counts equal --poison)
    assert [message_label(body) for _group, body in poison_bodies(4, "r")] == [None] * 4
