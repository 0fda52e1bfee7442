"""Every events/*.json through its handler, in-process, against moto — with the effect asserted."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from tests.lambda_support import FakeLambdaContext, event, load_handler

RUN = "events-demo"


@pytest.fixture
def handlers(fake_stack):
    return {name: load_handler(name) for name in ("processor", "scheduler", "start_run")}


def invoke(handlers, function: str, event_name: str) -> dict:
    return handlers[function](event(event_name), FakeLambdaContext(function_name=function))


def start(handlers, fake_stack) -> list[dict]:
    response = invoke(handlers, "start_run", "start-run")
    assert response["status"] == "RUNNING", response
    return fake_stack.drain(fake_stack.incoming_url)


def run_processor_chain(handlers, fake_stack, until: str) -> None:
    for stage in ("first", "intermediate", "last", "aggregation", "merge"):
        assert invoke(handlers, "processor", f"processor-{stage}") == {"batchItemFailures": []}
        if stage == until:
            return


def test_start_run_stores_inputs_and_seeds_first_jobs(handlers, fake_stack):
    response = invoke(handlers, "start_run", "start-run")
    assert response == {
        "status": "RUNNING", "run_id": RUN, "test_run_id": "default", "sequences": 1, "jobs_total": 5,
        "first_jobs_sent": 1, "scenarios": 1000, "seed": 42,
    }  # fmt: skip
    (message,) = fake_stack.drain(fake_stack.incoming_url)
    assert message["group"] == f"{RUN}-s0"
    assert message["body"]["exec_type"] == "FIRST" and message["body"]["job_id"] == f"{RUN}-s0-r0"
    run = fake_stack.item(f"RUN#{RUN}", "RUN")
    assert run["status"] == "RUNNING" and run["sequences_remaining"] == 1 and run["gsi1pk"] == "RUN#RUNNING"
    keys = [o["Key"] for o in fake_stack.s3.list_objects_v2(Bucket=fake_stack.bucket)["Contents"]]
    assert sorted(keys) == [f"_jobgraph/runs/{RUN}/manifest.json", f"_jobgraph/runs/{RUN}/sequences/0-99.json"]
    # the same run_id again is rejected, and nothing more is sent
    again = invoke(handlers, "start_run", "start-run")
    assert again["status"] == "REJECTED" and "already exists" in again["errors"][0]
    assert fake_stack.drain(fake_stack.incoming_url) == []


def test_start_run_rejects_bad_sequences_with_named_fields(handlers, fake_stack):
    bad = event("start-run")
    bad["sequences"][0]["routes"][1]["origin_iata"] = "ZZZ"
    response = handlers["start_run"](bad, FakeLambdaContext())
    assert response["status"] == "REJECTED"
    assert any(
        e.startswith("sequences[0]: sequence 0: routes[1].origin_iata: unknown IATA") for e in response["errors"]
    )
    assert fake_stack.drain(fake_stack.incoming_url) == []
    assert fake_stack.item(f"RUN#{RUN}", "RUN") is None


@pytest.mark.parametrize("stage", ["first", "intermediate", "last"])
def test_processor_route_events_write_delays_and_report(handlers, fake_stack, stage):
    start(handlers, fake_stack)
    run_processor_chain(handlers, fake_stack, until=stage)
    index = ["first", "intermediate", "last"].index(stage)
    job_id = f"{RUN}-s0-r{index}"
    body = fake_stack.s3.get_object(Bucket=fake_stack.bucket, Key=f"{RUN}/delays/{job_id}.parquet")["Body"].read()
    frame = pd.read_parquet(pd.io.common.BytesIO(body))
    assert len(frame) == 1000 and set(frame["route_index"]) == {index} and (frame["departure_delay_min"] >= 0).all()
    completions = [m["body"] for m in fake_stack.drain(fake_stack.outgoing_url)]
    assert [c["job_id"] for c in completions] == [f"{RUN}-s0-r{i}" for i in range(index + 1)]
    assert (
        completions[-1]["status"] == "completed" and completions[-1]["output_key"] == f"{RUN}/delays/{job_id}.parquet"
    )
    record = fake_stack.item(f"RUN#{RUN}", f"JOB#{job_id}")
    assert record["status"] == "COMPLETED" and record["exec_type"] == stage.upper() and record["processing_time_ms"] > 0


def test_processor_aggregation_and_merge_events(handlers, fake_stack):
    start(handlers, fake_stack)
    run_processor_chain(handlers, fake_stack, until="merge")
    get = lambda key: json.loads(fake_stack.s3.get_object(Bucket=fake_stack.bucket, Key=key)["Body"].read())  # noqa: E731
    per_sequence = get(f"{RUN}/percentiles/0.json")
    merged = get(f"{RUN}/merged_percentiles.json")
    assert per_sequence["routes"] == 3 and per_sequence["scenarios"] == 1000
    assert merged["sequences"] == 1 and merged["samples"] == 1000
    assert merged["final_arrival_delay_min"]["max"] == per_sequence["final_arrival_delay_min"]["max"]
    kinds = [m["body"]["exec_type"] for m in fake_stack.drain(fake_stack.outgoing_url)]
    assert kinds == ["FIRST", "INTERMEDIATE", "LAST", "AGGREGATION", "MERGE"]


def test_duplicate_delivery_is_idempotent(handlers, fake_stack):
    start(handlers, fake_stack)
    invoke(handlers, "processor", "processor-first")
    key = f"{RUN}/delays/{RUN}-s0-r0.parquet"
    first_bytes = fake_stack.s3.get_object(Bucket=fake_stack.bucket, Key=key)["Body"].read()
    assert invoke(handlers, "processor", "processor-first") == {"batchItemFailures": []}
    assert fake_stack.s3.get_object(Bucket=fake_stack.bucket, Key=key)["Body"].read() == first_bytes
    # the redelivery reports again (its first attempt could have stopped before reporting); the FIFO
    # queue's deduplication keeps one copy
    assert len(fake_stack.drain(fake_stack.outgoing_url)) == 1
    assert fake_stack.item(f"RUN#{RUN}", f"JOB#{RUN}-s0-r0")["reports"] == 1


def without_state(name: str) -> dict:
    """The event's job without a carried state: its previous route's state is read from S3."""
    payload = event(name)
    body = json.loads(payload["Records"][0]["body"])
    body.pop("state")
    payload["Records"][0]["body"] = json.dumps(body)
    return payload


def test_failed_job_is_reported_recorded_and_returned_for_retry(handlers, fake_stack, monkeypatch):
    monkeypatch.setenv("STATE_IN_MESSAGE_MAX_BYTES", "0")  # route states are S3 objects (as for a large S)
    start(handlers, fake_stack)
    # route 0's state is missing; a batch whose every record failed makes the invocation fail (Powertools),
    # so SQS retries the whole batch
    with pytest.raises(BatchProcessingError, match="MissingStateError"):
        handlers["processor"](without_state("processor-intermediate"), FakeLambdaContext())
    record = fake_stack.item(f"RUN#{RUN}", f"JOB#{RUN}-s0-r1")
    assert record["status"] == "FAILED" and "MissingStateError" in record["error_message"]
    (report,) = fake_stack.drain(fake_stack.outgoing_url)
    assert report["body"]["status"] == "failed" and "state of route 0" in report["body"]["error_message"]
    # once the missing input exists, the retry succeeds (the failure released the job's claim)
    invoke(handlers, "processor", "processor-first")
    assert "state" not in fake_stack.drain(fake_stack.outgoing_url)[0]["body"]  # route 0's state went to S3
    retry = handlers["processor"](without_state("processor-intermediate"), FakeLambdaContext())
    assert retry == {"batchItemFailures": []}
    assert fake_stack.item(f"RUN#{RUN}", f"JOB#{RUN}-s0-r1")["status"] == "COMPLETED"


def test_poison_message_is_recorded_and_failed(handlers, fake_stack):
    poison = event("processor-poison")
    with pytest.raises(BatchProcessingError):
        handlers["processor"](poison, FakeLambdaContext())
    message_id = poison["Records"][0]["messageId"]
    record = fake_stack.item("POISON", f"MSG#{message_id}")
    # kept as it came (for inspection), under the failed jobs of the by-status index, naming what is missing
    assert record["body"] == poison["Records"][0]["body"]
    assert record["status"] == "FAILED" and record["gsi1pk"] == "JOB#FAILED"
    assert "job_id" in record["error_message"]


def test_poison_does_not_block_other_groups_in_the_batch(handlers, fake_stack):
    start(handlers, fake_stack)
    batch = {"Records": event("processor-poison")["Records"] + event("processor-first")["Records"]}
    response = handlers["processor"](batch, FakeLambdaContext())
    assert response["batchItemFailures"] == [{"itemIdentifier": batch["Records"][0]["messageId"]}]
    assert [m["body"]["job_id"] for m in fake_stack.drain(fake_stack.outgoing_url)] == [f"{RUN}-s0-r0"]


@pytest.mark.parametrize(
    ("stage", "expected"),
    [("first", ("INTERMEDIATE", f"{RUN}-s0-r1")), ("intermediate", ("LAST", f"{RUN}-s0-r2")),
     ("last", ("AGGREGATION", f"{RUN}-s0-agg"))],
)  # fmt: skip
def test_scheduler_route_events_emit_the_next_job(handlers, fake_stack, stage, expected):
    start(handlers, fake_stack)
    assert invoke(handlers, "scheduler", f"scheduler-{stage}") == {"batchItemFailures": []}
    (message,) = fake_stack.drain(fake_stack.incoming_url)
    assert (message["body"]["exec_type"], message["body"]["job_id"]) == expected
    assert message["group"] == f"{RUN}-s0"


def test_scheduler_aggregation_emits_exactly_one_merge(handlers, fake_stack):
    start(handlers, fake_stack)
    for _ in range(3):  # duplicates of the same completion
        assert invoke(handlers, "scheduler", "scheduler-aggregation") == {"batchItemFailures": []}
    merges = [m for m in fake_stack.drain(fake_stack.incoming_url) if m["body"]["exec_type"] == "MERGE"]
    assert len(merges) == 1 and merges[0]["body"]["job_id"] == f"{RUN}-merge"
    run = fake_stack.item(f"RUN#{RUN}", "RUN")
    assert run["sequences_remaining"] == 0 and run["merge_claimed_by"] == f"{RUN}-s0-agg"


def test_scheduler_merge_completes_the_run(handlers, fake_stack):
    start(handlers, fake_stack)
    invoke(handlers, "scheduler", "scheduler-aggregation")
    assert invoke(handlers, "scheduler", "scheduler-merge") == {"batchItemFailures": []}
    run = fake_stack.item(f"RUN#{RUN}", "RUN")
    assert run["status"] == "COMPLETED" and run["gsi1pk"] == "RUN#COMPLETED" and run["duration_s"] >= 0
    assert run["merged_key"] == f"{RUN}/merged_percentiles.json"
    assert invoke(handlers, "scheduler", "scheduler-merge") == {"batchItemFailures": []}  # duplicate: no-op


def test_scheduler_failed_completion_schedules_nothing(handlers, fake_stack):
    start(handlers, fake_stack)
    assert invoke(handlers, "scheduler", "scheduler-failed") == {"batchItemFailures": []}
    assert fake_stack.drain(fake_stack.incoming_url) == []


def test_every_event_file_is_exercised():
    from tests.lambda_support import EVENTS

    names = {p.stem for p in EVENTS.glob("*.json")}
    covered = {f"processor-{s}" for s in ("first", "intermediate", "last", "aggregation", "merge", "poison")}
    covered |= {f"scheduler-{s}" for s in ("first", "intermediate", "last", "aggregation", "merge", "failed")}
    covered |= {"start-run"}
    covered |= {f"step-task-{s}" for s in ("first", "intermediate", "last", "aggregation", "merge")}  # test_step_tasks
    # the status API's events run through its handler in test_iam_permissions.py; the trigger's in test_triggers.py
    covered |= {f"api-{s}" for s in ("post-runs", "get-run", "list-jobs", "get-results", "post-task")}
    covered |= {"triggers-run-completed"}
    assert names == covered


def sqs_event(messages: list[dict], template: str) -> dict:
    """An SQS event of ``messages`` (drained bodies and groups), shaped like the events/ file ``template``."""
    record = event(template)["Records"][0]
    records = []
    for index, message in enumerate(messages):
        attributes = {**record["attributes"], "MessageGroupId": message["group"], "SequenceNumber": str(index + 1)}
        records.append(
            {**record, "messageId": f"m-{index}", "body": json.dumps(message["body"]), "attributes": attributes}
        )
    return {"Records": records}


def test_a_batch_reports_its_completions_and_next_jobs_in_one_call_each(handlers, fake_stack, monkeypatch):
    from jobgraph.adapters.sqs import FifoQueue

    three = event("start-run")
    three["sequences"] = [{**three["sequences"][0], "sequence_id": i} for i in range(3)]
    assert handlers["start_run"](three, FakeLambdaContext())["status"] == "RUNNING"
    firsts = fake_stack.drain(fake_stack.incoming_url)
    calls = []
    original = FifoQueue._send_batch
    monkeypatch.setattr(FifoQueue, "_send_batch", lambda q, entries: calls.append(len(entries)) or original(q, entries))
    # when the Processor runs three FIRST jobs in one invocation
    processor_event = sqs_event(firsts, "processor-first")
    assert handlers["processor"](processor_event, FakeLambdaContext()) == {"batchItemFailures": []}
    # then their three completions go out in one SendMessageBatch
    assert calls == [3]
    completions = fake_stack.drain(fake_stack.outgoing_url)
    assert sorted(c["body"]["job_id"] for c in completions) == [f"{RUN}-s{i}-r0" for i in range(3)]
    # and when the Scheduler gets the three completions, the three next routes go out in one call too
    calls.clear()
    assert handlers["scheduler"](sqs_event(completions, "scheduler-first"), FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    assert calls == [3]
    nexts = fake_stack.drain(fake_stack.incoming_url)
    assert sorted(n["body"]["job_id"] for n in nexts) == [f"{RUN}-s{i}-r1" for i in range(3)]


def test_when_reporting_fails_the_batch_fails_and_its_retry_reports(handlers, fake_stack, monkeypatch):
    from jobgraph.adapters.sqs import FifoQueue
    from jobgraph.core.errors import StoreError

    start(handlers, fake_stack)
    original = FifoQueue.send_completions

    def down(queue, completions, attempt=1):
        raise StoreError("SQS unavailable")

    monkeypatch.setattr(FifoQueue, "send_completions", down)
    with pytest.raises(StoreError):
        invoke(handlers, "processor", "processor-first")  # SQS redelivers the whole batch
    assert fake_stack.drain(fake_stack.outgoing_url) == []
    monkeypatch.setattr(FifoQueue, "send_completions", original)
    # the redelivery answers from the idempotency record (the job ran once) and reports it
    assert invoke(handlers, "processor", "processor-first") == {"batchItemFailures": []}
    (report,) = fake_stack.drain(fake_stack.outgoing_url)
    assert report["body"]["job_id"] == f"{RUN}-s0-r0" and report["body"]["status"] == "completed"
    assert fake_stack.item(f"RUN#{RUN}", f"JOB#{RUN}-s0-r0")["reports"] == 1


def three_firsts(handlers, fake_stack) -> dict:
    three = event("start-run")
    three["sequences"] = [{**three["sequences"][0], "sequence_id": i} for i in range(3)]
    assert handlers["start_run"](three, FakeLambdaContext())["status"] == "RUNNING"
    return sqs_event(fake_stack.drain(fake_stack.incoming_url), "processor-first")


def test_a_batchs_outcomes_are_recorded_together_before_their_completions_go_out(handlers, fake_stack, monkeypatch):
    from jobgraph.adapters.dynamodb.jobs import DynamoJobStore
    from jobgraph.adapters.sqs import FifoQueue

    processor_event = three_firsts(handlers, fake_stack)
    steps: list[tuple[str, int]] = []
    record_jobs, send = DynamoJobStore.record_jobs, FifoQueue.send_completions
    monkeypatch.setattr(
        DynamoJobStore, "record_jobs", lambda t, o: steps.append(("record", len(o))) or record_jobs(t, o)
    )
    monkeypatch.setattr(DynamoJobStore, "record_job", lambda *a, **k: pytest.fail("a success recorded alone"))
    monkeypatch.setattr(
        FifoQueue, "send_completions", lambda q, c, *a: steps.append(("send", len(c))) or send(q, c, *a)
    )
    assert handlers["processor"](processor_event, FakeLambdaContext()) == {"batchItemFailures": []}
    assert steps == [("record", 3), ("send", 3)]
    for i in range(3):
        record = fake_stack.item(f"RUN#{RUN}", f"JOB#{RUN}-s{i}-r0")
        assert record["status"] == "COMPLETED" and record["reports"] == 1 and "claimed_by" not in record
    assert len(fake_stack.drain(fake_stack.outgoing_url)) == 3


def test_when_recording_the_batch_fails_nothing_is_reported_and_its_retry_records_and_reports(
    handlers, fake_stack, monkeypatch
):
    from jobgraph.adapters.dynamodb.jobs import DynamoJobStore
    from jobgraph.core.errors import StoreError

    processor_event = three_firsts(handlers, fake_stack)
    record_jobs = DynamoJobStore.record_jobs

    def down(table, outcomes):
        raise StoreError("DynamoDB unavailable")

    monkeypatch.setattr(DynamoJobStore, "record_jobs", down)
    with pytest.raises(StoreError):
        handlers["processor"](processor_event, FakeLambdaContext())  # SQS redelivers the whole batch
    assert fake_stack.drain(fake_stack.outgoing_url) == []
    assert {fake_stack.item(f"RUN#{RUN}", f"JOB#{RUN}-s{i}-r0")["status"] for i in range(3)} == {"PROCESSING"}
    monkeypatch.setattr(DynamoJobStore, "record_jobs", record_jobs)
    # the same message ids claim their jobs again, run them and record them
    assert handlers["processor"](processor_event, FakeLambdaContext()) == {"batchItemFailures": []}
    reports = fake_stack.drain(fake_stack.outgoing_url)
    assert sorted(r["body"]["job_id"] for r in reports) == [f"{RUN}-s{i}-r0" for i in range(3)]
    assert {fake_stack.item(f"RUN#{RUN}", f"JOB#{RUN}-s{i}-r0")["status"] for i in range(3)} == {"COMPLETED"}


def test_a_job_another_claimant_completed_first_reports_that_completion(handlers, fake_stack, monkeypatch):
    """A claimant whose lease ran out (taken over) and completed the job before this batch recorded it: the
    batch's transaction is refused, and the completion that stands is the one sent."""
    from jobgraph.adapters.dynamodb import JobsTable
    from jobgraph.adapters.dynamodb.jobs import DynamoJobStore
    from jobgraph.core.models import CompletedJob, IncomingJob, JobStatus

    processor_event = three_firsts(handlers, fake_stack)
    record_jobs = DynamoJobStore.record_jobs
    other = JobsTable(fake_stack.table, client=fake_stack.dynamodb)

    def taken_over_first(table, outcomes):
        bodies = [json.loads(r["body"]) for r in processor_event["Records"]]
        job = IncomingJob.model_validate(next(b for b in bodies if b["job_id"] == outcomes[1].completed.job_id))
        later = outcomes[1].completed.model_copy(update={"processing_time_ms": 4321.0})
        assert other.claim_job(job, "other", lease_ms=60_000, now_ms=2**52).granted  # long after our lease
        assert other.record_job(later, 1, "PROCESSING") is None
        return record_jobs(table, outcomes)

    monkeypatch.setattr(DynamoJobStore, "record_jobs", taken_over_first)
    assert handlers["processor"](processor_event, FakeLambdaContext()) == {"batchItemFailures": []}
    sent = {
        r["body"]["job_id"]: CompletedJob.model_validate(r["body"]) for r in fake_stack.drain(fake_stack.outgoing_url)
    }
    assert len(sent) == 3 and all(c.status is JobStatus.COMPLETED for c in sent.values())
    times = sorted(c.processing_time_ms for c in sent.values())
    assert times[-1] == 4321.0 and times[-2] < 4321.0
    assert (
        sorted(float(fake_stack.item(f"RUN#{RUN}", f"JOB#{job_id}")["processing_time_ms"]) for job_id in sent) == times
    )
