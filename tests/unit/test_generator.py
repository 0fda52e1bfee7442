"""Sequence generator (GUIDE §3): every generated day obeys the seven constraints, reproducibly.

The constraints are re-checked here independently of ``generator.check_constraints``: times are parsed
from the written JSON and flight times recomputed from ``airportsdata`` coordinates with a local haversine.
"""

from __future__ import annotations

import json
import math
import re
from itertools import pairwise
from pathlib import Path

import airportsdata
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobgraph.core import generator, models
from jobgraph.core.airports import DEFAULT_AIRPORT_POOL

AIRPORTS = airportsdata.load("IATA")
# Generated block times are rounded to the minute (≤ 30 s off); a few hundredths cover the Earth-radius
# convention and float noise. Must stay ≤ 1 min (GUIDE §3.3 tolerance agreed for the generator).
BLOCK_TOLERANCE_MIN = 0.52


# --- independent checker --------------------------------------------------------------------------


def minutes(hms: str) -> float:
    h, m, s = (int(part) for part in hms.split(":"))
    return h * 60 + m + s / 60


def haversine_minutes(a: str, b: str) -> float:
    lat1, lon1, lat2, lon2 = (
        math.radians(v) for v in (AIRPORTS[a]["lat"], AIRPORTS[a]["lon"], AIRPORTS[b]["lat"], AIRPORTS[b]["lon"])
    )
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    km = 2 * 6371.0 * math.asin(math.sqrt(h))
    return km / 800 * 60


def independent_violations(day: dict) -> set[int]:
    """Numbers of the GUIDE §3 constraints that ``day`` (a sequence as JSON dict) breaks."""
    broken: set[int] = set()
    routes = day["routes"]
    home = day["home_airport_iata"]
    if routes[0]["origin_iata"] != home or not 5 <= minutes(routes[0]["estimated_gate_open_time"]) <= 120:
        broken.add(1)
    for r in routes:
        gate, takeoff, arrival = (
            minutes(r[k]) for k in ("estimated_gate_open_time", "estimated_takeoff_time", "estimated_arrival_time")
        )
        if not 80 <= takeoff - gate <= 110:
            broken.add(2)
        if abs((arrival - takeoff) - haversine_minutes(r["origin_iata"], r["destination_iata"])) > BLOCK_TOLERANCE_MIN:
            broken.add(3)
        if r["origin_iata"] == r["destination_iata"]:
            broken.add(7)
    for prev, nxt in pairwise(routes):
        if not 10 <= minutes(nxt["estimated_gate_open_time"]) - minutes(prev["estimated_arrival_time"]) <= 40:
            broken.add(4)
        if prev["destination_iata"] != nxt["origin_iata"]:
            broken.add(7)
    if not 2 <= len(routes) <= 8:
        broken.add(5)
    last_arrival = minutes(routes[-1]["estimated_arrival_time"])
    if routes[-1]["destination_iata"] != home or not 16 * 60 < last_arrival < 23 * 60:
        broken.add(6)
    return broken


def as_dict(seq: models.Sequence) -> dict:
    return json.loads(generator.sequence_json(seq))


# --- every generated day is valid -----------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), start_id=st.integers(0, 10_000))
def test_every_generated_sequence_satisfies_all_seven_constraints(seed: int, start_id: int) -> None:
    # Given any seed and id range / When generating a batch
    sequences = generator.generate_sequences(count=8, seed=seed, start_id=start_id)
    # Then each day passes the independent check and the generator's own check
    for seq in sequences:
        assert independent_violations(as_dict(seq)) == set(), generator.sequence_json(seq)
        assert generator.check_constraints(seq) == []
        assert set(models.Sequence.model_validate(as_dict(seq)).model_dump()) == {
            "sequence_id",
            "home_airport_iata",
            "routes",
        }


def test_two_hundred_sequences_for_seed_7_are_all_valid() -> None:
    sequences = generator.generate_sequences(count=200, seed=7)

    assert [s.sequence_id for s in sequences] == list(range(200))
    assert all(independent_violations(as_dict(s)) == set() for s in sequences)
    assert all(generator.check_constraints(s) == [] for s in sequences)
    assert {s.home_airport_iata for s in sequences} <= set(DEFAULT_AIRPORT_POOL)
    assert len({len(s.routes) for s in sequences}) >= 3  # days of different lengths, not one template


@pytest.mark.parametrize(
    "pool",
    [
        ["LHR", "LGW"],  # 3-minute hops: needs many legs, only even counts are possible
        ["LHR", "JFK"],  # transatlantic: only two legs fit
        ["DUB", "LHR", "CDG"],
        ["JFK", "LAX", "ORD", "ATL", "DFW", "SEA", "MIA", "BOS"],
    ],
)
def test_custom_airport_pool_is_honoured_and_still_valid(pool: list[str]) -> None:
    sequences = generator.generate_sequences(count=40, seed=3, airports=pool)

    for seq in sequences:
        visited = {seq.home_airport_iata} | {code for r in seq.routes for code in (r.origin_iata, r.destination_iata)}
        assert visited <= set(pool)
        assert independent_violations(as_dict(seq)) == set()


def test_pool_is_deduplicated_and_normalised() -> None:
    a = generator.generate_sequences(count=5, seed=11, airports=["dub", "LHR ", "DUB", "CDG", "LHR"])
    b = generator.generate_sequences(count=5, seed=11, airports=["DUB", "LHR", "CDG"])
    assert a == b


@pytest.mark.parametrize(
    ("pool", "named"),
    [
        (["DUB", "QQQ", "LHR", "ZZX"], ["QQQ", "ZZX"]),
        (["DUB"], ["at least 2"]),
        (["DUB", "DUB"], ["at least 2"]),
        ("DUB,LHR", ["DUB,LHR"]),
    ],
)
def test_bad_airport_pool_raises_value_error_naming_the_problem(pool, named: list[str]) -> None:
    with pytest.raises(ValueError) as excinfo:
        generator.generate_sequences(count=1, seed=0, airports=pool)
    for text in named:
        assert text in str(excinfo.value)


def test_pool_that_cannot_return_home_in_time_raises_clear_value_error() -> None:
    # LHR-SYD is ~21 h at 800 km/h: no day can fly there and back
    with pytest.raises(ValueError, match="16:00 and 23:00"):
        generator.generate_sequences(count=1, seed=0, airports=["LHR", "SYD"])


@pytest.mark.parametrize("kwargs", [{"count": -1}, {"seed": -5}, {"start_id": -1}])
def test_negative_arguments_are_rejected(kwargs: dict) -> None:
    args = {"count": 1, "seed": 0, "start_id": 0} | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        generator.generate_sequences(**args)


# --- reproducibility ------------------------------------------------------------------------------


def test_same_seed_writes_byte_identical_files_and_other_seeds_differ(tmp_path: Path) -> None:
    # Given two runs with the same seed and one with another seed
    first = generator.write_sequences(generator.generate_sequences(10, seed=2026), tmp_path / "a")
    again = generator.write_sequences(generator.generate_sequences(10, seed=2026), tmp_path / "b")
    other = generator.write_sequences(generator.generate_sequences(10, seed=2027), tmp_path / "c")
    # Then the same seed gives the same bytes, file by file, and another seed does not
    assert [p.name for p in first] == [p.name for p in again] == [f"{i}.json" for i in range(10)]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert sum(a.read_bytes() != c.read_bytes() for a, c in zip(first, other, strict=True)) >= 9


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), index=st.integers(0, 4))
def test_sequence_k_does_not_depend_on_count_or_start_id(seed: int, index: int) -> None:
    batch = generator.generate_sequences(count=5, seed=seed, start_id=0)
    alone = generator.generate_sequences(count=1, seed=seed, start_id=index)
    tail = generator.generate_sequences(count=5 - index, seed=seed, start_id=index)

    assert batch[index] == alone[0] == tail[0]
    assert generator.generate_sequence(index, seed=seed) == batch[index]


# --- writing --------------------------------------------------------------------------------------


def test_write_sequences_uses_seed_000_format_atomically(tmp_path: Path) -> None:
    sequences = generator.generate_sequences(3, seed=1, start_id=40)
    out_dir = tmp_path / "nested" / "sequences"

    paths = generator.write_sequences(sequences, out_dir)

    assert paths == [out_dir / f"{i}.json" for i in (40, 41, 42)]
    assert sorted(p.name for p in out_dir.iterdir()) == ["40.json", "41.json", "42.json"]  # no temp files left
    text = paths[0].read_text()
    day = json.loads(text)
    assert list(day) == ["sequence_id", "home_airport_iata", "routes"]
    assert list(day["routes"][0]) == [
        "origin_iata",
        "destination_iata",
        "estimated_gate_open_time",
        "estimated_takeoff_time",
        "estimated_arrival_time",
    ]
    assert text == json.dumps(day, indent=4) + "\n"
    assert models.Sequence.model_validate_json(text) == sequences[0]


def test_write_sequences_overwrites_and_rejects_duplicate_ids(tmp_path: Path) -> None:
    generator.write_sequences(generator.generate_sequences(1, seed=1), tmp_path)
    generator.write_sequences(generator.generate_sequences(1, seed=2), tmp_path)
    assert (
        models.Sequence.model_validate_json((tmp_path / "0.json").read_text())
        == (generator.generate_sequences(1, seed=2)[0])
    )

    twice = generator.generate_sequences(1, seed=1) * 2
    with pytest.raises(ValueError, match="duplicate sequence_id"):
        generator.write_sequences(twice, tmp_path / "dup")


# --- check_constraints on hand-made days ----------------------------------------------------------


def hhmm(total: float) -> str:
    total = round(total)
    return f"{total // 60:02d}:{total % 60:02d}:00"


def make_day(
    stops: list[str],
    *,
    home: str | None = None,
    first_gate: int = 60,
    taxi: list[int] | None = None,
    turn: list[int] | None = None,
    block_extra: list[int] | None = None,
    origins: dict[int, str] | None = None,
) -> models.Sequence:
    """A day over ``stops`` with whole-minute times; bypasses model validation so broken days can be built."""
    legs = len(stops) - 1
    taxi = taxi or [95] * legs
    turn = turn or [25] * (legs - 1)
    block_extra = block_extra or [0] * legs
    origins = origins or {}
    routes, clock = [], first_gate
    for i, (origin, destination) in enumerate(pairwise(stops)):
        takeoff = clock + taxi[i]
        arrival = takeoff + round(haversine_minutes(origin, destination)) + block_extra[i]
        routes.append(
            models.Route.model_construct(
                origin_iata=origins.get(i, origin),
                destination_iata=destination,
                estimated_gate_open_time=hhmm(clock),
                estimated_takeoff_time=hhmm(takeoff),
                estimated_arrival_time=hhmm(arrival),
            )
        )
        if i < legs - 1:
            clock = arrival + turn[i]
    return models.Sequence.model_construct(sequence_id=99, home_airport_iata=home or stops[0], routes=routes)


BASE = ["DUB", "ATH", "LIS", "MAD", "DUB"]  # ~9.5 h in the air; with default ground times lands ~18:10
NINE_HOPS = ["DUB", "LHR", "CDG", "DUB", "LHR", "DUB", "LHR", "DUB", "LHR", "DUB"]  # short hops, lands ~21:50


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        pytest.param(make_day(BASE), set(), id="valid"),
        pytest.param(make_day(BASE, first_gate=3), {1}, id="1-gate-too-early"),
        pytest.param(make_day(BASE, first_gate=125), {1}, id="1-gate-too-late"),
        pytest.param(make_day(BASE, home="LIS"), {1, 6}, id="1-6-not-from-home"),
        pytest.param(make_day(BASE, taxi=[95, 75, 95, 95]), {2}, id="2-taxi-short"),
        pytest.param(make_day(BASE, taxi=[95, 95, 95, 111]), {2}, id="2-taxi-long"),
        pytest.param(make_day(BASE, block_extra=[0, 2, 0, 0]), {3}, id="3-block-off"),
        pytest.param(make_day(BASE, turn=[25, 5, 25]), {4}, id="4-turn-short"),
        pytest.param(make_day(BASE, turn=[41, 25, 25]), {4}, id="4-turn-long"),
        pytest.param(make_day(["DUB", "ATH"]), {5, 6}, id="5-one-flight"),
        pytest.param(make_day(NINE_HOPS, first_gate=100, taxi=[90] * 9, turn=[10] * 8), {5}, id="5-nine"),
        pytest.param(make_day(BASE[:-1]), {6}, id="6-ends-away"),
        pytest.param(make_day(BASE, first_gate=5, taxi=[80] * 4, turn=[10] * 3), {6}, id="6-lands-early"),
        pytest.param(
            make_day(BASE, first_gate=120, taxi=[110] * 4, turn=[40] * 3),
            set(),
            id="all-ground-times-at-maximum-still-valid",
        ),
        pytest.param(make_day(["DUB", "ATH", "ATH", "LIS", "MAD", "DUB"]), {7}, id="7-self-leg"),
        pytest.param(make_day(BASE, origins={2: "FCO"}), {3, 7}, id="7-chain-break"),
    ],
)
def test_check_constraints_reports_each_violated_constraint(day: models.Sequence, expected: set[int]) -> None:
    # The independent checker agrees on which constraints the hand-made day breaks ...
    assert independent_violations(day.model_dump()) == expected
    # ... and check_constraints names exactly those, tagged "(n)", with the sequence id
    problems = generator.check_constraints(day)
    assert {int(n) for p in problems for n in re.findall(r"\((\d)\)", p)} == expected
    assert all(p.startswith("sequence 99: ") for p in problems)


def test_check_constraints_treats_16_00_and_23_00_as_outside() -> None:
    day = make_day(BASE)
    last = day.routes[-1]
    for boundary in ("16:00:00", "23:00:00"):
        bent = models.Sequence.model_construct(
            sequence_id=1,
            home_airport_iata="DUB",
            routes=[*day.routes[:-1], last.model_copy(update={"estimated_arrival_time": boundary})],
        )
        assert any(p.startswith("sequence 1: (6)") for p in generator.check_constraints(bent))
