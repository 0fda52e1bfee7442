"""A run that fails says which jobs failed and why, and keeps it in <out>/<run_id>/run.json (issue 17.2): the
local cloud's job records and queues vanish with it, so the record is written while the stack is still up."""

from __future__ import annotations

import json

import pytest

from jobgraph.adapters.local_disk import RUN_MARKER
from jobgraph.bench import record
from jobgraph.runs.execute import execute
from jobgraph.runs.outcome import FAILED_RUN_SCHEMA, RunFailed
from jobgraph.runs.target import Patience
from tests.run_doubles import SPEC, FakeRun, FakeTarget, FakeWorkload

FAILED_JOB = {
    "job_id": "r1-s3-r1",
    "exec_type": "INTERMEDIATE",
    "status": "FAILED",
    "attempts": 3,
    "error": "MissingStateError: r1-s3-r1: state of route 0 of r1-s3 is not stored",
}


class StuckRun(FakeRun):
    """A run that stalls with one job FAILED; its stack still answers what failed."""

    def __init__(self, log):
        super().__init__(log, polls=[1] * 1000, ends_at=None, stalls=True)

    def failure(self, reason: str) -> dict:
        return {"reason": reason, "jobs": 4, "jobs_completed": 1, "unfinished_total": 1,
                "unfinished_jobs": [FAILED_JOB], "dlq": {"incoming DLQ": 1}}  # fmt: skip


def test_a_failed_run_keeps_its_reason_and_failed_jobs_in_run_json(tmp_path):
    with pytest.raises(RunFailed) as caught:
        execute(FakeWorkload(StuckRun([])), FakeTarget([], tmp_path, Patience(timeout_s=60, stall_s=0)), SPEC)
    (line,) = str(caught.value).splitlines()
    # one line: the failure, the first failed job and why, and where the record is
    assert line.startswith("stuck at 1; 1 job(s) not completed, e.g. r1-s3-r1 (MissingStateError: r1-s3-r1")
    assert line.endswith(f"; details: {tmp_path / 'r1' / 'run.json'}")
    document = json.loads((tmp_path / "r1" / "run.json").read_text())
    assert document["schema"] == FAILED_RUN_SCHEMA and document["status"] == "FAILED"
    assert document["reason"] == "stuck at 1" and document["unfinished_jobs"] == [FAILED_JOB]
    assert document["dlq"] == {"incoming DLQ": 1} and document["stack_name"] == "s"
    # a run folder jobgraph wrote (a rerun may --overwrite it), with no result in it
    assert sorted(p.name for p in (tmp_path / "r1").iterdir()) == [RUN_MARKER, "run.json"]


def test_cost_and_compare_say_the_run_failed(tmp_path):
    with pytest.raises(RunFailed):
        execute(FakeWorkload(StuckRun([])), FakeTarget([], tmp_path, Patience(timeout_s=60, stall_s=0)), SPEC)
    with pytest.raises(record.RunRecordError, match=r"run r1 FAILED, nothing to report: stuck at 1"):
        record.read(tmp_path / "r1")


def test_when_the_record_cannot_be_written_the_failure_itself_is_raised(tmp_path):
    # a workload whose stack cannot describe the failure (FakeRun has no failure()): the original reason
    with pytest.raises(RunFailed, match=r"^stuck at 1$"):
        execute(
            FakeWorkload(FakeRun([], polls=[1] * 1000, ends_at=None, stalls=True)),
            FakeTarget([], tmp_path, Patience(timeout_s=60, stall_s=0)),
            SPEC,
        )
    assert not (tmp_path / "r1").exists()
