"""Encodings of route delays and route state: Parquet for S3 objects (pyarrow only; pandas is not needed
to write), base64 float64 for a state carried in the messages (models.CarriedState)."""

from __future__ import annotations

import base64
import binascii
import io
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobgraph.core.delay_model import RouteState
from jobgraph.core.errors import InvalidJobError
from jobgraph.core.models import CarriedState

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


def _column(values: np.ndarray, dtype: type[np.generic]) -> pa.Array:
    """A column without nulls over the values' own memory (a copy only if they are not already ``dtype``).

    Not ``pa.table()``/``pa.array()``: they first ask whether their input is a pandas object, which imports
    pandas wherever it is installed (0.2-0.3 s of a cold Processor's first invocation, for nothing)."""
    data = np.ascontiguousarray(values, dtype=dtype)
    return pa.Array.from_buffers(pa.from_numpy_dtype(data.dtype), len(data), [None, pa.py_buffer(data)])


def encode_delays(sequence_id: int, route_index: int, departure: np.ndarray, arrival: np.ndarray) -> bytes:
    n = departure.shape[0]
    columns = [
        _column(np.full(n, sequence_id), np.int64),
        _column(np.full(n, route_index), np.int64),
        _column(np.arange(n), np.int64),
        _column(departure, np.float64),
        _column(arrival, np.float64),
    ]
    return _to_bytes(pa.Table.from_arrays(columns, schema=DELAYS_SCHEMA))


def decode_delays(data: bytes) -> pd.DataFrame:
    """Delays as a pandas DataFrame (pandas imported here only)."""
    return pq.read_table(io.BytesIO(data)).to_pandas()


def encode_state(state: RouteState) -> bytes:
    table = pa.Table.from_arrays(
        [_column(state.arrival_delay, np.float64), _column(state.total_departure_delay, np.float64)],
        names=["arrival_delay_min", "total_departure_delay_min"],
    ).replace_schema_metadata(
        {_STATE_META[0]: str(state.route_index), _STATE_META[1]: repr(state.scheduled_arrival_min)}
    )
    return _to_bytes(table)


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """A float64 column's values, copied from its buffers (``to_numpy()`` goes through pandas where installed)."""
    if column.type != pa.float64() or column.null_count:
        raise InvalidJobError(
            f"state: expected float64 values without nulls, got {column.type} ({column.null_count} null)"
        )
    parts = [np.frombuffer(c.buffers()[1], dtype=np.float64, count=len(c), offset=c.offset * 8) for c in column.chunks]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)


def decode_state(data: bytes) -> RouteState:
    table = pq.ParquetFile(io.BytesIO(data)).read()  # not read_table: its pyarrow.dataset imports pandas
    meta = table.schema.metadata or {}
    return RouteState(
        route_index=int(meta[_STATE_META[0]]),
        scheduled_arrival_min=float(meta[_STATE_META[1]]),
        arrival_delay=_floats(table.column("arrival_delay_min")),
        total_departure_delay=_floats(table.column("total_departure_delay_min")),
    )


def _f64(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode("ascii")


def _from_f64(text: str, scenarios: int, name: str) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidJobError(f"state.{name}: not base64") from None
    if len(raw) != 8 * scenarios:
        raise InvalidJobError(f"state.{name}: {len(raw) // 8} values for {scenarios} scenarios")
    return np.frombuffer(raw, dtype="<f8").astype(np.float64)


def carry_state(state: RouteState) -> CarriedState:
    """The state as it travels in a message: bit-exact float64 (the next route computes the same numbers)."""
    return CarriedState(
        route_index=state.route_index,
        scheduled_arrival_min=state.scheduled_arrival_min,
        arrival_delay=_f64(state.arrival_delay),
        total_departure_delay=_f64(state.total_departure_delay),
    )


def uncarry_state(carried: CarriedState, scenarios: int) -> RouteState:
    """The RouteState of a message's state; InvalidJobError if its arrays do not hold ``scenarios`` values."""
    return RouteState(
        route_index=carried.route_index,
        scheduled_arrival_min=carried.scheduled_arrival_min,
        arrival_delay=_from_f64(carried.arrival_delay, scenarios, "arrival_delay"),
        total_departure_delay=_from_f64(carried.total_departure_delay, scenarios, "total_departure_delay"),
    )
