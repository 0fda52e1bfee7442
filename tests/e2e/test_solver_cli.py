"""The reference solver and the CLI end to end: layout, determinism, merge accuracy, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobgraph.cli.main import main
from tests.conftest import THREE_ROUTES
from tests.processes import jobgraph_cli
from tests.run_files import assert_same_run, read_run

EXAMPLES = Path(__file__).resolve().parents[2] / "sequences"


def write_sequences(folder: Path, sequences: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for sequence in sequences:
        (folder / f"{sequence['sequence_id']}.json").write_text(json.dumps(sequence))
    return folder


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("generated")
    result = jobgraph_cli("generate", "--count", "12", "--seed", "3", "--out", str(folder))
    assert result.returncode == 0, result.stderr
    assert "wrote 12 sequences" in result.stdout
    return folder


def test_solve_writes_the_layout_and_a_summary(generated, tmp_path):
    result = jobgraph_cli(
        "solve", "--sequences", str(generated), "--run-id", "r1", "--out", str(tmp_path), "--scenarios", "200"
    )
    assert result.returncode == 0, result.stderr
    assert "run r1: 12 sequences" in result.stdout and "routes/s" in result.stdout
    sequences = [json.loads(p.read_text()) for p in generated.glob("*.json")]
    routes = sum(len(s["routes"]) for s in sequences)
    run = tmp_path / "r1"
    assert len(list((run / "delays").glob("*.parquet"))) == routes
    assert sorted(p.name for p in (run / "percentiles").iterdir()) == sorted(
        f"{s['sequence_id']}.json" for s in sequences
    )
    assert (run / "merged_percentiles.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["r1"]  # no staging or state left behind
    frame = pd.read_parquet(next((run / "delays").glob("*.parquet")))
    assert len(frame) == 200 and frame["scenario_id"].tolist() == list(range(200))
    per_sequence = json.loads((run / "percentiles" / f"{sequences[0]['sequence_id']}.json").read_text())
    for field in ("run_id", "sequence_id", "scenarios", "routes", "curfew_breach_probability"):
        assert field in per_sequence
    assert set(per_sequence["final_arrival_delay_min"]) == {"p50", "p75", "p90", "p95", "p99", "mean", "max"}


def test_same_input_twice_gives_identical_results(generated, tmp_path):
    for out in ("a", "b"):
        assert main(["solve", "--sequences", str(generated), "--run-id", "same", "--out", str(tmp_path / out),
                     "--scenarios", "300", "--seed", "9", "--no-progress"]) == 0  # fmt: skip
    assert_same_run(read_run(tmp_path / "a" / "same"), read_run(tmp_path / "b" / "same"))
    assert main(["solve", "--sequences", str(generated), "--run-id", "same", "--out", str(tmp_path / "c"),
                 "--scenarios", "300", "--seed", "10", "--no-progress"]) == 0  # fmt: skip
    other = read_run(tmp_path / "c" / "same")
    assert other["merged_percentiles.json"] != read_run(tmp_path / "a" / "same")["merged_percentiles.json"]


def test_merged_percentiles_match_numpy_over_pooled_samples(generated, tmp_path):
    assert (
        main(["solve", "--sequences", str(generated), "--run-id", "acc", "--out", str(tmp_path), "--no-progress"]) == 0
    )
    run = tmp_path / "acc"
    merged = json.loads((run / "merged_percentiles.json").read_text())
    frames = pd.concat([pd.read_parquet(p) for p in (run / "delays").glob("*.parquet")])
    last = frames[frames["route_index"] == frames.groupby("sequence_id")["route_index"].transform("max")]
    pooled = {
        "final_arrival_delay_min": last["arrival_delay_min"].to_numpy(),
        "total_departure_delay_min": frames.groupby(["sequence_id", "scenario_id"])["departure_delay_min"]
        .sum()
        .to_numpy(),
    }
    assert merged["sequences"] == 12 and merged["scenarios_per_sequence"] == 1000 and merged["samples"] == 12_000
    for name, samples in pooled.items():
        for q in (50, 75, 90, 95, 99):
            exact = float(np.percentile(samples, q))
            assert abs(merged[name][f"p{q}"] - exact) <= max(0.5, 0.01 * abs(exact)), (name, q)
        assert merged[name]["mean"] == pytest.approx(samples.mean(), rel=1e-9)
        assert merged[name]["max"] == pytest.approx(samples.max(), rel=1e-12)
    sequences = {int(p.stem): json.loads(p.read_text()) for p in generated.glob("*.json")}
    arrival = np.concatenate([
        np.full(1000, 60 * int(s["routes"][-1]["estimated_arrival_time"][:2]) + int(s["routes"][-1]["estimated_arrival_time"][3:5]))
        for s in sorted(sequences.values(), key=lambda s: s["sequence_id"])
    ])  # fmt: skip
    ordered = last.sort_values(["sequence_id", "scenario_id"])["arrival_delay_min"].to_numpy()
    assert merged["curfew_breach_probability"] == pytest.approx(np.mean(arrival + ordered > 23 * 60))


def test_one_route_sequence_is_solved(tmp_path, seed_000_sequence):
    seed_000_sequence["routes"] = seed_000_sequence["routes"][:1]
    folder = write_sequences(tmp_path / "in", [seed_000_sequence, {**THREE_ROUTES}])
    assert (
        main(["solve", "--sequences", str(folder), "--run-id", "one", "--out", str(tmp_path / "out"), "--no-progress"])
        == 0
    )
    merged = json.loads((tmp_path / "out" / "one" / "merged_percentiles.json").read_text())
    assert merged["sequences"] == 2
    assert len(list((tmp_path / "out" / "one" / "delays").iterdir())) == 4


def test_bad_sequence_files_fail_cleanly_and_write_nothing(tmp_path, seed_000_sequence):
    bad = {**seed_000_sequence, "sequence_id": 1}
    bad["routes"] = [dict(r) for r in bad["routes"]]
    bad["routes"][1]["estimated_takeoff_time"] = "5:28"
    folder = write_sequences(tmp_path / "in", [seed_000_sequence, bad])
    result = jobgraph_cli("solve", "--sequences", str(folder), "--run-id", "bad", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert (
        line
        == f"error: {folder / '1.json'}: sequence 1: routes[1].estimated_takeoff_time: '5:28' is not a time of the form HH:MM:SS"
    )
    assert not (tmp_path / "out").exists()


def test_existing_run_is_not_overwritten_silently(tmp_path, seed_000_sequence):
    folder = write_sequences(tmp_path / "in", [seed_000_sequence])
    args = ["solve", "--sequences", str(folder), "--run-id", "x", "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 0
    result = jobgraph_cli(*args)
    assert result.returncode == 1 and "already exists" in result.stderr and "--overwrite" in result.stderr
    assert main([*args, "--overwrite"]) == 0


def test_generate_is_reproducible(tmp_path):
    for out in ("a", "b"):
        assert main(["generate", "--count", "200", "--seed", "7", "--out", str(tmp_path / out)]) == 0
    files_a = sorted((tmp_path / "a").iterdir())
    assert len(files_a) == 200
    assert all(f.read_bytes() == (tmp_path / "b" / f.name).read_bytes() for f in files_a)
    result = jobgraph_cli("validate", "--sequences", str(tmp_path / "a"), "--strict-generator")
    assert result.returncode == 0 and "200 sequences" in result.stdout, result.stderr


def test_generate_rejects_unknown_airports(tmp_path):
    result = jobgraph_cli(
        "generate", "--count", "2", "--seed", "1", "--out", str(tmp_path), "--airports", "DUB,QQQ,LHR"
    )
    assert result.returncode == 1 and "QQQ" in result.stderr and "Traceback" not in result.stderr


def test_bad_cli_arguments_are_named():
    result = jobgraph_cli("solve", "--run-id", "../up", "--scenarios", "5")
    assert result.returncode == 2 and "--run-id" in result.stderr


def test_example_sequences_are_valid():
    result = jobgraph_cli("validate", "--sequences", str(EXAMPLES), "--strict-generator")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("20 sequences")
