"""JobStore: a job's claim and its one completion on its record, with its run's counters beside it."""

from __future__ import annotations

from jobgraph.core.models import JobStatus
from jobgraph.core.ports import JobStore
from tests.contract.conftest import SPEC, a_job, outcome

NOW_MS = 1_700_000_000_000


def test_a_claim_holds_others_off_until_its_lease_runs_out(table: JobStore) -> None:
    job = a_job()
    first = table.claim_job(job, "a", lease_ms=1000, now_ms=NOW_MS)
    assert (first.granted, first.status) == (True, "PROCESSING")
    refused = table.claim_job(job, "b", lease_ms=1000, now_ms=NOW_MS + 10)
    assert not refused.granted and refused.status == "PROCESSING"
    assert refused.record["claimed_by"] == "a" and refused.record["lease_until_ms"] == NOW_MS + 1000
    again = table.claim_job(job, "a", lease_ms=1000, attempt=2, now_ms=NOW_MS + 20)  # a's redelivery
    assert again.granted and table.job_attempts(job.run_id, job.job_id) == 2
    taken = table.claim_job(job, "b", lease_ms=1000, attempt=3, now_ms=NOW_MS + 5000)  # a's lease ran out
    assert taken.granted and table.get_job(job.run_id, job.job_id)["claimed_by"] == "b"  # type: ignore[index]


def test_a_job_completes_once_and_later_claims_and_reports_get_that_completion(table) -> None:
    job = a_job()
    assert table.claim_job(job, "a", lease_ms=60_000).granted
    assert table.record_job(outcome(job, key="first"), 1, "PROCESSING") is None
    record = table.get_job(job.run_id, job.job_id)
    assert record["status"] == "COMPLETED" and record["output_key"] == "first" and record["reports"] == 1
    assert "claimed_by" not in record and "lease_until_ms" not in record
    assert record["processing_time_ms"] == 1.5 and record["created_at"] == job.submitted_at
    late = table.claim_job(job, "b", lease_ms=60_000)
    assert not late.granted and late.status == "COMPLETED" and late.record["output_key"] == "first"
    refused = table.record_job(outcome(job, key="second"), 2, "PROCESSING")  # a wrong expectation, too
    assert refused is not None and refused["output_key"] == "first"
    assert table.count_jobs(SPEC.run_id) == 1


def test_a_failure_releases_the_claim_and_the_retry_keeps_the_counted_status(table) -> None:
    job = a_job()
    table.claim_job(job, "a", lease_ms=60_000)
    assert table.record_job(outcome(job, JobStatus.FAILED), 1, "PROCESSING") is None
    assert (table.count_jobs(SPEC.run_id, "FAILED"), table.count_jobs(SPEC.run_id)) == (1, 0)
    retry = table.claim_job(job, "b", lease_ms=60_000, attempt=2)
    assert (retry.granted, retry.status) == (True, "FAILED")  # what the counters count until the outcome
    assert not table.claim_job(job, "c", lease_ms=60_000, attempt=2).granted  # b holds it now
    record = table.get_job(job.run_id, job.job_id)
    assert record["status"] == "FAILED" and record["claimed_by"] == "b" and record["error_message"] == "boom"
    assert table.record_job(outcome(job), 2, retry.status) is None
    assert (table.count_jobs(SPEC.run_id, "FAILED"), table.count_jobs(SPEC.run_id)) == (0, 1)
    assert table.get_job(job.run_id, job.job_id)["reports"] == 2


def test_an_outcome_without_a_claim_or_with_an_unknown_status_is_still_counted_once(table) -> None:
    job = a_job()
    assert table.record_job(outcome(job)) is None  # no claim, status read first
    assert table.record_job(outcome(job)) is not None
    assert table.count_jobs(SPEC.run_id) == 1 and table.job_attempts(job.run_id, job.job_id) == 1


def test_a_runs_jobs_are_listed_and_paged_by_status(table: JobStore) -> None:
    jobs = [a_job(0, "listed"), a_job(1, "listed"), a_job(2, "listed")]
    table.record_job(outcome(jobs[0]))
    table.record_job(outcome(jobs[1], JobStatus.FAILED))
    table.record_job(outcome(jobs[2]))
    assert sorted(r["sk"][4:] for r in table.jobs_of_run("listed")) == sorted(j.job_id for j in jobs)
    seen, key = [], None
    while True:
        items, key = table.job_page("listed", None, 2, key)
        seen += [item["sk"][4:] for item in items]
        if key is None:
            break
    assert sorted(seen) == sorted(j.job_id for j in jobs)
    completed, _ = table.job_page("listed", "COMPLETED", 10)
    assert sorted(r["sk"][4:] for r in completed) == sorted([jobs[0].job_id, jobs[2].job_id])
    failed, _ = table.job_page("listed", "FAILED", 10)
    assert [r["sk"][4:] for r in failed] == [jobs[1].job_id]
    assert table.jobs_of_run("other") == [] and table.get_job("listed", "nope") is None
    assert table.job_attempts("listed", "nope") == 0


def test_a_tasks_job_is_its_task_record_and_counts_in_the_tasks_hour(table) -> None:
    task_id = "task-" + "a" * 32
    job = a_job(0, task_id)
    table.claim_task("client-key", task_id, "fp")
    table.record_task_queued(task_id, "client-key", "api-tasks", {"size_kb": 4})
    assert table.claim_job(job, "a", lease_ms=60_000).granted
    done = outcome(job, ms=20.0)
    assert table.record_job(done, 1, "PROCESSING") is None
    task = table.get_task(task_id)
    assert task["status"] == "COMPLETED" and task["client_key"] == "client-key" and task["size_kb"] == 4
    assert "gsi1pk" not in task  # tasks are not listed per run
    assert table.task_progress([done.completed_at[:13]]).completed == 1
    assert table.task_progress(["2000-01-01T00"]).completed == 0


def test_a_poison_message_is_kept(table: JobStore) -> None:
    table.record_poison("m-1", "not a job", "{}" * 3000)  # kept for inspection; no port reads it back


def test_outcomes_recorded_together_answer_in_order_and_count_once(table) -> None:
    from jobgraph.core.ports import JobOutcome

    jobs = [a_job(0, "together"), a_job(1, "together"), a_job(2, "together")]
    claims = [table.claim_job(job, f"m{i}", lease_ms=60_000) for i, job in enumerate(jobs)]
    assert table.record_job(outcome(jobs[1], key="first"), 1, "PROCESSING") is None  # completed before
    answers = table.record_jobs(
        [JobOutcome(outcome(job, key="batch"), 1, c.status) for job, c in zip(jobs, claims, strict=True)]
    )
    assert answers[0] is None and answers[2] is None
    assert answers[1] is not None and answers[1]["output_key"] == "first"
    assert [table.get_job("together", job.job_id)["output_key"] for job in jobs] == ["batch", "first", "batch"]
    assert table.count_jobs("together") == 3 and table.record_jobs([]) == []
