"""The perf runner's SYNTHETIC jobs: shape, spread over message groups, the stage's work and output."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from jobgraph.adapters.local_disk import LocalDiskBlobStore
from jobgraph.core.graph import synthetic_jobs
from jobgraph.core.models import ExecType, IncomingJob
from jobgraph.core.results import ResultStore, synthetic_key
from jobgraph.core.run import RunSpec
from jobgraph.core.stages import run_job, synthetic_payload

SPEC = RunSpec("load-1", "default", 1, 0)


def test_jobs_are_deterministic_and_spread_over_the_groups():
    jobs = synthetic_jobs(SPEC, 25, work_duration_ms=5, data_size_kb=2, groups=10)
    again = synthetic_jobs(SPEC, 25, 5, 2, 10)
    assert len({j.job_id for j in jobs}) == 25
    assert [j.model_dump(exclude={"submitted_at"}) for j in jobs] == [
        j.model_dump(exclude={"submitted_at"}) for j in again
    ]
    assert len({j.correlation_id for j in jobs}) == 10
    assert all(j.exec_type is ExecType.SYNTHETIC for j in jobs)
    # the message body round-trips through the queue contract
    assert IncomingJob.model_validate_json(jobs[0].model_dump_json(exclude_none=True)) == jobs[0]


def test_a_synthetic_job_without_its_work_or_size_is_rejected():
    body = synthetic_jobs(SPEC, 1, 5, 2, 1)[0].model_dump(exclude_none=True)
    del body["data_size_kb"]
    with pytest.raises(ValidationError, match="SYNTHETIC job lacks data_size_kb"):
        IncomingJob.model_validate(body)


def test_the_stage_works_for_the_duration_and_writes_the_size(tmp_path):
    store = ResultStore(LocalDiskBlobStore(tmp_path))
    (job,) = synthetic_jobs(SPEC, 1, work_duration_ms=50, data_size_kb=3, groups=1)
    started = time.perf_counter()
    key = run_job(job, store).key
    assert time.perf_counter() - started >= 0.05
    assert key == synthetic_key(SPEC.run_id, job.job_id)
    written = (tmp_path / key).read_bytes()
    assert len(written) == 3 * 1024 and written == synthetic_payload(job.job_id, 3)
