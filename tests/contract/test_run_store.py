"""RunStore: the run record, the countdown to MERGE, the run's end, listings and counters."""

from __future__ import annotations

import time

import pytest

from jobgraph.core.errors import RunExistsError, RunNotFoundError
from jobgraph.core.models import ExecType, RunStatus
from jobgraph.core.ports import RunStore
from tests.contract.conftest import SPEC, a_job, outcome


def test_a_run_is_created_once_and_read_back(table: RunStore) -> None:
    table.create_run("r1", "t1", sequences=3, jobs_total=12, scenarios=100, seed=7)
    run = table.get_run("r1")
    assert run["status"] == "RUNNING" and run["test_run_id"] == "t1"
    assert (run["sequences_total"], run["sequences_remaining"], run["jobs_total"], run["seed"]) == (3, 3, 12, 7)
    assert float(run["started_epoch_ms"]) > 0 and run["created_at"].endswith("Z")
    with pytest.raises(RunExistsError, match="r1"):
        table.create_run("r1", "t1", 1, 1, 1, 1)
    with pytest.raises(RunNotFoundError, match="nope"):
        table.get_run("nope")


def test_each_sequence_counts_once_and_one_claimant_gets_the_merge(table: RunStore) -> None:
    table.create_run("r2", "t", sequences=2, jobs_total=6, scenarios=10, seed=1)
    assert table.claim_merge("r2", "agg-0") is False  # not before every sequence is counted
    assert table.count_down_sequence("r2", 0) is True
    assert table.count_down_sequence("r2", 0) is False  # a duplicate
    assert table.count_down_sequence("r2", 1) is True
    assert table.count_down_sequence("r2", 2) is False  # nothing left to count
    assert table.get_run("r2")["sequences_remaining"] == 0
    assert table.claim_merge("r2", "agg-1") is True
    assert table.claim_merge("r2", "agg-1") is True  # the same claimant again (its redelivery)
    assert table.claim_merge("r2", "agg-0") is False
    assert table.get_run("r2")["merge_claimed_by"] == "agg-1"
    with pytest.raises(RunNotFoundError):
        table.count_down_sequence("unknown", 0)
    assert table.claim_merge("unknown", "agg-0") is False


def test_a_run_ends_once_completed_or_failed(table: RunStore) -> None:
    table.create_run("done", "t", 1, 1, 1, 1)
    table.create_run("failed", "t", 1, 1, 1, 1)
    assert table.complete_run("done", "merged.json") is True
    assert table.complete_run("done", "other.json") is False
    assert table.fail_run("done", "late") is False
    run = table.get_run("done")
    assert (run["status"], run["merged_key"]) == ("COMPLETED", "merged.json") and run["duration_s"] >= 0
    assert table.fail_run("failed", "x" * 3000) is True
    run = table.get_run("failed")
    assert run["status"] == "FAILED" and len(run["error"]) == 2000 and run["completed_at"]
    assert table.complete_run("failed", "m") is False
    assert table.fail_run("task-" + "0" * 32, "a task has no run") is False
    with pytest.raises(RunNotFoundError):
        table.complete_run("unknown", "m")


def test_a_run_end_is_announced_once(table: RunStore) -> None:
    table.create_run("a", "t", 1, 1, 1, 1)
    assert table.mark_run_announced("a", "event-1") is True
    assert table.mark_run_announced("a", "event-2") is False
    assert table.get_run("a")["announced_event_id"] == "event-1"
    assert table.mark_run_announced("unknown", "event-3") is False


def _all_pages(table: RunStore, index: str, value: str, **bounds: str) -> list[str]:
    ids: list[str] = []
    items, key = table.run_page(index, value, 2, None, **bounds)
    ids += [item["run_id"] for item in items]
    while key is not None:
        items, key = table.run_page(index, value, 2, key, **bounds)
        ids += [item["run_id"] for item in items]
    return ids


def test_runs_are_listed_newest_first_by_status_and_by_test_run_in_pages(table: RunStore) -> None:
    for n in range(5):
        table.create_run(f"run-{n}", "tr" if n < 4 else "other", 1, 1, 1, 1)
        time.sleep(0.003)  # distinct creation times (milliseconds)
    table.complete_run("run-1", "m")
    assert _all_pages(table, "test_run", "tr") == ["run-3", "run-2", "run-1", "run-0"]
    assert _all_pages(table, "status", "RUNNING") == ["run-4", "run-3", "run-2", "run-0"]
    assert _all_pages(table, "status", "COMPLETED") == ["run-1"]
    created = {f"run-{n}": table.get_run(f"run-{n}")["created_at"] for n in range(5)}
    between = _all_pages(table, "test_run", "tr", since=created["run-1"], until=created["run-2"])
    assert between == ["run-2", "run-1"]
    assert _all_pages(table, "test_run", "tr", since=created["run-3"]) == ["run-3"]
    assert [run["run_id"] for run in table.run_page("status", "FAILED", 10)[0]] == []


def test_a_runs_counters_follow_its_jobs_outcomes(table) -> None:  # RunStore + JobStore: one table
    table.create_run(SPEC.run_id, "t", 1, 3, 1, 1)
    first, second = a_job(0), a_job(1)
    table.record_job(outcome(first, ms=10.0))
    table.record_job(outcome(second, status=outcome(second).status.FAILED))
    run, progress = table.run_with_progress(SPEC.run_id)
    assert run["run_id"] == SPEC.run_id
    assert (progress.completed, progress.failed) == (1, 1)
    assert progress.stages[ExecType(first.exec_type)].completed == 1
    assert table.count_jobs(SPEC.run_id) == 1 and table.count_jobs(SPEC.run_id, "FAILED") == 1
    with pytest.raises(ValueError, match="PROCESSING"):
        table.count_jobs(SPEC.run_id, "PROCESSING")
    with pytest.raises(RunNotFoundError):
        table.run_with_progress("unknown")
    assert table.count_jobs("unknown") == 0
    assert [run["run_id"] for run in table.runs_by_status(RunStatus.RUNNING)] == [SPEC.run_id]
