"""The jobs table's ports, each suite run against the in-memory fake and the DynamoDB adapter (on moto).

The table on moto is created from template.yaml's declaration (tests/integration/conftest.py), so the
adapter's queries meet the real keys and indexes; the fake has to give the same answers to pass.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.adapters.memory import MemoryJobsTable, MemoryTable
from jobgraph.core.generator import generate_sequences
from jobgraph.core.graph import route_job
from jobgraph.core.models import CompletedJob, IncomingJob, JobStatus
from jobgraph.core.ports import JobsTablePort
from jobgraph.core.run import RunSpec
from tests.integration.conftest import create_table

SPEC = RunSpec("contract", "default", 100, 7)


@pytest.fixture(params=["memory", "dynamodb"])
def table(request: pytest.FixtureRequest) -> Iterator[JobsTablePort]:
    """One jobs table behind every port (a job's outcome moves its run's counters, as on the real table)."""
    if request.param == "memory":
        yield MemoryJobsTable(MemoryTable("jobs", ttl_days=30))
        return
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_table(client, "jobs")
        yield JobsTable("jobs", ttl_days=30, client=client)


def a_job(route_index: int = 0, run_id: str = SPEC.run_id) -> IncomingJob:
    sequence = next(s for s in generate_sequences(3, seed=5) if len(s.routes) > route_index)
    job = route_job(SPEC, sequence, route_index)
    return job.model_copy(update={"run_id": run_id}) if run_id != SPEC.run_id else job


def outcome(job: IncomingJob, status: JobStatus = JobStatus.COMPLETED, ms: float = 1.5, key: str = "k") -> CompletedJob:
    return CompletedJob(
        job_id=job.job_id,
        status=status,
        output_key=key if status is JobStatus.COMPLETED else None,
        error_message="boom" if status is JobStatus.FAILED else None,
        processing_time_ms=ms,
        test_run_id=job.test_run_id,
        run_id=job.run_id,
        correlation_id=job.correlation_id,
        sequence_id=job.sequence_id,
        route_index=job.route_index,
        exec_type=job.exec_type,
    )
