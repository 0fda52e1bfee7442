"""Once per job (services/idempotency.py) on the in-memory jobs table: no moto, the logic alone.

The DynamoDB adapter is held to the same claim/outcome rules by tests/contract/test_job_store.py, and raced on
the local cloud by tests/integration/test_job_claims.py."""

from __future__ import annotations

import pytest

from jobgraph.adapters.local_disk import LocalDiskBlobStore
from jobgraph.adapters.memory import MemoryJobsTable
from jobgraph.core.errors import JobInProgressError
from jobgraph.core.generator import generate_sequences
from jobgraph.core.graph import route_job
from jobgraph.core.models import CompletedJob, IncomingJob, JobStatus
from jobgraph.core.results import ResultStore
from jobgraph.core.run import RunSpec
from jobgraph.services.idempotency import DEFAULT_LEASE_MS, lease_of, run_claimed

SPEC = RunSpec("once", "default", 50, 3)


@pytest.fixture
def results(tmp_path) -> ResultStore:
    return ResultStore(LocalDiskBlobStore(tmp_path))


def a_job(route_index: int = 0) -> IncomingJob:
    sequence = next(s for s in generate_sequences(2, seed=9) if len(s.routes) > route_index)
    return route_job(SPEC, sequence, route_index)


def test_a_job_runs_once_and_its_duplicate_is_answered_from_the_record(results) -> None:
    table, job, writes = MemoryJobsTable(), a_job(), []
    original_put = results.blobs.put
    results.blobs.put = lambda key, data, content_type="": writes.append(key) or original_put(key, data)  # type: ignore[method-assign]
    first = run_claimed(job, results, table, claimant="m-1", lease_ms=60_000, carry_max_bytes=10**6)
    again = run_claimed(job, results, table, claimant="m-2", lease_ms=60_000, carry_max_bytes=10**6)
    assert first.status is JobStatus.COMPLETED and first.state is not None
    assert (again.output_key, again.processing_time_ms, again.completed_at) == (
        first.output_key, first.processing_time_ms, first.completed_at
    )  # fmt: skip
    assert again.state == first.state  # replayed in memory, not stored
    assert len(writes) == 1  # one run wrote the delays once
    record = table.get_job(job.run_id, job.job_id)
    assert record is not None and record["reports"] == 1 and "claimed_by" not in record
    assert table.count_jobs(job.run_id) == 1


def test_a_job_another_claimant_holds_is_in_progress(results) -> None:
    table, job = MemoryJobsTable(), a_job()
    assert table.claim_job(job, "other", lease_ms=60_000).granted
    with pytest.raises(JobInProgressError, match="other"):
        run_claimed(job, results, table, claimant="me", lease_ms=60_000)
    assert table.get_job(job.run_id, job.job_id)["status"] == "PROCESSING"  # type: ignore[index]


def test_a_failing_stage_records_the_failure_reports_it_and_raises_for_the_retry(results) -> None:
    table, reported = MemoryJobsTable(), []
    job = a_job(1)  # route 1 needs route 0's state, which is nowhere: the stage fails
    with pytest.raises(Exception, match="state"):
        run_claimed(job, results, table, "m-1", 60_000, attempt=1, report=lambda c, a: reported.append((c, a)))
    record = table.get_job(job.run_id, job.job_id)
    assert record is not None and record["status"] == "FAILED" and "state" in record["error_message"]
    assert "claimed_by" not in record  # the failure released the claim: the retry claims at once
    ((failure, attempt),) = reported
    assert isinstance(failure, CompletedJob) and failure.status is JobStatus.FAILED and attempt == 1
    assert table.count_jobs(job.run_id, "FAILED") == 1
    retry = table.claim_job(job, "m-2", lease_ms=60_000, attempt=2)
    assert retry.granted and retry.status == "FAILED"


def test_the_lease_is_the_invocations_remaining_time() -> None:
    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 1234

    assert lease_of(Context()) == 1234 and lease_of(None) == DEFAULT_LEASE_MS
