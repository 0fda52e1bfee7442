"""An independent oracle of GUIDE §4's delay model: plain Python, one scenario at a time.

Nothing here imports a constant from ``jobgraph.core``: the numbers are GUIDE §4's, written out, so a
changed constant in the code under test is a disagreement with this file, not a shared mistake. The one
thing shared with the code is the random stream (``route_rng``: deterministic per run seed, sequence and
route, GUIDE §4), drawn in the documented order — S uniforms (hit or not), S exponentials (drawn for every
scenario), S normals — so the oracle and the vectorised model must agree bit for bit.

Used by tests/unit/test_model_oracle.py and by benchmarks/bench_delay_model.py (speed of the vectorised
model against this loop).
"""

from __future__ import annotations

import math

import numpy as np

# GUIDE §4, literally (minutes)
MIN_TURNAROUND = 45.0
PRIMARY_PROBABILITY = 0.35
PRIMARY_MEAN = 18.0
ENROUTE_SD_PER_BLOCK_MIN = 0.06
CURFEW = 23 * 60.0  # 23:00


def minutes(hhmmss: str) -> float:
    """ "HH:MM:SS" → minutes after midnight (written here, not imported, like the constants)."""
    hours, mins, secs = (int(part) for part in hhmmss.split(":"))
    return hours * 60 + mins + secs / 60


def buffer_minutes(takeoff: float, previous_arrival: float) -> float:
    return max(0.0, (takeoff - previous_arrival) - MIN_TURNAROUND)


def simulate_route_naive(route, *, route_index, sequence_id, seed, scenarios, previous, rng_for=None):
    """(departure, arrival, total_departure) per scenario for one route, given the previous route's
    ``(scheduled_arrival_min, arrival_delay, total_departure_delay)`` (or a RouteState: same fields)."""
    if rng_for is None:
        from jobgraph.core.delay_model import route_rng as rng_for
    takeoff = minutes(route.estimated_takeoff_time)
    arrival_time = minutes(route.estimated_arrival_time)
    if previous is None:
        prev_arrival, carried, buffer = [0.0] * scenarios, [0.0] * scenarios, math.inf
    else:
        prev_arrival = [float(x) for x in previous.arrival_delay]
        carried = [float(x) for x in previous.total_departure_delay]
        buffer = buffer_minutes(takeoff, previous.scheduled_arrival_min)
    sd = ENROUTE_SD_PER_BLOCK_MIN * (arrival_time - takeoff)
    rng = rng_for(seed, sequence_id, route_index)
    uniforms = [rng.random() for _ in range(scenarios)]
    sizes = [rng.exponential(PRIMARY_MEAN) for _ in range(scenarios)]
    noise = [rng.normal(0.0, sd) for _ in range(scenarios)]
    departure, arrival, total = [], [], []
    for s in range(scenarios):
        knock = 0.0 if previous is None else max(0.0, prev_arrival[s] - buffer)
        primary = sizes[s] if uniforms[s] < PRIMARY_PROBABILITY else 0.0
        dep = knock + primary
        departure.append(dep)
        arrival.append(dep + noise[s])
        total.append(carried[s] + dep)
    return np.array(departure), np.array(arrival), np.array(total)


class NaiveState:
    """What the oracle hands from route r to route r+1 (the fields RouteState has)."""

    def __init__(self, scheduled_arrival_min, arrival_delay, total_departure_delay):
        self.scheduled_arrival_min = scheduled_arrival_min
        self.arrival_delay = arrival_delay
        self.total_departure_delay = total_departure_delay


def simulate_sequence_naive(sequence, *, seed: int, scenarios: int, rng_for=None) -> dict:
    """Every route of a sequence, then the per-sequence samples and curfew breaches GUIDE §5 asks for."""
    previous, routes = None, []
    for index, route in enumerate(sequence.routes):
        dep, arr, total = simulate_route_naive(
            route,
            route_index=index,
            sequence_id=sequence.sequence_id,
            seed=seed,
            scenarios=scenarios,
            previous=previous,
            rng_for=rng_for,
        )
        routes.append((dep, arr))
        previous = NaiveState(minutes(route.estimated_arrival_time), arr, total)
    last_arrival = minutes(sequence.routes[-1].estimated_arrival_time)
    breaches = [last_arrival + float(a) > CURFEW for a in previous.arrival_delay]
    return {
        "routes": routes,
        "final_arrival_delay_min": previous.arrival_delay,
        "total_departure_delay_min": previous.total_departure_delay,
        "curfew_breaches": sum(breaches),
        "curfew_breach_probability": sum(breaches) / scenarios,
    }
