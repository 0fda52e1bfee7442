"""The delay model against oracles that do not share its code: GUIDE §4's numbers written out, a
two-route example computed by hand from fixed draws, the plain-Python model of tests/model_oracle.py,
and the distributions' statistics (hypothesis over seeds and block times, with tolerances of 6 standard
errors: a correct model fails one of these about once in 10⁸ examples).

No constant is imported from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobgraph.adapters.local_disk import LocalDiskBlobStore
from jobgraph.core import delay_model
from jobgraph.core.delay_model import curfew_breaches, simulate_route, turnaround_buffer
from jobgraph.core.generator import generate_sequences
from jobgraph.core.models import Route, Sequence
from jobgraph.core.results import ResultStore
from jobgraph.core.run import RunSpec
from jobgraph.core.solver import solve_into
from tests.conftest import THREE_ROUTES
from tests.model_oracle import NaiveState, minutes, simulate_route_naive, simulate_sequence_naive


def route(origin, destination, gate, takeoff, arrival) -> Route:
    return Route(
        origin_iata=origin,
        destination_iata=destination,
        estimated_gate_open_time=gate,
        estimated_takeoff_time=takeoff,
        estimated_arrival_time=arrival,
    )


# --- 1. GUIDE §4's constants, as the code states them ---------------------------------------------------


def test_the_model_constants_are_guide_section_4s():
    assert delay_model.PRIMARY_DELAY_PROBABILITY == 0.35
    assert delay_model.PRIMARY_DELAY_MEAN_MIN == 18
    assert delay_model.ENROUTE_SD_FRACTION == 0.06
    assert delay_model.CURFEW_MIN == 23 * 60
    # the turnaround minimum, through its only use: a 50-minute turn leaves a 5-minute buffer
    assert turnaround_buffer(takeoff_min=600.0, previous_arrival_min=550.0) == 5.0


# --- 2. a two-route day computed by hand from fixed draws --------------------------------------------------


class FixedDraws:
    """Stands in for the route's generator: fixed standard draws, scaled the way numpy scales them
    (exponential(scale) = scale · standard exponential, normal(0, sd) = sd · standard normal)."""

    def __init__(self, uniforms, exponentials, normals):
        self.uniforms, self.exponentials, self.normals = (
            np.array(x, dtype=float) for x in (uniforms, exponentials, normals)
        )
        self.calls: list[str] = []

    def random(self, size):
        self.calls.append("random")
        assert size == self.uniforms.size
        return self.uniforms.copy()

    def exponential(self, scale, size):
        self.calls.append("exponential")
        assert size == self.exponentials.size
        return scale * self.exponentials

    def normal(self, loc, sd, size):
        self.calls.append("normal")
        assert size == self.normals.size
        return loc + sd * self.normals


# 20:00 → 21:00, then 21:50 → 22:50: blocks of 60 min (en-route sd 0.06 · 60 = 3.6 min); the turn is
# 50 min, so the buffer is 50 − 45 = 5 min; the day ends 10 min before the 23:00 curfew.
HAND_DAY = Sequence(
    sequence_id=3,
    home_airport_iata="DUB",
    routes=[
        route("DUB", "LHR", "18:30:00", "20:00:00", "21:00:00"),
        route("LHR", "DUB", "21:10:00", "21:50:00", "22:50:00"),
    ],
)


def fixed_draws() -> dict[int, FixedDraws]:
    return {
        0: FixedDraws(
            uniforms=[0.10, 0.50, 0.3499, 0.90], exponentials=[1.0, 2.0, 0.5, 0.1], normals=[0.5, -1.0, 0.0, 2.0]
        ),
        1: FixedDraws(
            uniforms=[0.90, 0.20, 0.35, 0.0], exponentials=[3.0, 0.25, 1.0, 2.0], normals=[0.0, 0.5, -0.5, -2.0]
        ),
    }


# By hand, scenario by scenario (primary = 18 · e where u < 0.35; en-route = 3.6 · z):
#   route 0: primary 18, 0, 9, 0                  dep0 = 18, 0, 9, 0
#            en-route 1.8, −3.6, 0, 7.2            arr0 = 19.8, −3.6, 9, 7.2
#   route 1: knock = max(0, arr0 − 5)             14.8, 0, 4, 2.2
#            primary (u = 0.35 is not a hit)       0, 4.5, 0, 36
#            dep1 = knock + primary                14.8, 4.5, 4, 38.2
#            en-route 0, 1.8, −1.8, −7.2           arr1 = 14.8, 6.3, 2.2, 31
#   total departure delay = dep0 + dep1           32.8, 4.5, 13, 38.2
#   curfew: 22:50 + arr1 > 23:00 ⇔ arr1 > 10      yes, no, no, yes
HAND = {
    "dep0": [18.0, 0.0, 9.0, 0.0],
    "arr0": [19.8, -3.6, 9.0, 7.2],
    "dep1": [14.8, 4.5, 4.0, 38.2],
    "arr1": [14.8, 6.3, 2.2, 31.0],
    "total": [32.8, 4.5, 13.0, 38.2],
    "breach": [True, False, False, True],
}


def test_two_routes_by_hand_with_fixed_draws(monkeypatch):
    draws = fixed_draws()
    monkeypatch.setattr(delay_model, "route_rng", lambda seed, sequence_id, route_index: draws[route_index])
    kw = {"sequence_id": 3, "seed": 1, "scenarios": 4}
    first = simulate_route(HAND_DAY.routes[0], route_index=0, previous=None, **kw)
    second = simulate_route(HAND_DAY.routes[1], route_index=1, previous=first.state, **kw)
    assert first.departure_delay.tolist() == pytest.approx(HAND["dep0"], abs=1e-12)
    assert first.arrival_delay.tolist() == pytest.approx(HAND["arr0"], abs=1e-12)
    assert second.departure_delay.tolist() == pytest.approx(HAND["dep1"], abs=1e-12)
    assert second.arrival_delay.tolist() == pytest.approx(HAND["arr1"], abs=1e-12)
    assert second.state.total_departure_delay.tolist() == pytest.approx(HAND["total"], abs=1e-12)
    assert curfew_breaches(second.state).tolist() == HAND["breach"]
    # the documented draw order, which makes the numbers reproducible across implementations
    assert draws[0].calls == draws[1].calls == ["random", "exponential", "normal"]


def test_the_oracle_agrees_with_the_hand_computation():
    """The plain-Python oracle, fed the same fixed draws one at a time, gives the same hand-computed day."""

    class OneAtATime:
        def __init__(self, draws: FixedDraws):
            self.u, self.e, self.z = iter(draws.uniforms), iter(draws.exponentials), iter(draws.normals)

        def random(self):
            return next(self.u)

        def exponential(self, scale):
            return scale * next(self.e)

        def normal(self, loc, sd):
            return loc + sd * next(self.z)

    draws = fixed_draws()
    result = simulate_sequence_naive(HAND_DAY, seed=1, scenarios=4, rng_for=lambda s, q, r: OneAtATime(draws[r]))
    (dep0, arr0), (dep1, arr1) = result["routes"]
    assert dep0.tolist() == pytest.approx(HAND["dep0"]) and arr0.tolist() == pytest.approx(HAND["arr0"])
    assert dep1.tolist() == pytest.approx(HAND["dep1"]) and arr1.tolist() == pytest.approx(HAND["arr1"])
    assert result["total_departure_delay_min"].tolist() == pytest.approx(HAND["total"])
    assert result["curfew_breaches"] == 2


def test_one_minute_past_the_curfew_breaches_and_exactly_on_it_does_not():
    state = delay_model.RouteState(
        route_index=1,
        scheduled_arrival_min=minutes("22:50:00"),
        arrival_delay=np.array([9.0, 10.0, 11.0, -5.0]),
        total_departure_delay=np.zeros(4),
    )
    assert curfew_breaches(state).tolist() == [False, False, True, False]


# --- 3. the plain-Python model as an oracle at small S ----------------------------------------------------


def assert_vectorised_equals_naive(sequence: Sequence, seed: int, scenarios: int):
    previous = None
    naive_previous = None
    for index, r in enumerate(sequence.routes):
        kw = {"route_index": index, "sequence_id": sequence.sequence_id, "seed": seed, "scenarios": scenarios}
        fast = simulate_route(r, previous=previous, **kw)
        dep, arr, total = simulate_route_naive(r, previous=naive_previous, **kw)
        # same draws, same arithmetic: bit for bit
        assert np.array_equal(fast.departure_delay, dep), (sequence.sequence_id, index)
        assert np.array_equal(fast.arrival_delay, arr), (sequence.sequence_id, index)
        assert np.array_equal(fast.state.total_departure_delay, total), (sequence.sequence_id, index)
        previous = fast.state
        naive_previous = NaiveState(minutes(r.estimated_arrival_time), arr, total)
    return previous


@given(seed=st.integers(0, 2**63 - 1), scenarios=st.integers(1, 64))
@settings(max_examples=40, deadline=None)
def test_vectorised_model_equals_the_naive_oracle_on_a_tight_three_route_day(seed, scenarios):
    assert_vectorised_equals_naive(Sequence.model_validate(THREE_ROUTES), seed, scenarios)


def test_vectorised_model_equals_the_naive_oracle_on_generated_days():
    for sequence in generate_sequences(12, seed=2024):
        final = assert_vectorised_equals_naive(sequence, seed=77, scenarios=50)
        expected = simulate_sequence_naive(sequence, seed=77, scenarios=50)
        assert int(curfew_breaches(final).sum()) == expected["curfew_breaches"]


def test_the_solvers_results_match_numpy_over_the_oracles_samples(tmp_path):
    """Per-sequence and merged statistics of a whole solve, against numpy over the oracle's samples."""
    sequences = [*generate_sequences(6, seed=5), Sequence.model_validate(THREE_ROUTES)]
    spec = RunSpec(run_id="oracle", test_run_id="t", scenarios=200, seed=99)
    store = ResultStore(LocalDiskBlobStore(tmp_path))
    solve_into(store, spec, sequences)
    pooled = {"final_arrival_delay_min": [], "total_departure_delay_min": []}
    breaches = 0
    for sequence in sequences:
        oracle = simulate_sequence_naive(sequence, seed=99, scenarios=200)
        document = store.get_percentiles("oracle", sequence.sequence_id)
        for metric, values in pooled.items():
            samples = oracle[metric]
            values.append(samples)
            for q in (50, 75, 90, 95, 99):  # exact per sequence: numpy's default percentile
                assert document[metric][f"p{q}"] == pytest.approx(
                    float(np.percentile(samples, q)), rel=1e-12, abs=1e-12
                )
            assert document[metric]["mean"] == pytest.approx(math.fsum(samples) / 200, rel=1e-12)
            assert document[metric]["max"] == float(samples.max())
        assert document["curfew_breach_probability"] == oracle["curfew_breaches"] / 200
        breaches += oracle["curfew_breaches"]
    merged = store.get_merged("oracle")
    assert merged["sequences"] == 7 and merged["scenarios_per_sequence"] == 200
    for metric, parts in pooled.items():
        samples = np.concatenate(parts)
        for q in (50, 75, 90, 95, 99):  # GUIDE §5: within max(0.5 min, 1 %) of numpy on the pooled samples
            exact = float(np.percentile(samples, q))
            assert abs(merged[metric][f"p{q}"] - exact) <= max(0.5, 0.01 * abs(exact))
        assert merged[metric]["mean"] == pytest.approx(math.fsum(samples) / samples.size, rel=1e-12)  # exact
        assert merged[metric]["max"] == float(samples.max())
    assert merged["curfew_breach_probability"] == breaches / (7 * 200)


# --- 4. the distributions, with statistical tolerances ------------------------------------------------------

SIGMAS = 6.0
BIG_S = 20_000


def block_route(block_min: int) -> Route:
    takeoff = 6 * 60
    arrival = takeoff + block_min
    return route("DUB", "LHR", "04:30:00", "06:00:00", f"{arrival // 60:02d}:{arrival % 60:02d}:00")


@given(seed=st.integers(0, 2**63 - 1), block=st.integers(20, 600))
@settings(max_examples=25, deadline=None)
def test_primary_delay_share_size_and_en_route_spread(seed, block):
    first = simulate_route(block_route(block), route_index=0, sequence_id=1, seed=seed, scenarios=BIG_S, previous=None)
    primary = first.departure_delay  # route 0: no knock-on, so dep delay is the primary delay alone
    assert np.all(primary >= 0)
    hit = primary > 0
    share_se = math.sqrt(0.35 * 0.65 / BIG_S)
    assert abs(hit.mean() - 0.35) < SIGMAS * share_se  # P(primary delay) = 0.35
    sizes = primary[hit]
    # exponential with mean 18: the mean's standard error is 18/√n; the median is 18·ln 2
    assert abs(sizes.mean() - 18.0) < SIGMAS * 18.0 / math.sqrt(sizes.size)
    assert abs(np.median(sizes) - 18.0 * math.log(2)) < SIGMAS * 18.0 / math.sqrt(sizes.size)
    noise = first.arrival_delay - first.departure_delay
    sd = 0.06 * block  # en-route N(0, (0.06·block)²)
    assert abs(noise.mean()) < SIGMAS * sd / math.sqrt(BIG_S)
    assert abs(noise.std() / sd - 1) < SIGMAS / math.sqrt(2 * BIG_S)
    assert noise.min() < 0 < noise.max()  # early arrivals happen


@given(
    seed=st.integers(0, 2**63 - 1),
    turn=st.integers(0, 240),
    previous_delay=st.lists(st.floats(-60, 300, allow_nan=False), min_size=1, max_size=30),
)
@settings(max_examples=60, deadline=None)
def test_knock_on_is_the_delay_beyond_the_buffer_and_never_negative(seed, turn, previous_delay):
    # the previous route lands at 08:00 and this one takes off ``turn`` minutes later
    takeoff = 8 * 60 + turn
    r = route("LHR", "DUB", "08:00:00", f"{takeoff // 60:02d}:{takeoff % 60:02d}:00", "23:30:00")
    n = len(previous_delay)
    previous = delay_model.RouteState(
        route_index=0,
        scheduled_arrival_min=480.0,
        arrival_delay=np.array(previous_delay),
        total_departure_delay=np.zeros(n),
    )
    result = simulate_route(r, route_index=1, sequence_id=2, seed=seed, scenarios=n, previous=previous)
    buffer = max(0.0, turn - 45.0)
    assert turnaround_buffer(float(takeoff), 480.0) == buffer
    knock = np.maximum(0.0, np.array(previous_delay) - buffer)
    primary = result.departure_delay - knock
    assert np.all(result.departure_delay >= 0)
    assert np.all(primary >= -1e-9)  # dep = knock + a non-negative primary delay
    # a scenario without a primary delay departs exactly knock-on late
    assert np.all((np.abs(primary) < 1e-9) | (primary > 0))
    np.testing.assert_allclose(result.state.total_departure_delay, result.departure_delay)


@given(takeoff=st.floats(0, 1440), arrival=st.floats(0, 1440))
def test_buffer_arithmetic(takeoff, arrival):
    assert turnaround_buffer(takeoff, arrival) == max(0.0, takeoff - arrival - 45.0)
