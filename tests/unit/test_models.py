"""Sequence and message contracts (GUIDE §2, §6): every bad-input case gives a named, readable error."""

from __future__ import annotations

import copy
import json

import pytest
from pydantic import ValidationError

from jobgraph.core.errors import InvalidSequenceError
from jobgraph.core.loader import load_sequences, parse_sequence
from jobgraph.core.models import CompletedJob, ExecType, IncomingJob, Sequence, exec_type_for


def problems_of(document: dict) -> list[str]:
    with pytest.raises(InvalidSequenceError) as caught:
        parse_sequence(document, "bad.json")
    assert caught.value.source == "bad.json"
    return caught.value.problems


def test_seed_000_example_is_valid(seed_000_sequence):
    sequence = Sequence.model_validate(seed_000_sequence)
    assert sequence.routes[1].block_min == pytest.approx(125.0)
    assert [sequence.exec_type(i) for i in range(2)] == [ExecType.FIRST, ExecType.LAST]


def test_unknown_iata_code_is_named(seed_000_sequence):
    seed_000_sequence["routes"][1]["destination_iata"] = "ZZZ"
    seed_000_sequence["routes"].append(
        {**seed_000_sequence["routes"][1], "origin_iata": "ZZZ", "destination_iata": "DUB"}
    )
    seed_000_sequence["routes"][2].update(
        estimated_gate_open_time="08:00:00", estimated_takeoff_time="09:30:00", estimated_arrival_time="11:00:00"
    )
    problems = problems_of(seed_000_sequence)
    assert any("routes[1].destination_iata: unknown IATA airport code 'ZZZ'" in p for p in problems)
    assert any("routes[2].origin_iata: unknown IATA airport code 'ZZZ'" in p for p in problems)
    assert all(p.startswith("sequence 0: ") for p in problems)


def test_unknown_home_airport(seed_000_sequence):
    seed_000_sequence["home_airport_iata"] = "QQQ"
    assert problems_of(seed_000_sequence) == ["sequence 0: home_airport_iata: unknown IATA airport code 'QQQ'"]


def test_routes_that_do_not_chain(seed_000_sequence):
    seed_000_sequence["routes"][1]["origin_iata"] = "ARN"
    (problem,) = problems_of(seed_000_sequence)
    assert "routes[1].origin_iata: ARN does not continue from routes[0].destination_iata OSL" in problem


@pytest.mark.parametrize(
    ("route_index", "changes", "expected"),
    [
        (0, {"estimated_takeoff_time": "00:20:00"}, "estimated_takeoff_time 00:20:00 is before estimated_gate_open"),
        (0, {"estimated_arrival_time": "02:04:00"}, "estimated_arrival_time 02:04:00 is not after"),
        (
            1,
            {"estimated_gate_open_time": "03:30:00"},
            "routes[1].estimated_gate_open_time: 03:30:00 is before routes[0]",
        ),
    ],
)
def test_times_not_increasing(seed_000_sequence, route_index, changes, expected):
    seed_000_sequence["routes"][route_index].update(changes)
    problems = problems_of(seed_000_sequence)
    assert any(expected in p for p in problems), problems


def test_empty_routes(seed_000_sequence):
    seed_000_sequence["routes"] = []
    (problem,) = problems_of(seed_000_sequence)
    assert problem.startswith("sequence 0: routes: ")
    assert "at least 1" in problem


@pytest.mark.parametrize("bad_time", ["2:04", "25:00:00", "12:60:00", "noon", ""])
def test_malformed_time(seed_000_sequence, bad_time):
    seed_000_sequence["routes"][0]["estimated_takeoff_time"] = bad_time
    problems = problems_of(seed_000_sequence)
    assert any(p.startswith("sequence 0: routes[0].estimated_takeoff_time: ") and repr(bad_time) in p for p in problems)


def test_self_loop_route(seed_000_sequence):
    seed_000_sequence["routes"][0]["destination_iata"] = "DUB"
    problems = problems_of(seed_000_sequence)
    assert any("origin_iata and destination_iata are both DUB" in p for p in problems)


def test_missing_and_unknown_fields(seed_000_sequence):
    del seed_000_sequence["routes"][0]["estimated_arrival_time"]
    seed_000_sequence["tail_number"] = "EI-ABC"
    problems = problems_of(seed_000_sequence)
    assert "sequence 0: routes[0].estimated_arrival_time: required field is missing" in problems
    assert "sequence 0: tail_number: unknown field" in problems


def test_not_an_object():
    assert problems_of([1, 2]) == ["expected a JSON object, got list"]


def test_loader_reports_every_file_and_duplicates(tmp_path, seed_000_sequence):
    (tmp_path / "0.json").write_text(json.dumps(seed_000_sequence))
    (tmp_path / "1.json").write_text(json.dumps(seed_000_sequence))  # duplicate sequence_id 0
    (tmp_path / "2.json").write_text("{ not json")
    broken = copy.deepcopy(seed_000_sequence)
    broken["sequence_id"] = 3
    broken["routes"][0]["origin_iata"] = "XXX"
    (tmp_path / "3.json").write_text(json.dumps(broken))
    with pytest.raises(InvalidSequenceError) as caught:
        load_sequences(tmp_path)
    problems = caught.value.problems
    assert any(p.startswith(f"{tmp_path / '2.json'}: not valid JSON") and "line 1 column 3" in p for p in problems)
    assert any(p.startswith(f"{tmp_path / '3.json'}: sequence 3: routes[0].origin_iata") for p in problems)
    assert any(p.startswith(f"{tmp_path / '1.json'}: sequence 0: sequence_id: duplicate of") for p in problems)
    assert len(problems) == 3


def test_loader_empty_folder(tmp_path):
    with pytest.raises(InvalidSequenceError, match=r"no \*\.json sequence files"):
        load_sequences(tmp_path)


def test_exec_type_for_one_route_sequence_is_first():
    assert exec_type_for(0, 1) is ExecType.FIRST
    assert [exec_type_for(i, 4) for i in range(4)] == ["FIRST", "INTERMEDIATE", "INTERMEDIATE", "LAST"]
    with pytest.raises(ValueError, match="outside"):
        exec_type_for(4, 4)


def _route_job(**overrides) -> dict:
    job = {
        "job_id": "r1-s0-r1",
        "run_id": "r1",
        "test_run_id": "t",
        "correlation_id": "r1-s0",
        "sequence_id": 0,
        "exec_type": "LAST",
        "route_index": 1,
        "total_routes": 2,
        "route": {
            "origin_iata": "OSL",
            "destination_iata": "DME",
            "estimated_gate_open_time": "03:55:00",
            "estimated_takeoff_time": "05:28:00",
            "estimated_arrival_time": "07:33:00",
        },
        "scenarios": 100,
        "seed": 1,
    }
    job.update(overrides)
    return job


def test_incoming_job_shape_is_checked_against_exec_type():
    assert IncomingJob.model_validate(_route_job()).exec_type is ExecType.LAST
    with pytest.raises(ValidationError, match="does not match route_index 1 of 3 routes"):
        IncomingJob.model_validate(_route_job(total_routes=3))
    with pytest.raises(ValidationError, match="lacks route"):
        IncomingJob.model_validate(_route_job(route=None))
    with pytest.raises(ValidationError, match="scenarios"):
        IncomingJob.model_validate(_route_job(scenarios=0))
    with pytest.raises(ValidationError, match="run_id"):
        IncomingJob.model_validate(_route_job(run_id="../etc"))


def test_completed_job_round_trips():
    completed = CompletedJob(
        job_id="r1-merge", status="completed", processing_time_ms=3.5, test_run_id="t", run_id="r1",
        correlation_id="r1-merge", exec_type="MERGE", output_key="r1/merged_percentiles.json",
    )  # fmt: skip
    assert CompletedJob.model_validate_json(completed.model_dump_json()) == completed
    assert completed.completed_at.endswith("Z")
