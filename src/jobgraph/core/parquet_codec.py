"""Parquet encoding of route delays and route state (pyarrow only; pandas is not needed to write)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobgraph.core.delay_model import RouteState

if TYPE_CHECKING:
    import pandas as pd

DELAYS_SCHEMA = pa.schema(
    [
        ("sequence_id", pa.int64()),
        ("route_index", pa.int64()),
        ("scenario_id", pa.int64()),
        ("departure_delay_min", pa.float64()),
        ("arrival_delay_min", pa.float64()),
    ]
)
_STATE_META = (b"jobgraph.route_index", b"jobgraph.scheduled_arrival_min")


def _to_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    return buffer.getvalue()


def encode_delays(sequence_id: int, route_index: int, departure: np.ndarray, arrival: np.ndarray) -> bytes:
    n = departure.shape[0]
    table = pa.table(
        [
            np.full(n, sequence_id, dtype=np.int64),
            np.full(n, route_index, dtype=np.int64),
            np.arange(n, dtype=np.int64),
            departure.astype(np.float64, copy=False),
            arrival.astype(np.float64, copy=False),
        ],
        schema=DELAYS_SCHEMA,
    )
    return _to_bytes(table)


def decode_delays(data: bytes) -> pd.DataFrame:
    """Delays as a pandas DataFrame (pandas imported here only)."""
    return pq.read_table(io.BytesIO(data)).to_pandas()


def encode_state(state: RouteState) -> bytes:
    table = pa.table(
        {
            "arrival_delay_min": state.arrival_delay.astype(np.float64, copy=False),
            "total_departure_delay_min": state.total_departure_delay.astype(np.float64, copy=False),
        }
    ).replace_schema_metadata(
        {_STATE_META[0]: str(state.route_index), _STATE_META[1]: repr(state.scheduled_arrival_min)}
    )
    return _to_bytes(table)


def decode_state(data: bytes) -> RouteState:
    table = pq.read_table(io.BytesIO(data))
    meta = table.schema.metadata or {}
    return RouteState(
        route_index=int(meta[_STATE_META[0]]),
        scheduled_arrival_min=float(meta[_STATE_META[1]]),
        arrival_delay=table.column("arrival_delay_min").to_numpy(),
        total_departure_delay=table.column("total_departure_delay_min").to_numpy(),
    )
