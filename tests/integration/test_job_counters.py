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
from jobgraph.core.models import CompletedJob, ExecType, JobStatus, route_job_id
from jobgraph.localcloud.server import LocalEndpoint
from tests.integration.conftest import create_table


@pytest.fixture(scope="module")
def table():
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
