"""A route state carried in the messages: bit-exact, the same results as through S3, and the line where S3
becomes cheaper recomputed from the price tables."""

from __future__ import annotations

import numpy as np
import pytest

from jobgraph.adapters.local_disk import LocalDiskBlobStore
from jobgraph.bench.prices import PRICE_TABLES
from jobgraph.core import parquet_codec, stages
from jobgraph.core.delay_model import RouteState
from jobgraph.core.errors import InvalidJobError, MissingStateError
from jobgraph.core.generator import generate_sequences
from jobgraph.core.graph import aggregation_job, route_job
from jobgraph.core.models import CARRY_STATE_MAX_BYTES, CarriedState, carried_state_bytes, carries_state
from jobgraph.core.results import ResultStore
from jobgraph.core.run import RunSpec

SQS_CHUNK = 64 * 1024
# a carried state rides in four SQS payloads per route: completion sent and received, next job sent and received
PAYLOADS_PER_ROUTE = 4


@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1"])
def test_the_line_is_where_four_sqs_chunks_cost_an_s3_put_and_get(region):
    prices = PRICE_TABLES["2026-11-01"][region]
    s3_per_route = prices["s3_put_request"] + prices["s3_get_request"]
    break_even = s3_per_route / (PAYLOADS_PER_ROUTE * prices["sqs_fifo_request"]) * SQS_CHUNK
    assert abs(CARRY_STATE_MAX_BYTES - break_even) / break_even < 0.02
    # in scenarios: about 8,000 (the README and docs/benchmarks.md say so)
    largest = max(s for s in range(1000, 20000, 10) if carries_state(s, CARRY_STATE_MAX_BYTES))
    assert 8000 <= largest <= 8400
    assert carried_state_bytes(largest) < 1024 * 1024  # far below SQS's 1 MiB message limit


@pytest.mark.parametrize("scenarios", [1, 7, 1000, 8000])
def test_the_size_estimate_bounds_the_message_field(scenarios):
    rng = np.random.default_rng(scenarios)
    state = RouteState(3, 612.5, rng.normal(size=scenarios), rng.exponential(size=scenarios))
    carried = parquet_codec.carry_state(state)
    assert len(carried.model_dump_json()) <= carried_state_bytes(scenarios)
    back = parquet_codec.uncarry_state(CarriedState.model_validate_json(carried.model_dump_json()), scenarios)
    assert np.array_equal(back.arrival_delay, state.arrival_delay)
    assert np.array_equal(back.total_departure_delay, state.total_departure_delay)
    assert (back.route_index, back.scheduled_arrival_min) == (3, 612.5)


def test_a_state_with_the_wrong_number_of_scenarios_is_refused():
    state = RouteState(0, 100.0, np.zeros(10), np.zeros(10))
    with pytest.raises(InvalidJobError, match="10 values for 11 scenarios"):
        parquet_codec.uncarry_state(parquet_codec.carry_state(state), 11)


def test_carried_and_stored_states_give_identical_results(tmp_path):
    spec = RunSpec("carry", "default", 500, 9)
    sequence = next(s for s in generate_sequences(5, seed=3) if len(s.routes) >= 3)
    via_s3 = ResultStore(LocalDiskBlobStore(tmp_path / "s3"))
    via_messages = ResultStore(LocalDiskBlobStore(tmp_path / "messages"))
    carried = None
    for index in range(len(sequence.routes)):
        stages.run_job(route_job(spec, sequence, index), via_s3)
        job = route_job(spec, sequence, index).model_copy(update={"state": carried})
        carried = stages.run_job(job, via_messages, CARRY_STATE_MAX_BYTES).state
        assert carried is not None and carried.route_index == index
        assert via_messages.get_delays(spec.run_id, job.job_id) == via_s3.get_delays(spec.run_id, job.job_id)
    aggregation = aggregation_job(spec, sequence.sequence_id, len(sequence.routes))
    stages.run_job(aggregation, via_s3)
    stages.run_job(aggregation.model_copy(update={"state": carried}), via_messages)
    key = f"{spec.run_id}/percentiles/{sequence.sequence_id}.json"
    assert (tmp_path / "messages" / key).read_bytes() == (tmp_path / "s3" / key).read_bytes()
    # and nothing of the state went to storage on the message path
    assert not list((tmp_path / "messages").rglob("route_*.parquet"))


def test_a_job_carrying_another_routes_state_is_refused(tmp_path):
    spec = RunSpec("carry", "default", 50, 9)
    sequence = next(s for s in generate_sequences(5, seed=3) if len(s.routes) >= 3)
    store = ResultStore(LocalDiskBlobStore(tmp_path))
    state0 = stages.run_job(route_job(spec, sequence, 0), store, CARRY_STATE_MAX_BYTES).state
    with pytest.raises(MissingStateError, match="carries the state of route 0, needs route 1"):
        stages.run_job(route_job(spec, sequence, 2).model_copy(update={"state": state0}), store)


def test_a_replayed_state_equals_the_first_runs(tmp_path):
    spec = RunSpec("carry", "default", 200, 9)
    sequence = next(s for s in generate_sequences(5, seed=3) if len(s.routes) >= 2)
    store = ResultStore(LocalDiskBlobStore(tmp_path))
    state0 = stages.run_job(route_job(spec, sequence, 0), store, CARRY_STATE_MAX_BYTES).state
    second = route_job(spec, sequence, 1).model_copy(update={"state": state0})
    first_run = stages.run_job(second, store, CARRY_STATE_MAX_BYTES).state
    assert stages.replay_state(second, store, CARRY_STATE_MAX_BYTES) == first_run
    # nothing to replay when the state is an S3 object, or its input is not at hand
    assert stages.replay_state(second, store, 0) is None
    assert stages.replay_state(route_job(spec, sequence, 1), store, CARRY_STATE_MAX_BYTES) is None
