"""The ECS worker (services/worker.py) on moto: the Processor's stage code, FIFO order, heartbeat, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.errors import ConfigurationError
from jobgraph.core.generator import generate_sequences
from jobgraph.core.graph import route_job
from jobgraph.core.run import RunSpec
from jobgraph.services.processor import build_processor_runtime
from jobgraph.services.settings import WorkerSettings, load_settings
from jobgraph.services.worker import QueueWorker, VisibilityHeartbeat
from tests.lambda_support import ROOT

SPEC = RunSpec("worker-test", "default", 50, 3)


@pytest.fixture
def worker(fake_stack, monkeypatch):
    monkeypatch.setenv("WAIT_TIME_SECONDS", "0")
    monkeypatch.setenv("RETRY_BACKOFF_BASE_SECONDS", "0")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "worker")
    settings = load_settings(WorkerSettings)
    return QueueWorker(settings, build_processor_runtime(settings), sqs=fake_stack.sqs)


def first_jobs(count: int):
    return [route_job(SPEC, sequence, 0) for sequence in generate_sequences(count, seed=4)]


def send_raw(fake_stack, body: str, group: str, dedup: str) -> None:
    fake_stack.sqs.send_message(
        QueueUrl=fake_stack.incoming_url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=dedup
    )


def test_settings_are_validated_with_the_variable_named(fake_stack, monkeypatch):
    monkeypatch.setenv("WAIT_TIME_SECONDS", "25")
    with pytest.raises(ConfigurationError, match="WorkerSettings from environment: WAIT_TIME_SECONDS"):
        load_settings(WorkerSettings)


def test_a_batch_runs_the_processor_stage_and_deletes_what_succeeded(worker, fake_stack):
    # Given two FIRST route jobs on the incoming queue
    jobs = first_jobs(2)
    FifoQueue(fake_stack.incoming_url, client=fake_stack.sqs).send_jobs(jobs)
    # When the worker handles one batch
    worker.run(max_batches=1)
    # then each job's delays are stored and its completion reported, exactly as the Processor Lambda does
    for job in jobs:
        key = f"{SPEC.run_id}/delays/{job.job_id}.parquet"
        assert fake_stack.s3.head_object(Bucket=fake_stack.bucket, Key=key)["ContentLength"] > 0
        record = fake_stack.item(f"RUN#{SPEC.run_id}", f"JOB#{job.job_id}")
        assert record["status"] == "COMPLETED"
    completions = fake_stack.drain(fake_stack.outgoing_url)
    assert sorted(c["body"]["job_id"] for c in completions) == sorted(j.job_id for j in jobs)
    assert {c["group"] for c in completions} == {j.correlation_id for j in jobs}
    # and nothing is left on the incoming queue
    assert FifoQueue(fake_stack.incoming_url, client=fake_stack.sqs).depth() == (0, 0)


def test_a_duplicate_job_is_answered_by_its_job_record(worker, fake_stack):
    (job,) = first_jobs(1)
    send_raw(fake_stack, job.model_dump_json(), job.correlation_id, "a")
    worker.run(max_batches=1)
    send_raw(fake_stack, job.model_dump_json(), job.correlation_id, "b")  # at-least-once: delivered again
    worker.run(max_batches=1)
    assert [c["body"]["job_id"] for c in fake_stack.drain(fake_stack.outgoing_url)] == [job.job_id]
    assert FifoQueue(fake_stack.incoming_url, client=fake_stack.sqs).depth() == (0, 0)


def test_a_failure_holds_back_only_the_rest_of_its_group_in_order(worker, fake_stack):
    # Given group A: a malformed message, then a valid job; group B: a valid job
    job_a, job_b = first_jobs(2)
    send_raw(fake_stack, "not json", job_a.correlation_id, "a0")
    send_raw(fake_stack, job_a.model_dump_json(), job_a.correlation_id, "a1")
    send_raw(fake_stack, job_b.model_dump_json(), job_b.correlation_id, "b1")
    # When the worker handles them in one batch
    outcome = worker.handle(worker.receive())
    # then group B's job is done and deleted; A's bad message and the job behind it stay, in order
    assert (outcome.received, outcome.deleted, outcome.retried) == (3, 1, 2)
    assert [c["body"]["job_id"] for c in fake_stack.drain(fake_stack.outgoing_url)] == [job_b.job_id]
    again = fake_stack.sqs.receive_message(
        QueueUrl=fake_stack.incoming_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    assert [m["Body"] for m in again] == ["not json", job_a.model_dump_json()]
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in again] == ["2", "2"]
    # the poison message was recorded for inspection
    assert fake_stack.item(f"RUN#{SPEC.run_id}", f"JOB#{job_a.job_id}") is None


def test_a_batch_that_raises_is_returned_whole_for_redelivery(worker, fake_stack):
    jobs = first_jobs(2)
    FifoQueue(fake_stack.incoming_url, client=fake_stack.sqs).send_jobs(jobs)

    def broken(messages, process):
        raise RuntimeError("the task lost its network")

    worker.batch_runner = broken
    outcome = worker.handle(worker.receive())
    assert (outcome.deleted, outcome.retried) == (0, 2)
    assert FifoQueue(fake_stack.incoming_url, client=fake_stack.sqs).depth() == (2, 0)


def test_sigterm_mid_batch_finishes_the_batch_then_stops_receiving(worker, fake_stack):
    jobs = first_jobs(3)
    FifoQueue(fake_stack.incoming_url, client=fake_stack.sqs).send_jobs(jobs[:2])
    receives = []
    original_receive = worker.receive

    def counting_receive():
        receives.append(1)
        return original_receive()

    def signalled_mid_batch(messages, process):
        worker.stop(signal.SIGTERM)  # ECS stops the task while the batch runs
        FifoQueue(fake_stack.incoming_url, client=fake_stack.sqs).send_jobs(jobs[2:])
        return process(messages)

    worker.receive, worker.batch_runner = counting_receive, signalled_mid_batch
    worker.run()
    # the batch in hand completed and was deleted; the job sent afterwards was never received
    assert len(receives) == 1
    done = {c["body"]["job_id"] for c in fake_stack.drain(fake_stack.outgoing_url)}
    assert done == {j.job_id for j in jobs[:2]}
    assert FifoQueue(fake_stack.incoming_url, client=fake_stack.sqs).depth() == (1, 0)


def test_a_batch_received_after_sigterm_is_handed_back_unprocessed(worker, fake_stack):
    jobs = first_jobs(2)
    FifoQueue(fake_stack.incoming_url, client=fake_stack.sqs).send_jobs(jobs)
    original_receive = worker.receive

    def receive_then_signal():
        messages = original_receive()
        worker.stop(signal.SIGTERM)  # arrived while the long poll was waiting
        return messages

    worker.receive = receive_then_signal
    worker.run()
    assert fake_stack.drain(fake_stack.outgoing_url) == []
    assert FifoQueue(fake_stack.incoming_url, client=fake_stack.sqs).depth() == (2, 0)  # visible again at once


def test_heartbeat_keeps_a_long_job_invisible_until_released(fake_stack):
    send_raw(fake_stack, "{}", "g", "1")
    (message,) = fake_stack.sqs.receive_message(QueueUrl=fake_stack.incoming_url, VisibilityTimeout=1)["Messages"]
    with VisibilityHeartbeat(fake_stack.sqs, fake_stack.incoming_url, 0.2, 1) as heartbeat:
        heartbeat.hold([message])
        time.sleep(1.6)  # longer than the 1 s visibility the message was received with
        assert fake_stack.sqs.receive_message(QueueUrl=fake_stack.incoming_url).get("Messages") is None
        assert heartbeat.beats >= 5
    time.sleep(1.2)  # no more heartbeats: the message comes back
    assert len(fake_stack.sqs.receive_message(QueueUrl=fake_stack.incoming_url)["Messages"]) == 1


def test_the_container_command_exits_0_on_sigterm(tmp_path):
    """`python -m jobgraph.services.worker` against a moto server: SIGTERM while long-polling → exit 0."""
    from jobgraph.localcloud.server import LocalEndpoint

    with LocalEndpoint() as endpoint:
        sqs = endpoint.client("sqs")
        incoming = sqs.create_queue(QueueName="in.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        outgoing = sqs.create_queue(QueueName="out.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        env = {
            **os.environ,
            **endpoint.environment(),
            "BUCKET_NAME": "bucket",
            "TABLE_NAME": "table",
            "INCOMING_QUEUE_URL": incoming,
            "OUTGOING_QUEUE_URL": outgoing,
            "WAIT_TIME_SECONDS": "2",
            "POWERTOOLS_SERVICE_NAME": "worker",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "jobgraph.services.worker"],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            lines = []
            while time.monotonic() < deadline:
                line = process.stdout.readline()
                lines.append(line)
                if '"worker started"' in line:
                    break
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, "".join(lines) + out
        assert time.monotonic() - started < 5  # the long poll (2 s here, 20 s on AWS) ends, nothing more
        assert any(json.loads(line).get("message") == "worker stopped" for line in out.splitlines() if line)


def test_bad_configuration_exits_2_with_the_reason(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("INCOMING_QUEUE_URL", "BUCKET_NAME")}
    result = subprocess.run(
        [sys.executable, "-m", "jobgraph.services.worker"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "INCOMING_QUEUE_URL: not set" in result.stderr


def test_a_failed_message_returns_after_its_backoff_and_the_heartbeat_does_not_undo_it(fake_stack, monkeypatch):
    """The batch path sets a failed message's backoff (1 s here) after the heartbeat let go of it: a beat
    afterwards would push it out to the visibility timeout (10 s)."""
    for name, value in {"WAIT_TIME_SECONDS": "0", "RETRY_BACKOFF_BASE_SECONDS": "1",
                        "VISIBILITY_TIMEOUT_SECONDS": "10", "HEARTBEAT_SECONDS": "0.02"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    settings = load_settings(WorkerSettings)
    worker = QueueWorker(settings, build_processor_runtime(settings), sqs=fake_stack.sqs)
    send_raw(fake_stack, "not json", "g", "bad")
    outcome = worker.handle(worker.receive())
    assert (outcome.received, outcome.retried) == (1, 1)
    assert worker.receive() == []  # backing off
    time.sleep(1.3)
    (again,) = worker.receive()
    assert again["Body"] == "not json" and again["Attributes"]["ApproximateReceiveCount"] == "2"
