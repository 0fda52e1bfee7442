"""A run's result files read back and compared: how every test checks that a run reproduced another's results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from jobgraph.bench.record import RECORD_NAME


def read_run(root: Path) -> dict[str, object]:
    """Every file of a run's result layout: parquet as DataFrames, JSON as dicts (not run.json: that is
    the record of how the run went, which differs between any two runs, not a result)."""
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        if path.relative_to(root).as_posix() == RECORD_NAME:
            continue
        if path.suffix == ".parquet":
            out[path.relative_to(root).as_posix()] = pd.read_parquet(path)
        elif path.suffix == ".json":
            out[path.relative_to(root).as_posix()] = json.loads(path.read_text())
    return out


def assert_same_run(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(value, b[key], check_exact=True)
        else:
            assert value == b[key], key
