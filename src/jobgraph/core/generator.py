"""Synthetic aircraft days (GUIDE §3, seed 001): generate, check, and write sequence files.

Every generated sequence satisfies the seven constraints of GUIDE §3:

1. the first gate opens at the home airport between 00:05 and 02:00;
2. takeoff is 80-110 min after gate open, on every route;
3. block time = haversine distance / 800 km/h (:func:`jobgraph.iata.flight_minutes`);
4. the next gate opens 10-40 min after landing;
5. 2-8 flights a day;
6. the last flight lands back home after 16:00 and before 23:00 (both strict);
7. routes chain and no flight goes from an airport to itself.

Default airport pool
--------------------
``airports.DEFAULT_AIRPORT_POOL``: 42 large European hubs and busy regional airports, from DUB and LIS in
the west to IST and HEL in the east. Why these: every code is in ``airportsdata``; any pair is 2 min to
~4 h 15 min apart at 800 km/h (mean ~1 h 35 min), so a day of 2-8 such hops plus 90-150 min ground time per
hop fits between 00:05 and 23:00 with room to spare, while the spread of leg lengths keeps the delay
model interesting (short shuttles and long sectors in the same run). Callers may pass any other pool of
≥ 2 known IATA codes; a pool whose legs cannot fit the 16:00-23:00 return window raises ``ValueError``.

How constraint 6 is guaranteed
------------------------------
All times are whole minutes (like seed 000 and airline schedules), so the schedule is integer arithmetic.
Block times are the haversine flight time rounded to the nearest minute (error ≤ 30 s, hence
``FLIGHT_TIME_TOLERANCE_MIN`` = 0.5). For ``n`` flights with total block time ``F`` the last landing can be
anywhere in ``[min_end, max_end]`` with ``min_end = 5 + 80n + 10(n-1) + F`` and
``max_end = 120 + 110n + 40(n-1) + F`` (all ground times at their minimum/maximum). A route is feasible iff
that interval meets 16:01-22:59. The planner draws ``n`` and a random walk home→…→home; if the route is
infeasible it moves ``n`` towards the side that helps (one more leg when the day would end too early, one
fewer when too late; a two-airport pool can only make even ``n``, so odd ``n`` keeps moving the same way)
and draws a new walk (and, every ``HOME_REDRAW_EVERY`` attempts, a new home), for at most
``MAX_PLAN_ATTEMPTS`` attempts before raising a ``ValueError``. Eight legs always end late enough (``max_end ≥ 1280`` min > 16:00), so with any pool of
sensible distances the loop terminates within a few attempts. For a feasible route, ground times are drawn
uniformly; if the day then ends outside the window a target landing time is drawn inside it and the
difference is spread over the ground times in proportion to each one's room towards its bound, which
always succeeds because the target lies in ``[min_end, max_end]``.

Randomness is a numpy ``Generator(PCG64(SeedSequence([seed, sequence_id])))`` per sequence, so sequence
``k`` depends only on ``(seed, k, pool)``, not on ``count`` or ``start_id``, and a seed gives identical files.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from collections.abc import Sequence as SequenceOf
from functools import cache
from itertools import pairwise
from pathlib import Path

import numpy as np

from jobgraph.core import airports as iata
from jobgraph.core import models
from jobgraph.core.timeutil import format_hms

# GUIDE §3 bounds, in minutes after midnight / minutes.
FIRST_GATE_OPEN_MIN = (5, 120)  # 00:05-02:00, inclusive
TAKEOFF_AFTER_GATE_MIN = (80, 110)  # inclusive
TURNAROUND_MIN = (10, 40)  # landing -> next gate open, inclusive
FLIGHTS_PER_DAY = (2, 8)  # inclusive
LAST_ARRIVAL_AFTER_MIN = 16 * 60  # strictly after 16:00
LAST_ARRIVAL_BEFORE_MIN = 23 * 60  # strictly before 23:00
# Block times are rounded to whole minutes, so they are within 30 s of haversine / 800 km/h.
FLIGHT_TIME_TOLERANCE_MIN = 0.5
MAX_PLAN_ATTEMPTS = 200
HOME_REDRAW_EVERY = 25

_EPS = 1e-9  # float slack for comparisons of parsed "HH:MM:SS" values


# --- airport pool ---------------------------------------------------------------------------------


def resolve_pool(pool: Iterable[str] | None) -> tuple[str, ...]:
    """Validate an airport pool: known IATA codes, order kept, duplicates dropped, at least two."""
    if pool is None:
        return iata.DEFAULT_AIRPORT_POOL
    if isinstance(pool, str):
        raise ValueError(f"airport pool must be a sequence of IATA codes, not the string {pool!r}")
    codes = tuple(dict.fromkeys(str(code).strip().upper() for code in pool))
    unknown = [code for code in codes if not iata.is_known_iata(code)]
    if unknown:
        raise ValueError(f"unknown IATA airport code(s) in airport pool: {', '.join(unknown)}")
    if len(codes) < 2:
        raise ValueError(f"airport pool needs at least 2 distinct airports, got {list(codes)}")
    return codes


@cache
def _block_minutes(origin: str, destination: str) -> int:
    """Scheduled block time: haversine flight time rounded to the whole minute."""
    return round(iata.flight_minutes(origin, destination))


# --- generation -----------------------------------------------------------------------------------


def _rng(seed: int, sequence_id: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, sequence_id])))


def _walk(rng: np.random.Generator, pool: tuple[str, ...], home: str, flights: int) -> list[str] | None:
    """Airports visited home -> ... -> home with no self-legs; None if the pool cannot make it (2 airports,
    odd flight count)."""
    stops = [home]
    for leg in range(1, flights):
        banned = {stops[-1], home} if leg == flights - 1 else {stops[-1]}
        candidates = [code for code in pool if code not in banned]
        if not candidates:
            return None
        stops.append(candidates[int(rng.integers(len(candidates)))])
    stops.append(home)
    return stops


def _ground_bounds(flights: int) -> tuple[list[int], list[int]]:
    """Lower/upper bounds of the ground times, in schedule order:
    first gate open, then per flight (takeoff after gate[, turnaround before the next gate])."""
    lows, highs = [FIRST_GATE_OPEN_MIN[0]], [FIRST_GATE_OPEN_MIN[1]]
    for leg in range(flights):
        lows.append(TAKEOFF_AFTER_GATE_MIN[0])
        highs.append(TAKEOFF_AFTER_GATE_MIN[1])
        if leg < flights - 1:
            lows.append(TURNAROUND_MIN[0])
            highs.append(TURNAROUND_MIN[1])
    return lows, highs


def _shift(ground: list[int], lows: list[int], highs: list[int], delta: int) -> list[int]:
    """Add ``delta`` minutes to the ground times in proportion to each one's room towards its bound
    (largest remainder for the odd minutes), so no ground time leaves its bounds and none is singled out.
    Needs ``|delta|`` ≤ the total room, which ``min_end ≤ target ≤ max_end`` guarantees."""
    values = np.asarray(ground, dtype=np.int64)
    rooms = (np.asarray(highs) - values) if delta > 0 else (values - np.asarray(lows))
    total = int(rooms.sum())
    wanted = abs(delta) * rooms  # exact integer arithmetic: steps = floor(wanted / total) + remainder
    steps = wanted // total
    leftover = abs(delta) - int(steps.sum())
    steps[np.argsort(-(wanted % total), kind="stable")[:leftover]] += 1
    return [int(v) for v in values + np.sign(delta) * steps]


def _plan(rng: np.random.Generator, pool: tuple[str, ...], sequence_id: int) -> tuple[list[str], list[int]]:
    """Choose the stops and the ground times (minutes) of one day; see the module docstring."""
    earliest = LAST_ARRIVAL_AFTER_MIN + 1
    latest = LAST_ARRIVAL_BEFORE_MIN - 1
    home = pool[int(rng.integers(len(pool)))]
    flights = int(rng.integers(FLIGHTS_PER_DAY[0], FLIGHTS_PER_DAY[1] + 1))
    direction = 1  # which way the last infeasible attempt moved the number of flights
    for attempt in range(1, MAX_PLAN_ATTEMPTS + 1):
        if attempt % HOME_REDRAW_EVERY == 0:  # this home may be too remote for the pool: try another
            home = pool[int(rng.integers(len(pool)))]
        stops = _walk(rng, pool, home, flights)
        if stops is None:  # only two airports and an odd number of flights: keep moving the same way
            if not FLIGHTS_PER_DAY[0] <= flights + direction <= FLIGHTS_PER_DAY[1]:
                direction = -direction
            flights += direction
            continue
        block = sum(_block_minutes(a, b) for a, b in pairwise(stops))
        lows, highs = _ground_bounds(flights)
        min_end, max_end = sum(lows) + block, sum(highs) + block
        if max_end < earliest:  # too early even with the longest ground times: fly more
            direction = 1
            flights = min(flights + 1, FLIGHTS_PER_DAY[1])
            continue
        if min_end > latest:  # too late even with the shortest ground times: fly less
            direction = -1
            flights = max(flights - 1, FLIGHTS_PER_DAY[0])
            continue
        ground = [int(rng.integers(lo, hi + 1)) for lo, hi in zip(lows, highs, strict=True)]
        end = sum(ground) + block
        if not earliest <= end <= latest:
            target = int(rng.integers(max(earliest, min_end), min(latest, max_end) + 1))
            ground = _shift(ground, lows, highs, target - end)
        return stops, ground
    raise ValueError(
        f"sequence {sequence_id}: no day of {FLIGHTS_PER_DAY[0]}-{FLIGHTS_PER_DAY[1]} flights "
        f"lands back home between 16:00 and 23:00 after {MAX_PLAN_ATTEMPTS} attempts; "
        f"the airport pool's distances do not fit GUIDE §3 (pool: {', '.join(pool)})"
    )


def _build(sequence_id: int, stops: list[str], ground: list[int]) -> models.Sequence:
    ground_iter = iter(ground)
    clock = next(ground_iter)  # first gate open
    routes = []
    for leg, (origin, destination) in enumerate(pairwise(stops)):
        gate_open = clock
        takeoff = gate_open + next(ground_iter)
        arrival = takeoff + _block_minutes(origin, destination)
        routes.append(
            models.Route(
                origin_iata=origin,
                destination_iata=destination,
                estimated_gate_open_time=format_hms(gate_open),
                estimated_takeoff_time=format_hms(takeoff),
                estimated_arrival_time=format_hms(arrival),
            )
        )
        if leg < len(stops) - 2:
            clock = arrival + next(ground_iter)
    return models.Sequence(sequence_id=sequence_id, home_airport_iata=stops[0], routes=routes)


def generate_sequence(sequence_id: int, seed: int, airports: SequenceOf[str] | None = None) -> models.Sequence:
    """One aircraft day; depends only on (seed, sequence_id, pool)."""
    pool = resolve_pool(airports)
    _check_non_negative(seed=seed, sequence_id=sequence_id)
    stops, ground = _plan(_rng(seed, sequence_id), pool, sequence_id)
    return _build(sequence_id, stops, ground)


def generate_sequences(
    count: int, seed: int, start_id: int = 0, airports: SequenceOf[str] | None = None
) -> list[models.Sequence]:
    """Sequences ``start_id .. start_id + count - 1``, each satisfying every constraint of GUIDE §3."""
    _check_non_negative(count=count, seed=seed, start_id=start_id)
    pool = resolve_pool(airports)
    return [
        _build(sequence_id, *_plan(_rng(seed, sequence_id), pool, sequence_id))
        for sequence_id in range(start_id, start_id + count)
    ]


def _check_non_negative(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


# --- checking -------------------------------------------------------------------------------------


def check_constraints(seq: models.Sequence) -> list[str]:
    """Violations of the seven GUIDE §3 constraints, one human-readable line each; empty if none."""
    where = f"sequence {seq.sequence_id}"
    if not seq.routes:
        return [f"{where}: (5) has no flights; needs {FLIGHTS_PER_DAY[0]}-{FLIGHTS_PER_DAY[1]}"]
    problems = _check_first_gate(seq)
    for i, route in enumerate(seq.routes):
        problems += _check_route(i, route)
    for i in range(1, len(seq.routes)):
        problems += _check_turnaround(i, seq.routes[i - 1], seq.routes[i])
    problems += _check_day(seq)
    return [f"{where}: {problem}" for problem in problems]


def _check_first_gate(seq: models.Sequence) -> list[str]:
    """(1) first gate at home, 00:05-02:00."""
    problems = []
    first = seq.routes[0]
    if first.origin_iata != seq.home_airport_iata:
        problems.append(
            f"(1) routes[0].origin_iata {first.origin_iata} is not the home airport {seq.home_airport_iata}"
        )
    lo, hi = FIRST_GATE_OPEN_MIN
    if not lo - _EPS <= first.gate_open_min <= hi + _EPS:
        problems.append(
            f"(1) routes[0].estimated_gate_open_time {first.estimated_gate_open_time} "
            f"is not between {format_hms(lo)} and {format_hms(hi)}"
        )
    return problems


def _check_route(i: int, route: models.Route) -> list[str]:
    """(2) takeoff 80-110 min after gate open, (3) block time = haversine / 800 km/h, (7) no self-legs."""
    problems = []
    taxi = route.takeoff_min - route.gate_open_min
    lo, hi = TAKEOFF_AFTER_GATE_MIN
    if not lo - _EPS <= taxi <= hi + _EPS:
        problems.append(f"(2) routes[{i}] takes off {taxi:g} min after gate open; must be {lo}-{hi} min")
    if iata.is_known_iata(route.origin_iata) and iata.is_known_iata(route.destination_iata):
        expected = iata.flight_minutes(route.origin_iata, route.destination_iata)
        if abs(route.block_min - expected) > FLIGHT_TIME_TOLERANCE_MIN + _EPS:
            problems.append(
                f"(3) routes[{i}] {route.origin_iata}-{route.destination_iata} flies "
                f"{route.block_min:g} min; haversine at {iata.CRUISE_SPEED_KMH:g} km/h gives "
                f"{expected:.1f} min (tolerance {FLIGHT_TIME_TOLERANCE_MIN:g} min)"
            )
    else:
        problems.append(
            f"(3) routes[{i}] {route.origin_iata}-{route.destination_iata}: unknown airport, "
            "cannot compute the flight time"
        )
    if route.origin_iata == route.destination_iata:
        problems.append(f"(7) routes[{i}] flies from {route.origin_iata} to itself")
    return problems


def _check_turnaround(i: int, prev: models.Route, route: models.Route) -> list[str]:
    """(4) next gate 10-40 min after landing, (7) routes chain."""
    problems = []
    turnaround = route.gate_open_min - prev.arrival_min
    lo, hi = TURNAROUND_MIN
    if not lo - _EPS <= turnaround <= hi + _EPS:
        problems.append(
            f"(4) routes[{i}] gate opens {turnaround:g} min after routes[{i - 1}] lands; must be {lo}-{hi} min"
        )
    if prev.destination_iata != route.origin_iata:
        problems.append(
            f"(7) routes[{i}].origin_iata {route.origin_iata} does not continue from "
            f"routes[{i - 1}].destination_iata {prev.destination_iata}"
        )
    return problems


def _check_day(seq: models.Sequence) -> list[str]:
    """(5) 2-8 flights, (6) the last flight lands at home, after 16:00 and before 23:00."""
    problems = []
    lo, hi = FLIGHTS_PER_DAY
    if not lo <= len(seq.routes) <= hi:
        problems.append(f"(5) has {len(seq.routes)} flights; must be {lo}-{hi}")
    last = seq.routes[-1]
    if last.destination_iata != seq.home_airport_iata:
        problems.append(
            f"(6) last flight lands at {last.destination_iata}, not at the home airport {seq.home_airport_iata}"
        )
    if not LAST_ARRIVAL_AFTER_MIN < last.arrival_min < LAST_ARRIVAL_BEFORE_MIN:
        problems.append(
            f"(6) last flight lands at {last.estimated_arrival_time}; must be after "
            f"{format_hms(LAST_ARRIVAL_AFTER_MIN)} and before {format_hms(LAST_ARRIVAL_BEFORE_MIN)}"
        )
    return problems


# --- writing --------------------------------------------------------------------------------------


def sequence_json(seq: models.Sequence) -> str:
    """Seed-000 file text: indent 4, fields in contract order, trailing newline."""
    return json.dumps(seq.model_dump(mode="json"), indent=4) + "\n"


def write_sequences(sequences: Iterable[models.Sequence], out_dir: Path) -> list[Path]:
    """Write ``out_dir/<sequence_id>.json`` for each sequence, atomically (temp file + ``os.replace``)."""
    sequences = list(sequences)
    ids = [seq.sequence_id for seq in sequences]
    duplicates = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if duplicates:
        raise ValueError(f"duplicate sequence_id(s): {', '.join(map(str, duplicates))}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for seq in sequences:
        target = out_dir / f"{seq.sequence_id}.json"
        fd, tmp_name = tempfile.mkstemp(dir=out_dir, prefix=f".{seq.sequence_id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(sequence_json(seq))
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        written.append(target)
    return written
