"""A batch's outcomes recorded together (JobsTable.record_jobs) on the local cloud's moto server: one
transaction holds every job record's conditioned update and each run's counters item once, its increments
summed — and a batch in which one job was completed elsewhere meanwhile falls back to one job at a time,
so the completion that came first stands and the counters count every job once."""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.stub import Stubber

from jobgraph.adapters.dynamodb.jobs import MAX_OUTCOMES_TOGETHER
from jobgraph.core.generator import generate_sequences
from jobgraph.core.graph import route_job
from jobgraph.core.models import JobStatus
from jobgraph.core.ports import JobOutcome
from jobgraph.core.progress import time_bucket
from jobgraph.core.run import RunSpec
from tests.integration.test_job_claims import _progress, _record, add_cancellation, completed, stubbed_table

SPEC = RunSpec("batched", "default", 200, 11)


def jobs(count: int, spec: RunSpec = SPEC):
    return [route_job(spec, sequence, 0) for sequence in generate_sequences(count, seed=3)]


def spent(endpoint, before: dict) -> tuple[dict, float]:
    """DynamoDB requests by action and write units since ``before`` (a snapshot of the harness's meter)."""
    now = endpoint.meter.snapshot("harness")
    was = before["requests"].get("dynamodb", {})
    requests = {a: n - was.get(a, 0) for a, n in now["requests"].get("dynamodb", {}).items() if n != was.get(a, 0)}
    return requests, now["units"].get("dynamodb_wru", 0) - before["units"].get("dynamodb_wru", 0)


def counters(table, run_id: str) -> dict:
    key = {"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "PROGRESS"}}
    item = table.client.get_item(TableName=table.table_name, Key=key, ConsistentRead=True)["Item"]
    return {name: float(value["N"]) for name, value in item.items() if "N" in value}


def test_a_batch_is_one_transaction_with_its_runs_counters_written_once(endpoint, table):
    batch = jobs(4)
    claims = [table.claim_job(job, f"m{i}", lease_ms=60_000) for i, job in enumerate(batch)]
    failed = completed(batch[3]).model_copy(update={"status": JobStatus.FAILED, "error_message": "boom"})
    assert table.record_job(failed, 1, claims[3].status) is None  # counted FAILED, then retried
    claims[3] = table.claim_job(batch[3], "m3-again", lease_ms=60_000, attempt=2)
    assert claims[3].granted and claims[3].status == "FAILED"
    outcomes = [
        JobOutcome(completed(job, key=f"k{i}", ms=10.25 * (i + 1)), 2 if i == 3 else 1, claims[i].status)
        for i, job in enumerate(batch)
    ]
    before = endpoint.meter.snapshot("harness")
    assert table.record_jobs(outcomes) == [None] * 4
    requests, units = spent(endpoint, before)
    assert requests == {"TransactWriteItems": 1}
    assert units == 2 * (4 + 1)  # four job records and one counters item, two units each (one at a time: 2 × 8)
    for i, job in enumerate(batch):
        record = _record(table, job)
        assert record["status"]["S"] == "COMPLETED" and record["output_key"]["S"] == f"k{i}"
        assert "claimed_by" not in record and record["last_attempt"]["N"] == ("2" if i == 3 else "1")
        assert record["gsi1pk"]["S"] == f"JOBS#{SPEC.run_id}#COMPLETED"
    progress = counters(table, SPEC.run_id)
    assert progress["nC"] == 4 and progress["nF"] == 0  # the retried job moved from FAILED to COMPLETED once
    assert progress["tF"] == pytest.approx(10.25 + 20.5 + 30.75 + 41.0, abs=1e-9)  # all FIRST jobs here
    buckets = Counter(time_bucket(10.25 * (i + 1)) for i in range(4))
    assert {b: progress[f"hF{b}"] for b in buckets} == {b: float(n) for b, n in buckets.items()}


def test_a_job_completed_elsewhere_meanwhile_stands_and_the_others_are_written_one_at_a_time(endpoint, table):
    batch = jobs(3)
    claims = [table.claim_job(job, f"m{i}", lease_ms=0) for i, job in enumerate(batch)]
    # m1's lease ran out; another claimant took job 1 over and completed it first
    assert table.claim_job(batch[1], "other", lease_ms=60_000).granted
    assert table.record_job(completed(batch[1], key="theirs"), 1, "PROCESSING") is None
    outcomes = [JobOutcome(completed(job, key="mine"), 1, claims[i].status) for i, job in enumerate(batch)]
    before = endpoint.meter.snapshot("harness")
    answers = table.record_jobs(outcomes)
    assert answers[0] is None and answers[2] is None
    assert answers[1] is not None and answers[1]["output_key"] == "theirs" and answers[1]["status"] == "COMPLETED"
    requests, _ = spent(endpoint, before)
    # the batch's transaction (cancelled: nothing written), then each alone (job 1's refused, then its
    # status and its record read)
    assert requests == {"TransactWriteItems": 1 + 3, "GetItem": 2}
    assert [_record(table, job)["output_key"]["S"] for job in batch] == ["mine", "theirs", "mine"]
    assert _progress(table, SPEC.run_id) == {"nC": 3}


def test_outcomes_that_cannot_go_together_are_written_alone(endpoint, table):
    spec = RunSpec("alone", "default", 200, 11)
    batch = jobs(3, spec)
    for i, job in enumerate(batch):
        table.claim_job(job, f"m{i}", lease_ms=60_000)
    failure = completed(batch[2]).model_copy(update={"status": JobStatus.FAILED, "error_message": "boom"})
    assert table.record_job(failure, 1, "PROCESSING") is None
    again = table.claim_job(batch[2], "m2-again", lease_ms=60_000, attempt=2)
    assert again.granted and again.status == "FAILED"
    outcomes = [
        JobOutcome(completed(batch[0]), 1, None),  # its previous status unknown: read, then written
        JobOutcome(completed(batch[1], key="once"), 1, "PROCESSING"),
        JobOutcome(completed(batch[1], key="twice"), 1, "PROCESSING"),  # the same job again: after, refused
        JobOutcome(failure, 2, again.status),  # a failure after a failure: no counter moves, a plain update
    ]
    before = endpoint.meter.snapshot("harness")
    answers = table.record_jobs(outcomes)
    assert answers[0] is None and answers[1] is None and answers[3] is None
    assert answers[2] is not None and answers[2]["output_key"] == "once"
    requests, _ = spent(endpoint, before)
    # alone: the unknown one (read + transaction), job 1 (the only one left to go together: as record_job
    # does it), its duplicate (refused, then its status and record read), the failure again (an UpdateItem)
    assert requests == {"TransactWriteItems": 3, "GetItem": 3, "UpdateItem": 1}
    assert _progress(table, spec.run_id) == {"nC": 2, "nF": 1}
    assert _record(table, batch[2])["last_attempt"]["N"] == "2"


def test_a_batchs_times_are_summed_to_the_millisecond_thousandth_and_tasks_counted_by_their_hour(endpoint, table):
    from jobgraph.core.ids import new_task_id
    from jobgraph.core.models import CompletedJob, ExecType

    spec = RunSpec("times", "default", 200, 11)
    batch = jobs(2, spec)
    for i, job in enumerate(batch):
        table.claim_job(job, f"m{i}", lease_ms=60_000)
    outcomes = [JobOutcome(completed(job, ms=ms), 1, "PROCESSING") for job, ms in zip(batch, (1.1, 2.2), strict=True)]
    assert table.record_jobs(outcomes) == [None, None]
    assert counters(table, spec.run_id)["tF"] == 3.3  # 1.1 + 2.2 is 3.3000000000000003 as floats
    # tasks (POST /tasks) belong to no run: each batch's are counted in the hour each ended
    tasks = [new_task_id() for _ in range(3)]
    ended = ["2026-12-03T04:10:00.000Z", "2026-12-03T04:59:59.999Z", "2026-12-03T05:00:00.000Z"]
    done = [
        CompletedJob(job_id=task, status=JobStatus.COMPLETED, processing_time_ms=5.0, test_run_id="t", run_id=task,
                     correlation_id=task, exec_type=ExecType.SYNTHETIC, completed_at=at)
        for task, at in zip(tasks, ended, strict=True)
    ]  # fmt: skip
    assert table.record_jobs([JobOutcome(task, 1, None) for task in done]) == [None] * 3  # unknown: alone
    assert table.record_jobs([]) == []
    more = [task.model_copy(update={"job_id": new_task_id()}) for task in done]
    more = [task.model_copy(update={"run_id": task.job_id, "correlation_id": task.job_id}) for task in more]
    for task in more:
        assert table.claim_job(task_job(task), "m", lease_ms=60_000).granted
    assert table.record_jobs([JobOutcome(task, 1, "PROCESSING") for task in more]) == [None] * 3
    hours = table.task_progress(["2026-12-03T04"]), table.task_progress(["2026-12-03T05"])
    assert (hours[0].completed, hours[1].completed) == (4, 2)


def task_job(task):
    """The incoming job of a task's completion (what the Processor claimed)."""
    from jobgraph.core.models import IncomingJob

    return IncomingJob(job_id=task.job_id, run_id=task.run_id, test_run_id="t", correlation_id=task.job_id,
                       exec_type=task.exec_type, scenarios=1, seed=0, submitted_at="2026-12-03T04:00:00.000Z",
                       work_duration_ms=1, data_size_kb=1)  # fmt: skip


def test_more_outcomes_than_a_transaction_holds_go_in_several(endpoint, table):
    spec = RunSpec("many", "default", 200, 11)
    batch = jobs(MAX_OUTCOMES_TOGETHER + 5, spec)
    for i, job in enumerate(batch):
        table.claim_job(job, f"m{i}", lease_ms=60_000)
    before = endpoint.meter.snapshot("harness")
    outcomes = [JobOutcome(completed(job), 1, "PROCESSING") for job in batch]
    assert table.record_jobs(outcomes) == [None] * len(batch)
    requests, units = spent(endpoint, before)
    assert requests == {"TransactWriteItems": 2}
    assert units == 2 * (len(batch) + 2)
    assert _progress(table, spec.run_id) == {"nC": len(batch)}


def test_a_single_outcome_is_recorded_as_record_job_does(endpoint, table):
    job = jobs(1, RunSpec("single", "default", 200, 11))[0]
    claim = table.claim_job(job, "m", lease_ms=60_000)
    before = endpoint.meter.snapshot("harness")
    assert table.record_jobs([JobOutcome(completed(job), 1, claim.status)]) == [None]
    assert table.record_jobs([]) == []
    assert spent(endpoint, before) == ({"TransactWriteItems": 1}, 4)


def test_a_batch_meeting_another_transaction_on_the_counters_is_written_on_a_later_try(monkeypatch):
    """TransactionConflict (the run's counters item, written by every batch of the run): tried again after
    a short wait; any other cancellation or error is not the batch's to hide."""
    table, client = stubbed_table()
    batch = jobs(2)
    outcomes = [JobOutcome(completed(job), 1, "PROCESSING") for job in batch]
    waits: list[float] = []
    monkeypatch.setattr("jobgraph.adapters.dynamodb.jobs.time.sleep", waits.append)
    monkeypatch.setattr("jobgraph.adapters.dynamodb.jobs.random.uniform", lambda low, high: (low + high) / 2)
    with Stubber(client) as stub:
        add_cancellation(stub)
        add_cancellation(stub)
        stub.add_response("transact_write_items", {})
        assert table.record_jobs(outcomes) == [None, None]
        stub.assert_no_pending_responses()
    assert waits == pytest.approx([0.03, 0.06])
    with Stubber(client) as stub:
        add_cancellation(stub, reason="ValidationError")
        with pytest.raises(Exception, match="TransactionCanceledException"):
            table.record_jobs(outcomes)
        stub.add_client_error("transact_write_items", service_error_code="ProvisionedThroughputExceededException")
        with pytest.raises(Exception, match="ProvisionedThroughputExceededException"):
            table.record_jobs(outcomes)


def test_a_batch_that_keeps_meeting_other_transactions_is_written_one_job_at_a_time(monkeypatch):
    from jobgraph.adapters.dynamodb.jobs import MAX_OUTCOME_TRIES

    table, client = stubbed_table()
    batch = jobs(2)
    outcomes = [JobOutcome(completed(job), 1, "PROCESSING") for job in batch]
    monkeypatch.setattr("jobgraph.adapters.dynamodb.jobs.time.sleep", lambda seconds: None)
    with Stubber(client) as stub:
        for _ in range(MAX_OUTCOME_TRIES):
            add_cancellation(stub)
        stub.add_response("transact_write_items", {})  # job 0 alone
        stub.add_response("transact_write_items", {})  # job 1 alone
        assert table.record_jobs(outcomes) == [None, None]
        stub.assert_no_pending_responses()


@pytest.mark.parametrize("seed", [1, 2])
def test_counters_match_the_job_records_when_batches_race_claimants_that_take_over(endpoint, table, seed):
    """Batches of successes recorded together (as the Processor does), racing single failures and
    completions of claimants that took the same jobs over (leases of 0 ms): the counters still agree."""
    spec = RunSpec(f"batch-race-{seed}", "t", 10, 1)
    batch_jobs = jobs(24, spec)
    table.create_run(spec.run_id, "t", sequences=24, jobs_total=24, scenarios=1, seed=0)
    rng = random.Random(seed)
    deliveries = [(job, f"m-{job.job_id}-{copy}", status) for job in batch_jobs
                  for copy, status in enumerate([JobStatus.FAILED, JobStatus.COMPLETED, JobStatus.COMPLETED])]  # fmt: skip
    rng.shuffle(deliveries)
    batches = [deliveries[start : start + 6] for start in range(0, len(deliveries), 6)]

    def deliver(batch) -> None:
        successes = []
        for job, message, status in batch:
            claim = table.claim_job(job, message, lease_ms=0)
            if not claim.granted:
                continue
            outcome = completed(job, key=message, ms=rng.uniform(5, 500))
            if status is JobStatus.FAILED:
                table.record_job(
                    outcome.model_copy(update={"status": status, "error_message": "boom"}), 1, claim.status
                )
            else:
                successes.append(JobOutcome(outcome, 1, claim.status))
        table.record_jobs(successes)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(deliver, batches))
    records = table.jobs_of_run(spec.run_id)
    truth = Counter(record["status"] for record in records)
    _run, progress = table.run_with_progress(spec.run_id)
    assert len(records) == len(batch_jobs) and truth["COMPLETED"] >= 1 and "PROCESSING" not in truth
    assert (progress.completed, progress.failed) == (truth["COMPLETED"], truth["FAILED"])
    stage = progress.stages[batch_jobs[0].exec_type]
    assert sum(stage.histogram.values()) == stage.completed
    kept = [float(r["processing_time_ms"]) for r in records if r["status"] == "COMPLETED"]
    assert stage.total_ms == pytest.approx(sum(kept), abs=0.01)
