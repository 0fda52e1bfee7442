"""parquet_codec writes the bytes pyarrow's table() would, and never imports pandas to do it."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobgraph.core import parquet_codec
from jobgraph.core.delay_model import RouteState
from jobgraph.core.errors import InvalidJobError


def written(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    return buffer.getvalue()


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_delays_are_the_bytes_pa_table_writes(dtype):
    rng = np.random.default_rng(5)
    departure = (rng.exponential(30, size=2 * 257) * 10).astype(dtype)[::2]  # not contiguous, maybe not float64
    arrival = (rng.normal(0, 20, size=257) * 10).astype(dtype)
    n = len(arrival)
    columns = [np.full(n, 12, dtype=np.int64), np.full(n, 3, dtype=np.int64), np.arange(n, dtype=np.int64),
               departure.astype(np.float64), arrival.astype(np.float64)]  # fmt: skip
    expected = written(pa.table(columns, schema=parquet_codec.DELAYS_SCHEMA))
    assert parquet_codec.encode_delays(12, 3, departure, arrival) == expected


def test_state_round_trips_bit_for_bit_and_is_the_bytes_pa_table_writes():
    rng = np.random.default_rng(9)
    state = RouteState(route_index=4, scheduled_arrival_min=812.25, arrival_delay=rng.normal(size=301),
                       total_departure_delay=rng.exponential(size=301))  # fmt: skip
    data = parquet_codec.encode_state(state)
    table = pa.table(
        {"arrival_delay_min": state.arrival_delay, "total_departure_delay_min": state.total_departure_delay}
    )
    assert data == written(
        table.replace_schema_metadata({b"jobgraph.route_index": "4", b"jobgraph.scheduled_arrival_min": "812.25"})
    )
    back = parquet_codec.decode_state(data)
    assert (back.route_index, back.scheduled_arrival_min) == (4, 812.25)
    assert back.arrival_delay.tobytes() == state.arrival_delay.tobytes()
    assert back.total_departure_delay.tobytes() == state.total_departure_delay.tobytes()
    back.arrival_delay[0] = 1.0  # the state's own copy, not a read-only view of the file


def test_a_state_file_with_missing_values_is_refused_by_name():
    table = pa.table({"arrival_delay_min": pa.array([1.0, None]), "total_departure_delay_min": [1.0, 2.0]})
    data = written(
        table.replace_schema_metadata({b"jobgraph.route_index": "0", b"jobgraph.scheduled_arrival_min": "1.0"})
    )
    with pytest.raises(InvalidJobError, match="float64 values without nulls"):
        parquet_codec.decode_state(data)


def test_the_processors_parquet_path_never_imports_pandas():
    """pandas is installed here (a dev dependency) but not in the Processor's layers: pa.table()/to_numpy()
    would import it anyway (0.2-0.3 s of a cold invocation)."""
    code = (
        "import sys, numpy as np\n"
        "from jobgraph.core import parquet_codec\n"
        "from jobgraph.core.delay_model import RouteState\n"
        "parquet_codec.encode_delays(1, 0, np.arange(9.0), np.arange(9.0))\n"
        "s = RouteState(route_index=0, scheduled_arrival_min=1.0, arrival_delay=np.ones(3), total_departure_delay=np.ones(3))\n"
        "parquet_codec.decode_state(parquet_codec.encode_state(s))\n"
        "print('pandas' in sys.modules)\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "False"
