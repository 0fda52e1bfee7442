"""core/progress.py (a run's counters) and the job id → run id reading of core/ids.py: pure functions."""

from __future__ import annotations

import math
import random

import pytest

from jobgraph.core.ids import (
    aggregation_job_id,
    is_task_id,
    merge_job_id,
    new_task_id,
    route_job_id,
    route_of_job,
    run_id_of_job,
)
from jobgraph.core.models import ExecType
from jobgraph.core.progress import Progress, bucket_value, counter_deltas, estimate_seconds, time_bucket


@pytest.mark.parametrize("ms", [1.0, 1.19, 12.0, 400.0, 1500.0, 59_999.0, 900_000.0])
def test_a_bucket_stands_for_its_values_within_nine_percent(ms):
    assert abs(bucket_value(time_bucket(ms)) / ms - 1) <= 2 ** (1 / 8) - 1 + 1e-9


def test_buckets_are_quarter_octaves():
    assert time_bucket(0.2) == 0 and time_bucket(1.0) == 1
    assert time_bucket(2.0) == time_bucket(1.0) + 4 and time_bucket(1.99) == time_bucket(1.0) + 3


def test_only_terminal_changes_count_and_a_job_moves_between_statuses():
    assert counter_deltas(ExecType.FIRST, None, "PROCESSING", 5) == {}
    assert counter_deltas(ExecType.FIRST, "FAILED", "FAILED", 5) == {}
    failed = counter_deltas(ExecType.LAST, "PROCESSING", "FAILED", 5)
    assert failed == {"nF": 1, "fL": 1}
    recovered = counter_deltas(ExecType.LAST, "FAILED", "COMPLETED", 12.0)
    assert recovered == {"nF": -1, "fL": -1, "nC": 1, "cL": 1, f"hL{time_bucket(12.0)}": 1, "tL": 12.0}


def test_counters_decode_and_percentiles_follow_the_histogram():
    rng = random.Random(3)
    samples = [rng.lognormvariate(4, 0.6) for _ in range(999)]
    counters: dict[str, float] = {}
    for ms in samples:
        for name, delta in counter_deltas(ExecType.AGGREGATION, None, "COMPLETED", ms).items():
            counters[name] = counters.get(name, 0) + delta
    counters.update({"pk": "RUN#x", "sk": "PROGRESS", "expires_at": 1})  # item attributes are not counters
    progress = Progress.from_counters(counters)
    stage = progress.stages[ExecType.AGGREGATION]
    assert progress.completed == stage.completed == 999 and progress.failed == 0
    ordered = sorted(samples)
    for q in (0.5, 0.9, 0.99):
        exact = ordered[math.ceil(q * len(ordered)) - 1]  # nearest rank
        assert stage.percentile(q) == pytest.approx(exact, rel=0.1)
    assert stage.timings()["mean"] == pytest.approx(sum(samples) / 999, abs=0.01)
    assert Progress().p50_ms() is None and Progress.from_counters({}).stages == {}
    doubled = progress.merged(progress)
    assert doubled.completed == 1998 and doubled.p50_ms() == progress.p50_ms()


def test_estimates_are_rounds_of_the_median():
    assert estimate_seconds(7, 400.0, 3) == math.ceil(3 * 0.4)
    assert estimate_seconds(1, 1500.0, 10, ahead=25) == math.ceil(3 * 1.5)
    assert estimate_seconds(0, 400.0, 3) == 0 and estimate_seconds(5, None, 3) is None
    assert estimate_seconds(1, 1.0, 0) == 1  # never 0 s for work left, never a division by zero


@pytest.mark.parametrize("run_id", ["r1", "a-s1-r2", "x-merge", "b-s3", "run.2026-12-02_x", "s0-r0"])
def test_every_job_id_names_its_run(run_id):
    for job_id in (route_job_id(run_id, 0, 0), route_job_id(run_id, 12, 7), aggregation_job_id(run_id, 3),
                   merge_job_id(run_id), f"{run_id}-syn-{42:07d}"):  # fmt: skip
        assert run_id_of_job(job_id) == run_id, job_id


@pytest.mark.parametrize("run_id", ["r1", "a-s1-r2", "s0-r0"])
def test_a_route_job_id_reads_back_its_sequence_and_route(run_id):
    assert route_of_job(route_job_id(run_id, 12, 7)) == (12, 7)
    for other in (aggregation_job_id(run_id, 3), merge_job_id(run_id), f"{run_id}-syn-{1:07d}"):
        assert route_of_job(other) is None, other


def test_a_run_id_alone_is_no_job_id_unless_it_ends_like_one():
    assert [run_id_of_job(r) for r in ("r1", "x-merge", "a-s1-r2", "s0-r0", "b-s3")] == [None, "x", "a", None, None]


def test_task_ids_are_their_own_namespace():
    task = new_task_id()
    assert is_task_id(task) and len(task) == 37 and not is_task_id("tasks-run")
    assert run_id_of_job("no-such-ending") is None
