"""A run's counters (its PROGRESS item) agree with its job records under duplicates, retries and races.

Given reports of the same jobs arriving in any order from several threads against moto's server (each request
atomic, as DynamoDB's, but interleaved between requests), when every report has been recorded, then the run's
counters equal what its job records say: each job's latest status counted once, each completion's time in the
histogram once, COMPLETED never overwritten.
"""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.adapters.memory import MemoryJobsTable, MemoryTable
from jobgraph.core.ids import route_job_id
from jobgraph.core.models import CompletedJob, ExecType, JobStatus
from jobgraph.localcloud.server import LocalEndpoint
from tests.integration.conftest import create_table


@pytest.fixture(scope="module", params=["dynamodb", "memory"])
def table(request):
    """The table on the local cloud's moto server, or the in-memory fake under the same concurrent reports."""
    if request.param == "memory":
        yield MemoryJobsTable(MemoryTable("counters"))
        return
    with LocalEndpoint() as endpoint:
        client = endpoint.client("dynamodb")
        create_table(client, "counters")
        yield JobsTable("counters", client=client)


def report(run_id: str, sequence: int, route: int, status: JobStatus, ms: float) -> CompletedJob:
    return CompletedJob(
        job_id=route_job_id(run_id, sequence, route), status=status, processing_time_ms=ms, test_run_id="t",
        run_id=run_id, correlation_id=f"{run_id}-s{sequence}", sequence_id=sequence, route_index=route,
        exec_type=ExecType.FIRST if route == 0 else ExecType.LAST,
    )  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2])
def test_counters_match_the_job_records_after_concurrent_duplicated_reports(table, seed):
    run_id = f"race-{seed}"
    table.create_run(run_id, "t", sequences=16, jobs_total=32, scenarios=1, seed=0)
    rng = random.Random(seed)
    reports = []
    for sequence in range(16):
        for route in (0, 1):
            ms = rng.uniform(5, 500)
            if (sequence + route) % 4 == 0:  # these never succeed: failures only, retried
                reports += [(report(run_id, sequence, route, JobStatus.FAILED, ms), attempt) for attempt in (1, 2, 3)]
            else:  # a failure, then a completion delivered twice (with different timings)
                reports += [
                    (report(run_id, sequence, route, JobStatus.FAILED, ms), 1),
                    (report(run_id, sequence, route, JobStatus.COMPLETED, ms), 2),
                    (report(run_id, sequence, route, JobStatus.COMPLETED, ms * 2), 2),
                ]
    rng.shuffle(reports)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda pair: table.record_job(*pair), reports))

    records = table.jobs_of_run(run_id)
    truth = Counter(record["status"] for record in records)
    by_stage = Counter((record["exec_type"], record["status"]) for record in records)
    _run, progress = table.run_with_progress(run_id)
    assert len(records) == 32 and truth["COMPLETED"] == 24  # a completion always wins, whatever came after it
    assert (progress.completed, progress.failed) == (truth["COMPLETED"], truth["FAILED"])
    for stage, counts in progress.stages.items():
        assert (counts.completed, counts.failed) == (
            by_stage[(stage.value, "COMPLETED")],
            by_stage[(stage.value, "FAILED")],
        )
        assert sum(counts.histogram.values()) == counts.completed  # each completion's time once
        completed_ms = [
            float(r["processing_time_ms"])
            for r in records
            if r["exec_type"] == stage.value and r["status"] == "COMPLETED"
        ]
        assert counts.total_ms == pytest.approx(sum(completed_ms), abs=0.01)  # the times of the records kept
    assert table.count_jobs(run_id) == 24 and table.count_jobs(run_id, "FAILED") == 8


def test_counters_match_the_job_records_when_claimants_race_fail_and_take_over(table):
    """As the Processor records jobs: claim (claim_job), then the outcome conditioned on the status the claim
    left (record_job's expected_status). Leases of 0 ms let deliveries of one job take each other's claims over,
    so outcomes of claimants that lost their claim race the new claimant's: the counters still agree."""
    from jobgraph.core.generator import generate_sequences
    from jobgraph.core.graph import route_job
    from jobgraph.core.run import RunSpec

    run_id = "claims-race"
    spec = RunSpec(run_id, "t", 10, 1)
    jobs = [route_job(spec, sequence, 0) for sequence in generate_sequences(16, seed=8)]
    table.create_run(run_id, "t", sequences=16, jobs_total=16, scenarios=1, seed=0)
    rng = random.Random(5)
    deliveries = [(job, f"m-{job.job_id}-{copy}", status) for job in jobs
                  for copy, status in enumerate([JobStatus.FAILED, JobStatus.FAILED, JobStatus.COMPLETED,
                                                 JobStatus.COMPLETED, JobStatus.FAILED])]  # fmt: skip
    rng.shuffle(deliveries)

    def deliver(delivery) -> str:
        job, message, status = delivery
        claim = table.claim_job(job, message, lease_ms=0)
        if not claim.granted:
            return "refused"
        outcome = CompletedJob(
            job_id=job.job_id, status=status, processing_time_ms=rng.uniform(5, 500), test_run_id="t",
            run_id=run_id, correlation_id=job.correlation_id, exec_type=job.exec_type,
            error_message="boom" if status is JobStatus.FAILED else None,
        )  # fmt: skip
        return "written" if table.record_job(outcome, 1, claim.status) is None else "refused"

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = Counter(pool.map(deliver, deliveries))
    assert results["written"] >= len(jobs)

    records = table.jobs_of_run(run_id)
    truth = Counter(record["status"] for record in records)
    _run, progress = table.run_with_progress(run_id)
    assert len(records) == len(jobs) and "PROCESSING" not in truth  # every claim ended in an outcome
    assert (progress.completed, progress.failed) == (truth["COMPLETED"], truth["FAILED"])
    stage = progress.stages[jobs[0].exec_type]
    assert sum(stage.histogram.values()) == stage.completed == truth["COMPLETED"]


def test_a_task_is_counted_in_the_hour_it_ended(table):
    """Tasks (POST /tasks) belong to no run: their outcomes are counted per hour of their completion time."""
    from jobgraph.core.ids import new_task_id

    task_id = new_task_id()
    done = CompletedJob(
        job_id=task_id, status=JobStatus.COMPLETED, processing_time_ms=12.5, test_run_id="t", run_id=task_id,
        correlation_id=task_id, exec_type=ExecType.SYNTHETIC, completed_at="2026-12-03T02:59:59.999Z",
    )  # fmt: skip
    assert table.record_job(done) is None
    assert (table.task_progress(["2026-12-03T02"]).completed, table.task_progress(["2026-12-03T03"]).completed) == (
        1,
        0,
    )
