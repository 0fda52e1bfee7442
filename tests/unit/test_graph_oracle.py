"""The job graph (core/graph) against GUIDE §1 written out: per sequence route 0 … R−1 (FIRST,
INTERMEDIATE…, LAST; a one-route sequence's only route is FIRST and last), then AGGREGATION; per run one
MERGE; a completion unlocks exactly the next job; identifiers are deterministic."""

from __future__ import annotations

import pytest

from jobgraph.core.errors import InvalidJobError
from jobgraph.core.graph import (
    RunSpec,
    aggregation_job,
    is_last_route,
    jobs_per_sequence,
    merge_job,
    next_for_sequence,
    route_job,
    run_manifest,
    synthetic_job,
    synthetic_jobs,
    total_jobs,
)
from jobgraph.core.models import CarriedState, ExecType, Sequence
from tests.conftest import THREE_ROUTES, make_route
from tests.doubles import report_on

SPEC = RunSpec(run_id="g1", test_run_id="perf-7", scenarios=250, seed=42)
THREE = Sequence.model_validate(THREE_ROUTES)  # sequence 7, three routes
ONE = Sequence.model_validate(
    {
        "sequence_id": 9,
        "home_airport_iata": "DUB",
        "routes": [make_route("DUB", "LHR", "01:00:00", "02:30:00", "03:40:00")],
    }
)


def walk(sequence: Sequence) -> list[tuple[str, str]]:
    """(exec type, job id) of every job the graph unlocks for one sequence, starting from route 0."""
    job, seen = route_job(SPEC, sequence, 0), []
    while job is not None:
        seen.append((job.exec_type.value, job.job_id))
        job = next_for_sequence(SPEC, report_on(job), sequence)
    return seen


def test_a_three_route_sequence_unlocks_its_jobs_in_order():
    assert walk(THREE) == [
        ("FIRST", "g1-s7-r0"),
        ("INTERMEDIATE", "g1-s7-r1"),
        ("LAST", "g1-s7-r2"),
        ("AGGREGATION", "g1-s7-agg"),
    ]


def test_a_one_route_sequence_is_first_then_aggregation():
    assert walk(ONE) == [("FIRST", "g1-s9-r0"), ("AGGREGATION", "g1-s9-agg")]


def test_a_route_job_carries_the_route_and_the_run():
    job = route_job(SPEC, THREE, 1)
    assert job.route == THREE.routes[1]
    assert (job.run_id, job.test_run_id, job.scenarios, job.seed) == ("g1", "perf-7", 250, 42)
    assert (job.sequence_id, job.route_index, job.total_routes) == (7, 1, 3)
    assert job.correlation_id == "g1-s7"  # the FIFO message group of the sequence, on both queues


def test_aggregation_and_merge_jobs():
    aggregation = aggregation_job(SPEC, 7, 3)
    assert (aggregation.job_id, aggregation.exec_type, aggregation.correlation_id) == (
        "g1-s7-agg",
        ExecType.AGGREGATION,
        "g1-s7",
    )
    assert (aggregation.sequence_id, aggregation.total_routes, aggregation.scenarios, aggregation.seed) == (
        7,
        3,
        250,
        42,
    )
    assert aggregation.test_run_id == "perf-7" and aggregation.route is None
    merge = merge_job(SPEC)
    assert (merge.job_id, merge.exec_type, merge.correlation_id) == ("g1-merge", ExecType.MERGE, "g1-merge")
    assert (merge.run_id, merge.test_run_id, merge.scenarios, merge.seed) == ("g1", "perf-7", 250, 42)
    assert merge.sequence_id is None


def test_aggregation_and_merge_completions_unlock_nothing_here():
    assert next_for_sequence(SPEC, report_on(aggregation_job(SPEC, 7, 3)), THREE) is None
    assert next_for_sequence(SPEC, report_on(merge_job(SPEC)), None) is None


def test_the_last_route_needs_no_sequence_and_a_middle_route_does():
    last = report_on(route_job(SPEC, THREE, 2))
    assert is_last_route(last) and next_for_sequence(SPEC, last, None).job_id == "g1-s7-agg"
    middle = report_on(route_job(SPEC, THREE, 1))
    assert not is_last_route(middle)
    with pytest.raises(ValueError, match="g1-s7-r1: the sequence is needed to schedule route 2"):
        next_for_sequence(SPEC, middle, None)
    assert not is_last_route(report_on(aggregation_job(SPEC, 7, 3)))  # no route index: not a route


@pytest.mark.parametrize("missing", ["sequence_id", "route_index", "total_routes"])
def test_a_route_completion_without_its_route_fields_is_named_not_a_type_error(missing):
    torn = report_on(route_job(SPEC, THREE, 1)).model_copy(update={missing: None})
    assert not is_last_route(torn)
    with pytest.raises(
        InvalidJobError, match="g1-s7-r1: INTERMEDIATE completion lacks sequence_id, route_index or total_routes"
    ):
        next_for_sequence(SPEC, torn, THREE)


def test_a_state_carried_by_a_completion_goes_on_in_the_job_it_unlocks():
    """Route r's state travels in the messages (GUIDE §4's hand-over): the next route, or the AGGREGATION after
    the last route, gets it exactly as the completion carried it; without one, the job has none (read from S3)."""
    state = CarriedState(
        route_index=1, scheduled_arrival_min=610.0, arrival_delay="AAAAAAAA8D8=", total_departure_delay="AAAAAAAAAEA="
    )
    middle = report_on(route_job(SPEC, THREE, 1)).model_copy(update={"state": state})
    last = report_on(route_job(SPEC, THREE, 2)).model_copy(update={"state": state})
    assert next_for_sequence(SPEC, middle, THREE).state == state
    assert next_for_sequence(SPEC, last, None).state == state
    assert next_for_sequence(SPEC, report_on(route_job(SPEC, THREE, 1)), THREE).state is None


def test_job_counts():
    assert jobs_per_sequence(THREE) == 4 and jobs_per_sequence(ONE) == 2
    assert total_jobs([THREE, ONE]) == 4 + 2 + 1  # + the run's one MERGE
    assert total_jobs([]) == 1


def test_run_manifest():
    manifest = run_manifest(SPEC, [THREE, ONE], "lambda")
    assert manifest.sequence_ids == [7, 9] and manifest.total_route_jobs == 4
    assert (manifest.run_id, manifest.test_run_id, manifest.scenarios, manifest.seed) == ("g1", "perf-7", 250, 42)
    assert manifest.implementation == "lambda"


def test_synthetic_jobs_spread_over_groups():
    jobs = synthetic_jobs(SPEC, 5, work_duration_ms=20, data_size_kb=3, groups=2)
    assert [j.job_id for j in jobs] == [f"g1-syn-{i:07d}" for i in range(5)]
    assert [j.correlation_id for j in jobs] == ["g1-g0", "g1-g1", "g1-g0", "g1-g1", "g1-g0"]
    assert {(j.exec_type, j.work_duration_ms, j.data_size_kb, j.scenarios, j.seed) for j in jobs} == {
        (ExecType.SYNTHETIC, 20, 3, 250, 42)
    }
    one = synthetic_job(SPEC, "x", "grp", 7, 1)
    assert (one.job_id, one.correlation_id, one.test_run_id, one.run_id) == ("x", "grp", "perf-7", "g1")
