"""A run that fails says which jobs failed and why, and keeps it in <out>/<run_id>/run.json (issue 17.2): the
local cloud's job records and queues vanish with it, so the record is written while the stack is still up."""

from __future__ import annotations

import json

import pytest

from jobgraph.adapters.local_disk import RUN_MARKER
from jobgraph.bench import record
from jobgraph.core.errors import ONE_LINE_LIMIT
from jobgraph.runs.execute import execute
from jobgraph.runs.outcome import FAILED_RUN_SCHEMA, RunFailed
from jobgraph.runs.target import Output, Patience
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


def test_when_the_record_cannot_be_written_the_failure_is_raised_and_why_is_logged(tmp_path):
    # a workload whose stack cannot describe the failure (FakeRun has no failure()): the original reason, and
    # the error that kept it from the record, in the error log under <out>/.logs (a run makes that folder)
    (tmp_path / ".logs").mkdir()
    with pytest.raises(RunFailed) as caught:
        execute(
            FakeWorkload(FakeRun([], polls=[1] * 1000, ends_at=None, stalls=True)),
            FakeTarget([], tmp_path, Patience(timeout_s=60, stall_s=0)),
            SPEC,
        )
    (line,) = str(caught.value).splitlines()
    (log,) = (tmp_path / ".logs").glob("jobgraph-error-*.log")
    assert line == (
        "stuck at 1; writing its failure record failed (AttributeError: 'FakeRun' object has no attribute "
        f"'failure'); details in {log}"
    )
    text = log.read_text()
    assert "run r1 failed: stuck at 1" in text and "Traceback (most recent call last)" in text
    assert "AttributeError: 'FakeRun' object has no attribute 'failure'" in text
    assert not (tmp_path / "r1").exists()


def test_a_record_write_that_fails_is_named_with_its_traceback_in_the_log(tmp_path, monkeypatch):
    from jobgraph.runs import execute as execute_module

    def refusing_staging(out_dir, run_id, *, overwrite):
        raise OSError(28, "No space left on device", str(out_dir / f".{run_id}.partial"))

    monkeypatch.setattr(execute_module, "staged_run", refusing_staging)
    (tmp_path / ".logs").mkdir()
    with pytest.raises(RunFailed) as caught:
        execute(FakeWorkload(StuckRun([])), FakeTarget([], tmp_path, Patience(timeout_s=60, stall_s=0)), SPEC)
    (line,) = str(caught.value).splitlines()
    (log,) = (tmp_path / ".logs").glob("jobgraph-error-*.log")
    assert line.startswith("stuck at 1; writing its failure record failed (OSError: [Errno 28] No space left")
    assert line.endswith(f"); details in {log}")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in refusing_staging" in text
    assert "OSError: [Errno 28] No space left on device" in text
    assert not (tmp_path / "r1").exists()


def test_a_long_reason_is_cut_to_one_line_that_still_names_the_record(tmp_path):
    class LongStuckRun(StuckRun):
        def stalled(self, current, stall_s):
            return "x" * 1000 + "\nsecond line"

    with pytest.raises(RunFailed) as caught:
        execute(FakeWorkload(LongStuckRun([])), FakeTarget([], tmp_path, Patience(timeout_s=60, stall_s=0)), SPEC)
    (line,) = str(caught.value).splitlines()
    head, _, tail = line.partition("…")
    assert set(head) == {"x"} and tail.startswith("; 1 job(s) not completed, e.g. r1-s3-r1")
    assert line.endswith(f"; details: {tmp_path / 'r1' / 'run.json'}")
    assert len(head) + len("…") == max(60, ONE_LINE_LIMIT - len(tail))  # the reason gives way to the tail
    assert json.loads((tmp_path / "r1" / "run.json").read_text())["reason"] == "x" * 1000 + "\nsecond line"


def completed_run(folder) -> dict[str, bytes]:
    """A run folder as a completed run leaves it (marker, record, results); its files' bytes by name."""
    files = {
        RUN_MARKER: b'{"written_by": "jobgraph", "run_id": "r1"}\n',
        "run.json": json.dumps({"schema": record.SCHEMA, "run_id": "r1", "status": "COMPLETED"}).encode(),
        "merged_percentiles.json": b'{"final_arrival_delay_min": {"p50": 1.0}}',
    }
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def failing_overwrite_run(tmp_path):
    target = FakeTarget([], tmp_path, Patience(timeout_s=60, stall_s=0))
    target.output = Output(tmp_path, overwrite=True)  # as `make run-aws ENV=local` twice: RUN_OPTIONS has it
    with pytest.raises(RunFailed) as caught:
        execute(FakeWorkload(StuckRun([])), target, SPEC)
    (line,) = str(caught.value).splitlines()
    return line


def test_a_failed_overwrite_run_keeps_the_completed_run_and_records_its_failure_beside_it(tmp_path):
    kept = completed_run(tmp_path / "r1")
    line = failing_overwrite_run(tmp_path)
    assert {p.name: p.read_bytes() for p in (tmp_path / "r1").iterdir()} == kept  # byte for byte
    assert line.endswith(
        f"; details: {tmp_path / 'r1.failed' / 'run.json'} (the earlier run in {tmp_path / 'r1'} is kept)"
    )
    document = json.loads((tmp_path / "r1.failed" / "run.json").read_text())
    assert document["schema"] == FAILED_RUN_SCHEMA and document["run_id"] == "r1"
    assert document["unfinished_jobs"] == [FAILED_JOB]
    # failing again replaces that failure record, never the completed run
    assert failing_overwrite_run(tmp_path).endswith(f"{tmp_path / 'r1.failed' / 'run.json'} (the earlier run in {tmp_path / 'r1'} is kept)")  # fmt: skip
    assert {p.name: p.read_bytes() for p in (tmp_path / "r1").iterdir()} == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1", "r1.failed"]  # no staging left behind


def test_an_earlier_failure_record_is_replaced_in_place(tmp_path):
    failing_overwrite_run(tmp_path)
    first = json.loads((tmp_path / "r1" / "run.json").read_text())["failed_at"]
    line = failing_overwrite_run(tmp_path)
    assert line.endswith(f"; details: {tmp_path / 'r1' / 'run.json'}")
    assert json.loads((tmp_path / "r1" / "run.json").read_text())["schema"] == FAILED_RUN_SCHEMA
    assert first and sorted(p.name for p in tmp_path.iterdir()) == ["r1"]


def test_when_both_places_hold_completed_runs_nothing_is_replaced_and_the_line_says_so(tmp_path):
    kept = completed_run(tmp_path / "r1")
    also_kept = completed_run(tmp_path / "r1.failed")  # a run whose id is "r1.failed"
    (tmp_path / ".logs").mkdir()
    line = failing_overwrite_run(tmp_path)
    assert line.startswith("stuck at 1; writing its failure record failed (JobGraphError: runs that did not fail")
    (log,) = (tmp_path / ".logs").glob("jobgraph-error-*.log")
    assert f"runs that did not fail in both {tmp_path / 'r1'} and {tmp_path / 'r1.failed'}" in log.read_text()
    assert {p.name: p.read_bytes() for p in (tmp_path / "r1").iterdir()} == kept
    assert {p.name: p.read_bytes() for p in (tmp_path / "r1.failed").iterdir()} == also_kept


def test_a_run_that_succeeds_after_a_kept_failure_removes_that_stale_failure_record(tmp_path):
    completed_run(tmp_path / "r1")
    failing_overwrite_run(tmp_path)
    assert (tmp_path / "r1.failed" / "run.json").is_file()
    target = FakeTarget([], tmp_path, Patience(timeout_s=60, stall_s=0))
    target.output = Output(tmp_path, overwrite=True)
    execute(FakeWorkload(FakeRun([], polls=[4], ends_at=4)), target, SPEC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1"]


def test_a_success_keeps_a_folder_named_like_a_failure_record_that_holds_a_completed_run(tmp_path):
    also_kept = completed_run(tmp_path / "r1.failed")  # a run whose id is "r1.failed"
    target = FakeTarget([], tmp_path, Patience(timeout_s=60, stall_s=0))
    target.output = Output(tmp_path, overwrite=True)
    execute(FakeWorkload(FakeRun([], polls=[4], ends_at=4)), target, SPEC)
    assert {p.name: p.read_bytes() for p in (tmp_path / "r1.failed").iterdir()} == also_kept
