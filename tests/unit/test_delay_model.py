"""Invariants of the delay model (GUIDE §4)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobgraph.core.delay_model import (
    RouteState,
    curfew_breaches,
    simulate_route,
    turnaround_buffer,
)
from jobgraph.core.errors import MissingStateError
from jobgraph.core.models import Sequence
from tests.conftest import THREE_ROUTES
from tests.model_oracle import simulate_sequence_naive

# GUIDE §4, written out (never imported from the code under test)
PRIMARY_DELAY_PROBABILITY = 0.35
CURFEW_MIN = 23 * 60.0


def simulate_sequence(sequence: Sequence, seed: int, scenarios: int):
    results, previous = [], None
    for index, route in enumerate(sequence.routes):
        result = simulate_route(
            route,
            route_index=index,
            sequence_id=sequence.sequence_id,
            seed=seed,
            scenarios=scenarios,
            previous=previous,
        )
        results.append(result)
        previous = result.state
    return results


@given(seed=st.integers(0, 2**63 - 1))
@settings(max_examples=40, deadline=None)
def test_departure_delay_never_negative_and_knock_on_rule_holds(seed):
    sequence = Sequence.model_validate(THREE_ROUTES)
    results = simulate_sequence(sequence, seed, 500)
    for index in range(1, len(results)):
        route, prev = sequence.routes[index], sequence.routes[index - 1]
        buffer = turnaround_buffer(route.takeoff_min, prev.arrival_min)
        knock = np.maximum(0.0, results[index - 1].arrival_delay - buffer)
        # dep = knock + primary with primary >= 0: departure never earlier than the knock-on
        assert np.all(results[index].departure_delay >= knock - 1e-12)
    for result in results:
        assert np.all(result.departure_delay >= 0)


def test_knock_on_is_exact_when_no_primary_delay(three_route_sequence):
    """Where a scenario drew no primary delay, dep_delay equals the knock-on exactly."""
    sequence = Sequence.model_validate(three_route_sequence)
    first, second, _ = simulate_sequence(sequence, seed=11, scenarios=5000)
    buffer = turnaround_buffer(sequence.routes[1].takeoff_min, sequence.routes[0].arrival_min)
    assert buffer == pytest.approx(5.0)  # 04:30 takeoff - 03:40 arrival - 45 min turnaround
    knock = np.maximum(0.0, first.arrival_delay - buffer)
    no_primary = np.isclose(second.departure_delay, knock)
    # P(no primary) = 0.65; with 5000 scenarios the share is well within ±0.03
    assert abs(no_primary.mean() - (1 - PRIMARY_DELAY_PROBABILITY)) < 0.03
    assert np.all(second.departure_delay[~no_primary] > knock[~no_primary])


def test_deterministic_per_seed_sequence_route(three_route_sequence):
    sequence = Sequence.model_validate(three_route_sequence)
    a = simulate_sequence(sequence, seed=5, scenarios=1000)
    b = simulate_sequence(sequence, seed=5, scenarios=1000)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.departure_delay, y.departure_delay)
        assert np.array_equal(x.arrival_delay, y.arrival_delay)


def test_different_seeds_and_sequences_differ(three_route_sequence):
    sequence = Sequence.model_validate(three_route_sequence)
    other = Sequence.model_validate({**three_route_sequence, "sequence_id": 8})
    base = simulate_sequence(sequence, seed=5, scenarios=1000)[0]
    assert not np.array_equal(base.arrival_delay, simulate_sequence(sequence, seed=6, scenarios=1000)[0].arrival_delay)
    assert not np.array_equal(base.arrival_delay, simulate_sequence(other, seed=5, scenarios=1000)[0].arrival_delay)


def test_distribution_matches_the_model(three_route_sequence):
    """Route 0 has no knock-on: dep delay is the primary delay (35 % × Exp(mean 18))."""
    sequence = Sequence.model_validate(three_route_sequence)
    first = simulate_sequence(sequence, seed=3, scenarios=200_000)[0]
    hit = first.departure_delay > 0
    assert hit.mean() == pytest.approx(PRIMARY_DELAY_PROBABILITY, abs=0.005)
    assert first.departure_delay[hit].mean() == pytest.approx(18.0, rel=0.02)
    noise = first.arrival_delay - first.departure_delay
    assert noise.std() == pytest.approx(0.06 * sequence.routes[0].block_min, rel=0.02)
    assert noise.min() < 0  # early arrivals exist


def test_route_needs_the_previous_state(three_route_sequence):
    sequence = Sequence.model_validate(three_route_sequence)
    with pytest.raises(MissingStateError, match="needs the state of route 0"):
        simulate_route(sequence.routes[1], route_index=1, sequence_id=7, seed=1, scenarios=10, previous=None)
    wrong = RouteState(
        route_index=0, scheduled_arrival_min=0.0, arrival_delay=np.zeros(5), total_departure_delay=np.zeros(5)
    )
    with pytest.raises(ValueError, match="5 scenarios"):
        simulate_route(sequence.routes[1], route_index=1, sequence_id=7, seed=1, scenarios=10, previous=wrong)


def test_a_wrong_state_is_refused_naming_what_was_given(three_route_sequence):
    """The whole messages: they reach the job's error record and the run's failure line."""
    sequence = Sequence.model_validate(three_route_sequence)
    state = RouteState(
        route_index=0, scheduled_arrival_min=0.0, arrival_delay=np.zeros(10), total_departure_delay=np.zeros(10)
    )
    with pytest.raises(ValueError) as first:
        simulate_route(sequence.routes[0], route_index=0, sequence_id=7, seed=1, scenarios=10, previous=state)
    assert str(first.value) == "route 0 takes no previous state"
    with pytest.raises(MissingStateError) as none:
        simulate_route(sequence.routes[2], route_index=2, sequence_id=7, seed=1, scenarios=10, previous=None)
    assert str(none.value) == "route 2 needs the state of route 1, got none"
    with pytest.raises(MissingStateError) as skipped:
        simulate_route(sequence.routes[2], route_index=2, sequence_id=7, seed=1, scenarios=10, previous=state)
    assert str(skipped.value) == "route 2 needs the state of route 1, got route 0"


def test_total_departure_delay_accumulates_and_curfew(three_route_sequence):
    sequence = Sequence.model_validate(three_route_sequence)
    results = simulate_sequence(sequence, seed=9, scenarios=2000)
    total = sum(r.departure_delay for r in results)
    assert np.allclose(results[-1].state.total_departure_delay, total)
    final = results[-1].state
    expected = sequence.routes[-1].arrival_min + final.arrival_delay > CURFEW_MIN
    assert np.array_equal(curfew_breaches(final), expected)
    # 22:10 landing: some scenarios breach 23:00, most do not — exactly as many as the plain-Python oracle counts
    assert int(expected.sum()) == simulate_sequence_naive(sequence, seed=9, scenarios=2000)["curfew_breaches"]
