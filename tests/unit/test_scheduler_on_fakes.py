"""The Scheduler's and the run end's logic on the in-memory jobs table: the next route, the countdown, exactly one
MERGE under duplicate AGGREGATION completions, the run's completion and failure, each announced once.
No moto: the queue and the bus are recording doubles, the table the fake that tests/contract/ holds to DynamoDB."""

from __future__ import annotations

import pytest

from jobgraph.adapters.local_disk import LocalDiskBlobStore
from jobgraph.adapters.memory import MemoryJobsTable
from jobgraph.core.errors import InvalidJobError
from jobgraph.core.generator import generate_sequences
from jobgraph.core.graph import aggregation_job, merge_job, route_job
from jobgraph.core.models import CompletedJob, ExecType, IncomingJob, JobStatus
from jobgraph.core.results import ResultStore
from jobgraph.core.run import RunSpec
from jobgraph.services.scheduler import SchedulerDeps, schedule
from tests.doubles import Bus, Queue, report_on

SPEC = RunSpec("sched", "default", 20, 4)


def deps_on_fakes(tmp_path, max_attempts: int = 0) -> SchedulerDeps:
    results = ResultStore(LocalDiskBlobStore(tmp_path))
    context = {"scenario": 1, "stack": "s", "bucket": "b", "prefix": ""}
    return SchedulerDeps(
        results,
        MemoryJobsTable(),
        Queue(),
        Bus(),
        context,
        job_max_attempts=max_attempts,  # type: ignore[arg-type]
    )


def done(job: IncomingJob, status: JobStatus = JobStatus.COMPLETED) -> CompletedJob:
    return report_on(
        job,
        status,
        output_key="out" if status is JobStatus.COMPLETED else None,
        error_message="boom" if status is JobStatus.FAILED else None,
    )


def test_a_route_completion_sends_the_next_route(tmp_path) -> None:
    deps = deps_on_fakes(tmp_path)
    sequence = next(s for s in generate_sequences(3, seed=2) if len(s.routes) >= 3)
    deps.results.put_sequences(SPEC.run_id, [sequence])
    sent: list[IncomingJob] = []
    assert schedule(done(route_job(SPEC, sequence, 0)), deps, sent.append).startswith("sent INTERMEDIATE")
    assert [(j.exec_type, j.route_index) for j in sent] == [(ExecType.INTERMEDIATE, 1)]


def test_duplicate_aggregations_count_each_sequence_once_and_send_one_merge(tmp_path) -> None:
    deps = deps_on_fakes(tmp_path)
    deps.table.create_run(SPEC.run_id, SPEC.test_run_id, 2, 9, SPEC.scenarios, SPEC.seed)
    first, second = aggregation_job(SPEC, 0, 3), aggregation_job(SPEC, 1, 2)
    sent: list[IncomingJob] = []
    outcomes = [schedule(done(job), deps, sent.append) for job in (first, first, second, second)]
    assert outcomes == ["sequence counted", "duplicate aggregation ignored", f"sent MERGE {SPEC.run_id}-merge",
                        f"sent MERGE {SPEC.run_id}-merge"]  # fmt: skip
    # the claimant's own redelivery re-sends the MERGE (the FIFO queue deduplicates it); nobody else gets it
    assert schedule(done(first), deps, sent.append) == "duplicate aggregation ignored"
    assert [j.exec_type for j in sent] == [ExecType.MERGE, ExecType.MERGE]


def test_the_merge_completes_the_run_once_and_announces_it_once(tmp_path) -> None:
    deps = deps_on_fakes(tmp_path)
    deps.table.create_run(SPEC.run_id, SPEC.test_run_id, 1, 5, SPEC.scenarios, SPEC.seed)
    merge = done(merge_job(SPEC))
    assert schedule(merge, deps) == "run completed"
    assert schedule(merge, deps) == "run already completed"
    run = deps.table.get_run(SPEC.run_id)
    assert run["status"] == "COMPLETED" and run["merged_key"] == "out"
    (event,) = deps.events.published  # type: ignore[union-attr]
    assert event["run_id"] == SPEC.run_id and event["outcome"] == "COMPLETED"
    assert run["announced_event_id"] == "event-1"


def test_a_job_failed_on_its_last_attempt_fails_its_run_once(tmp_path) -> None:
    deps = deps_on_fakes(tmp_path, max_attempts=3)
    deps.table.create_run(SPEC.run_id, SPEC.test_run_id, 1, 5, SPEC.scenarios, SPEC.seed)
    sequence = generate_sequences(1, seed=2)[0]
    job = route_job(SPEC, sequence, 0)
    failed = done(job, JobStatus.FAILED)
    for attempt in (1, 2):
        deps.table.record_job(failed, attempt)
        assert schedule(failed, deps) == "failure noted"
    deps.table.record_job(failed, 3)
    assert schedule(failed, deps) == "run failed"
    assert schedule(failed, deps) == "run already ended"
    run = deps.table.get_run(SPEC.run_id)
    assert run["status"] == "FAILED" and job.job_id in run["error"]
    assert [e["outcome"] for e in deps.events.published] == ["FAILED"]  # type: ignore[union-attr]


def test_a_completion_without_its_sequence_is_refused_by_name_and_counts_nothing(tmp_path) -> None:
    """A route or AGGREGATION completion that names no sequence (not made from a job) fails with an error
    saying so, instead of reading sequences/None.json or counting a sequence "None" down."""
    deps = deps_on_fakes(tmp_path)
    deps.table.create_run(SPEC.run_id, SPEC.test_run_id, 2, 9, SPEC.scenarios, SPEC.seed)
    sequence = next(s for s in generate_sequences(3, seed=2) if len(s.routes) >= 3)
    deps.results.put_sequences(SPEC.run_id, [sequence])
    sent: list[IncomingJob] = []
    for job in (route_job(SPEC, sequence, 0), aggregation_job(SPEC, 0, 3)):
        nameless = done(job).model_copy(update={"sequence_id": None})
        with pytest.raises(InvalidJobError, match=f"{job.job_id}: {job.exec_type} completion lacks sequence_id"):
            schedule(nameless, deps, sent.append)
    assert sent == []
    assert deps.table.get_run(SPEC.run_id)["sequences_remaining"] == 2


class CountingReads:
    """The in-memory table seen from outside, counting the run records read (a DynamoDB GetItem each)."""

    def __init__(self, table: MemoryJobsTable) -> None:
        self.table = table
        self.run_reads = 0

    def __getattr__(self, name: str):
        return getattr(self.table, name)

    def get_run(self, run_id: str) -> dict:
        self.run_reads += 1
        return self.table.get_run(run_id)


def test_the_merge_completion_reads_its_run_once_to_time_and_announce_it(tmp_path) -> None:
    """complete_run, then one read of the record for RunDurationSeconds and the announcement (not a second read
    inside announce_run_end); a redelivery, which completed nothing, reads it once to see it was announced."""
    deps = deps_on_fakes(tmp_path)
    table = CountingReads(MemoryJobsTable())
    deps = SchedulerDeps(deps.results, table, deps.incoming, deps.events, deps.event_context)
    table.create_run(SPEC.run_id, SPEC.test_run_id, 1, 5, SPEC.scenarios, SPEC.seed)
    merge = done(merge_job(SPEC))
    assert schedule(merge, deps) == "run completed"
    assert table.run_reads == 1
    assert [e["outcome"] for e in deps.events.published] == ["COMPLETED"]  # type: ignore[union-attr]
    assert schedule(merge, deps) == "run already completed"
    assert table.run_reads == 2
    assert len(deps.events.published) == 1  # type: ignore[union-attr]


def test_a_merge_reported_without_an_output_completes_the_run_naming_no_result(tmp_path) -> None:
    """The run's record must not point at a merged result that was never written."""
    deps = deps_on_fakes(tmp_path)
    deps.table.create_run(SPEC.run_id, SPEC.test_run_id, 1, 5, SPEC.scenarios, SPEC.seed)
    merge = done(merge_job(SPEC)).model_copy(update={"output_key": None})
    assert schedule(merge, deps) == "run completed"
    run = deps.table.get_run(SPEC.run_id)
    assert run["status"] == "COMPLETED" and not run["merged_key"]
