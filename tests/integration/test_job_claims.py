"""Exactly-once job completion on the job record, raced head-on against the local cloud's moto server.

The server applies each request atomically, as DynamoDB does (localcloud/server.py); these tests start many
claimants at once through real HTTP clients and check that the conditional claim and completion let
exactly one through: one claim wins, one run writes the outputs, one completion is recorded, every other
caller gets that completion or is told the job is in progress — also for duplicate reports, a claimant
re-claiming after its crash, and a claimant whose lease ran out.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from botocore.stub import Stubber

from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.core.errors import JobInProgressError
from jobgraph.core.generator import generate_sequences
from jobgraph.core.graph import route_job
from jobgraph.core.models import CompletedJob, JobStatus
from jobgraph.core.ports import JobClaim
from jobgraph.core.results import ResultStore
from jobgraph.core.run import RunSpec
from jobgraph.services.idempotency import run_claimed
from tests.concurrency import at_once

SPEC = RunSpec("claims", "default", 200, 11)
CLAIMANTS = 16


@pytest.fixture
def results(endpoint, request):
    bucket = f"results-{abs(hash(request.node.name)) % 10**8}"
    endpoint.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return ResultStore(S3BlobStore(bucket, client=endpoint.client("s3")))


def a_job(route_index: int = 0):
    sequence = next(s for s in generate_sequences(3, seed=5) if len(s.routes) > route_index)
    return route_job(SPEC, sequence, route_index)


def completed(job, key: str = "k", ms: float = 1.0) -> CompletedJob:
    return CompletedJob(
        job_id=job.job_id,
        status=JobStatus.COMPLETED,
        output_key=key,
        processing_time_ms=ms,
        test_run_id=job.test_run_id,
        run_id=job.run_id,
        correlation_id=job.correlation_id,
        exec_type=job.exec_type,
    )


def stubbed_table() -> tuple[JobsTable, object]:
    """The table on a client botocore's Stubber answers (``with Stubber(client)``): what moto cannot do."""
    import boto3

    client = boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    return JobsTable("jobs", client=client), client


def add_cancellation(stub, reason: str = "TransactionConflict") -> None:
    """DynamoDB cancelling the transaction: it met another on an item (the run's counters), or ``reason``."""
    stub.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        modeled_fields={"CancellationReasons": [{"Code": "None"}, {"Code": reason}]},
    )


def test_of_many_concurrent_claimants_exactly_one_wins(table):
    job = a_job()
    outcomes = at_once(CLAIMANTS, lambda i: table.claim_job(job, f"claimant-{i}", lease_ms=60_000))
    winners = [i for i, outcome in enumerate(outcomes) if outcome.granted]
    assert len(winners) == 1 and outcomes[winners[0]].status == "PROCESSING"
    # every loser was refused by the winner's claim, and learned who holds it
    refusals = [outcome.record for outcome in outcomes if not outcome.granted]
    assert all(r["status"] == "PROCESSING" and r["claimed_by"] == f"claimant-{winners[0]}" for r in refusals)


def test_many_claimants_running_one_job_run_it_once_and_complete_it_once(endpoint, table, results):
    job = a_job()
    puts_before = endpoint.meter.snapshot("harness")["requests"].get("s3", {}).get("PutObject", 0)
    outcomes = at_once(
        CLAIMANTS,
        lambda i: run_claimed(job, results, table, claimant=f"message-{i}", lease_ms=60_000, carry_max_bytes=10**6),
    )
    answers = [o for o in outcomes if isinstance(o, CompletedJob)]
    in_progress = [o for o in outcomes if isinstance(o, JobInProgressError)]
    assert len(answers) + len(in_progress) == CLAIMANTS, [o for o in outcomes if isinstance(o, Exception)]
    # one run wrote the delays once (no state object: it travels in the completion)
    puts = endpoint.meter.snapshot("harness")["requests"]["s3"]["PutObject"] - puts_before
    assert puts == 1
    record = table.client.get_item(
        TableName=table.table_name, Key={"pk": {"S": f"RUN#{job.run_id}"}, "sk": {"S": f"JOB#{job.job_id}"}}
    )["Item"]
    assert record["status"]["S"] == "COMPLETED" and record["reports"]["N"] == "1"
    # every answer is the one completion (the ones answered from the record carry the same state, replayed)
    first = answers[0]
    assert {(a.output_key, a.processing_time_ms, a.completed_at) for a in answers} == {
        (first.output_key, first.processing_time_ms, first.completed_at)
    }
    assert {a.state for a in answers} == {first.state} and first.state is not None
    # and after it completed, a late duplicate gets the same completion
    late = run_claimed(job, results, table, claimant="late-duplicate", lease_ms=60_000, carry_max_bytes=10**6)
    assert (late.output_key, late.completed_at, late.state) == (first.output_key, first.completed_at, first.state)


def test_the_same_claimant_reclaims_after_a_crash_others_wait_for_its_lease(table):
    job = a_job()
    assert table.claim_job(job, "message-1", lease_ms=60_000).granted
    # the worker died mid-job; another copy of the job (a different message) must wait
    refused = table.claim_job(job, "message-2", lease_ms=60_000)
    assert not refused.granted
    assert refused.record["status"] == "PROCESSING" and refused.record["claimed_by"] == "message-1"
    # its own message, redelivered, claims again at once (a redelivery means the first delivery is over)
    assert table.claim_job(job, "message-1", lease_ms=60_000, attempt=2).granted
    assert table.record_job(completed(job), attempt=2) is None
    assert table.claim_job(job, "message-2", lease_ms=60_000).record["status"] == "COMPLETED"


def test_a_lease_that_ran_out_is_taken_over_and_the_first_completion_stands(table):
    job = a_job()
    now = int(time.time() * 1000)
    assert table.claim_job(job, "slow", lease_ms=1_000, now_ms=now - 5_000).granted  # lease ended 4 s ago
    assert table.claim_job(job, "fast", lease_ms=60_000, now_ms=now).granted  # taken over
    assert table.record_job(completed(job, key="fast-output", ms=2.0)) is None
    # the slow claimant finishes later: its completion is refused and it gets the stored one back
    refused = table.record_job(completed(job, key="slow-output", ms=9.0))
    assert refused["status"] == "COMPLETED" and refused["output_key"] == "fast-output"


def test_duplicate_reports_never_overwrite_a_completion(table):
    job = a_job()
    assert table.claim_job(job, "m", lease_ms=60_000).granted
    reports = at_once(8, lambda i: table.record_job(completed(job, key=f"output-{i}", ms=float(i))))
    assert Counter(r is None for r in reports) == {True: 1, False: 7}
    winner = reports.index(None)
    # a failure reported late (a claimant that crashed after another completed) cannot undo the completion
    failed = completed(job).model_copy(update={"status": JobStatus.FAILED, "error_message": "late"})
    assert table.record_job(failed)["status"] == "COMPLETED"
    item = table.client.get_item(
        TableName=table.table_name, Key={"pk": {"S": f"RUN#{job.run_id}"}, "sk": {"S": f"JOB#{job.job_id}"}}
    )["Item"]
    assert item["status"]["S"] == "COMPLETED" and item["output_key"]["S"] == f"output-{winner}"
    assert item["reports"]["N"] == "1" and "claimed_by" not in item


def test_a_failure_releases_the_claim_for_the_retry(table):
    job = a_job()
    assert table.claim_job(job, "m1", lease_ms=60_000).granted
    failed = completed(job).model_copy(update={"status": JobStatus.FAILED, "error_message": "boom"})
    assert table.record_job(failed) is None
    # a retry by another delivery need not wait for the lease
    assert table.claim_job(job, "m2", lease_ms=60_000, attempt=2).granted


def _record(table, job) -> dict:
    key = {"pk": {"S": f"RUN#{job.run_id}"}, "sk": {"S": f"JOB#{job.job_id}"}}
    return table.client.get_item(TableName=table.table_name, Key=key, ConsistentRead=True)["Item"]


def _progress(table, run_id: str) -> dict:
    key = {"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "PROGRESS"}}
    item = table.client.get_item(TableName=table.table_name, Key=key, ConsistentRead=True).get("Item", {})
    return {name: float(value["N"]) for name, value in item.items() if name in ("nC", "nF")}


def test_a_failed_job_keeps_its_counted_status_through_its_retry_claims_crash_and_completion(table):
    """The claim leaves a FAILED record FAILED (the run's counters count it so), also when the retry dies
    mid-job and another claims it after the lease: its completion moves it from FAILED to COMPLETED once."""
    job = a_job()
    first = table.claim_job(job, "m1", lease_ms=60_000)
    failed = completed(job).model_copy(update={"status": JobStatus.FAILED, "error_message": "boom"})
    assert table.record_job(failed, 1, first.status) is None
    assert _progress(table, job.run_id) == {"nF": 1}
    now = int(time.time() * 1000)
    retry = table.claim_job(job, "m2", lease_ms=1_000, attempt=2, now_ms=now - 5_000)
    assert retry.granted and retry.status == "FAILED"
    record = _record(table, job)
    assert record["status"]["S"] == "FAILED" and record["claimed_by"]["S"] == "m2"
    # m2 died; its lease ran out; m3 takes over and completes
    takeover = table.claim_job(job, "m3", lease_ms=60_000, attempt=3, now_ms=now)
    assert takeover.granted and takeover.status == "FAILED"
    assert table.record_job(completed(job), 3, takeover.status) is None
    assert _progress(table, job.run_id) == {"nC": 1, "nF": 0}
    assert _record(table, job)["status"]["S"] == "COMPLETED"


def test_a_claimed_outcome_is_one_request_and_a_wrong_expectation_costs_a_read_not_a_count(endpoint, table):
    jobs = [a_job(0), a_job(1)]
    for job in jobs:
        assert table.claim_job(job, "m", lease_ms=60_000).granted
    before = endpoint.meter.snapshot("harness")["requests"]["dynamodb"]
    assert table.record_job(completed(jobs[0]), 1, "PROCESSING") is None
    after = endpoint.meter.snapshot("harness")["requests"]["dynamodb"]
    assert {a: n - before.get(a, 0) for a, n in after.items() if n != before.get(a, 0)} == {"TransactWriteItems": 1}
    # told FAILED, but the record is PROCESSING: the condition refuses, the status is read, counted right
    assert table.record_job(completed(jobs[1]), 1, "FAILED") is None
    assert _progress(table, jobs[0].run_id) == {"nC": 2}


def test_an_outcome_whose_transaction_meets_another_on_the_counters_is_written_on_a_later_try(monkeypatch):
    """DynamoDB cancels a transaction that collides with another on an item (TransactionConflict: every job
    of a run adds to its one counters item) rather than waiting; moto never does, so botocore's Stubber
    answers as DynamoDB would. The outcome is written on the next try, after reading the status again."""
    from botocore.exceptions import ClientError

    from jobgraph.adapters.dynamodb import jobs as dynamodb

    monkeypatch.setattr(dynamodb.time, "sleep", lambda s: None)
    table, client = stubbed_table()
    job = a_job()
    with Stubber(client) as stub:
        add_cancellation(stub)
        stub.add_response("get_item", {"Item": {"status": {"S": "PROCESSING"}}})
        stub.add_response("transact_write_items", {})
        assert table.record_job(completed(job), 1, "PROCESSING") is None
        stub.assert_no_pending_responses()
    # any other cancellation (say, the counters item's own condition) is not retried
    with Stubber(client) as stub:
        add_cancellation(stub, reason="ValidationError")
        with pytest.raises(ClientError, match="TransactionCanceledException"):
            table.record_job(completed(job), 1, "PROCESSING")


def test_a_first_claim_is_attempt_one_leased_from_now(table):
    """Without ``attempt`` and ``now_ms`` a claim is the job's first attempt, its lease counted from the clock in
    milliseconds (a retry's claim passes its attempt; tests pass the time)."""
    job = a_job()
    before = int(time.time() * 1000)
    assert table.claim_job(job, "m", lease_ms=60_000).granted
    after = time.time() * 1000
    record = _record(table, job)
    assert record["last_attempt"] == {"N": "1"} and table.job_attempts(job.run_id, job.job_id) == 1
    assert before + 60_000 <= int(record["lease_until_ms"]["N"]) <= after + 60_000


def test_the_attempt_is_read_strongly_consistent_and_alone():
    """job_attempts follows a claim or a report at once (a retry's backoff is counted from it): an eventually
    consistent read could miss that write on DynamoDB (moto's reads are always consistent, so the request is
    checked as sent), and it reads the one attribute it needs."""

    table, client = stubbed_table()
    key = {"pk": {"S": "RUN#r"}, "sk": {"S": "JOB#j"}}
    expected = {"TableName": "jobs", "Key": key, "ProjectionExpression": "last_attempt", "ConsistentRead": True}
    with Stubber(client) as stub:
        stub.add_response("get_item", {"Item": {"last_attempt": {"N": "3"}}}, expected)
        stub.add_response("get_item", {}, expected)
        assert table.job_attempts("r", "j") == 3
        assert table.job_attempts("r", "j") == 0
        stub.assert_no_pending_responses()


def test_a_lease_of_zero_or_less_ends_at_the_claim_and_is_taken_over_a_millisecond_later(table):
    job = a_job()
    now = int(time.time() * 1000)
    assert table.claim_job(job, "m1", lease_ms=-5_000, now_ms=now).granted
    assert _record(table, job)["lease_until_ms"] == {"N": str(now)}  # clamped to the claim's time, never before it
    assert not table.claim_job(job, "m2", lease_ms=60_000, now_ms=now).granted  # still m1's at that millisecond
    assert table.claim_job(job, "m2", lease_ms=60_000, now_ms=now + 1).granted


def _plain_record(table, job) -> dict:
    from jobgraph.adapters.dynamodb.table import plain

    return plain(_record(table, job))


def test_each_refused_claim_says_why_with_the_record_that_refused_it(table):
    """The Processor acts on a refusal's status: COMPLETED → the stored completion is the answer, anything else →
    the job is in progress elsewhere; so each refusal is stated whole."""
    running, done, retried = a_job(0), a_job(1), a_job(2)
    now = int(time.time() * 1000)
    # another claimant's lease runs
    assert table.claim_job(running, "m1", lease_ms=60_000, now_ms=now).granted
    assert table.claim_job(running, "m2", lease_ms=60_000, now_ms=now) == JobClaim(
        False, "PROCESSING", _plain_record(table, running)
    )
    # the job completed: the refusal holds the stored completion
    assert table.claim_job(done, "m1", lease_ms=60_000).granted
    assert table.record_job(completed(done, key="out/k"), 1, "PROCESSING") is None
    refusal = table.claim_job(done, "m2", lease_ms=60_000)
    assert (
        refusal == JobClaim(False, "COMPLETED", _plain_record(table, done)) and refusal.record["output_key"] == "out/k"
    )
    # a failed job's retry, claimed by m2 whose lease runs: m3's retry claim is refused (the second update)
    first = table.claim_job(retried, "m1", lease_ms=60_000, now_ms=now)
    failed = completed(retried).model_copy(update={"status": JobStatus.FAILED, "error_message": "boom"})
    assert table.record_job(failed, 1, first.status) is None
    assert table.claim_job(retried, "m2", lease_ms=60_000, attempt=2, now_ms=now).granted
    assert table.claim_job(retried, "m3", lease_ms=60_000, attempt=3, now_ms=now) == JobClaim(
        False, "FAILED", _plain_record(table, retried)
    )


def test_an_outcome_recorded_without_its_attempt_is_the_first(table):
    job = a_job()
    assert table.claim_job(job, "m", lease_ms=60_000).granted
    assert table.record_job(completed(job)) is None
    assert _record(table, job)["last_attempt"] == {"N": "1"} and table.job_attempts(job.run_id, job.job_id) == 1


def test_a_refusal_that_returns_no_record_is_a_refusal_with_an_empty_record():
    """DynamoDB returns the refusing item only with ReturnValuesOnConditionCheckFailure (older endpoints and
    emulators leave it out): the claim is still refused, with no status and an empty record."""

    table, client = stubbed_table()
    with Stubber(client) as stub:
        stub.add_client_error("update_item", service_error_code="ConditionalCheckFailedException")
        assert table.claim_job(a_job(), "m", lease_ms=60_000, now_ms=1) == JobClaim(False, None, {})
        stub.assert_no_pending_responses()


def test_the_status_is_read_strongly_consistent_and_conflicts_back_off_doubling(monkeypatch):
    """Without the claim's status, record_job reads the job's status (strongly consistent: the outcome is
    conditioned on it) and, while its transaction meets others on the run's counters, waits a random 10–50 ms
    doubling each time before reading and trying again."""

    from jobgraph.adapters.dynamodb import jobs as dynamodb

    slept, drawn = [], []
    monkeypatch.setattr(dynamodb.time, "sleep", slept.append)
    monkeypatch.setattr(dynamodb.random, "uniform", lambda low, high: drawn.append((low, high)) or high)
    table, client = stubbed_table()
    job = a_job()
    read = {
        "TableName": "jobs",
        "Key": {"pk": {"S": f"RUN#{job.run_id}"}, "sk": {"S": f"JOB#{job.job_id}"}},
        "ConsistentRead": True,
        "ProjectionExpression": "#status",
        "ExpressionAttributeNames": {"#status": "status"},
    }
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_response("get_item", {"Item": {"status": {"S": "PROCESSING"}}}, read)
            add_cancellation(stub)
        stub.add_response("get_item", {"Item": {"status": {"S": "PROCESSING"}}}, read)
        stub.add_response("transact_write_items", {})
        assert table.record_job(completed(job), 1) is None
        stub.assert_no_pending_responses()
    assert drawn == [(0.01, 0.05)] * 3 and slept == [0.05, 0.1, 0.2]


def test_the_outcome_record_keeps_numbers_as_numbers_and_is_listed_by_run_and_status(table):
    """The job record as the status API and the indexes read it: numbers typed N, and a run's job in the index
    keyed by run and status (gsi1), sorted by its end time; a task's job is not listed per run."""
    from jobgraph.core.ids import new_task_id

    job = a_job(1)
    assert table.claim_job(job, "m", lease_ms=60_000).granted
    done = completed(job, key="out/k").model_copy(
        update={"sequence_id": 3, "route_index": 1, "input_size_bytes": 2048, "completed_at": "2026-12-03T02:00:00Z"}
    )
    assert table.record_job(done, 1, "PROCESSING") is None
    record = _record(table, job)
    assert (record["sequence_id"], record["route_index"], record["input_size_bytes"]) == (
        {"N": "3"}, {"N": "1"}, {"N": "2048"},
    )  # fmt: skip
    assert record["output_key"] == {"S": "out/k"}
    assert (record["gsi1pk"], record["gsi1sk"]) == (
        {"S": f"JOBS#{job.run_id}#COMPLETED"},
        {"S": "2026-12-03T02:00:00Z"},
    )
    task_id = new_task_id()
    task = completed(job).model_copy(update={"job_id": task_id, "run_id": task_id, "correlation_id": task_id})
    assert table.record_job(task) is None
    key = {"pk": {"S": f"TASK#{task_id}"}, "sk": {"S": "TASK"}}  # a task's job is its task record
    item = table.client.get_item(TableName=table.table_name, Key=key, ConsistentRead=True)["Item"]
    assert item["status"] == {"S": "COMPLETED"} and "gsi1pk" not in item and "gsi1sk" not in item


def test_a_record_that_keeps_changing_gives_up_after_five_tries_naming_the_job(monkeypatch):

    from jobgraph.adapters.dynamodb import jobs as dynamodb
    from jobgraph.core.errors import JobGraphError

    monkeypatch.setattr(dynamodb.time, "sleep", lambda s: None)
    table, client = stubbed_table()
    job = a_job()
    with Stubber(client) as stub:
        for _ in range(dynamodb.MAX_OUTCOME_TRIES):
            stub.add_response("get_item", {"Item": {"status": {"S": "PROCESSING"}}})
            add_cancellation(stub)
        with pytest.raises(JobGraphError) as caught:
            table.record_job(completed(job), 1)
        stub.assert_no_pending_responses()
    assert str(caught.value) == (f"job {job.job_id}: its record kept changing while its outcome was written (5 tries)")
