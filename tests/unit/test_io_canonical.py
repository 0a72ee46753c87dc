"""Canonical Parquet is a fixed point: a snapshot's bytes, read back, serialise to themselves."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from refit.io.tables import canonical_parquet_bytes

TIMES = [dt.datetime(2026, 1, 1, 0, 0, 1), None, dt.datetime(2026, 1, 2, 12, 30, 59)]


def _reread(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))


@pytest.mark.parametrize(
    "kind",
    [
        pa.timestamp("s"),
        pa.timestamp("s", tz="Europe/Paris"),
        pa.timestamp("ms"),
        pa.timestamp("us", tz="UTC"),
        pa.timestamp("ns"),
    ],
)
def test_timestamps_of_every_unit_round_trip_to_the_same_bytes(kind) -> None:
    table = pa.table({"t": pa.array(TIMES, pa.timestamp("s")).cast(kind), "x": [1, 2, 3]})
    data = canonical_parquet_bytes(table)
    again = _reread(data)
    assert canonical_parquet_bytes(again) == data
    assert again.column("t").cast(kind).equals(table.column("t"))  # no value changed


def test_second_resolution_times_of_day_round_trip_to_the_same_bytes() -> None:
    table = pa.table({"clock": pa.array([1, 59, 86399], pa.time32("s"))})
    data = canonical_parquet_bytes(table)
    assert canonical_parquet_bytes(_reread(data)) == data
    assert _reread(data).column("clock").cast(pa.time32("s")).equals(table.column("clock"))


def test_a_csv_window_and_its_parquet_copy_get_one_hash(tmp_path) -> None:
    table = pa.table({"event_time": pa.array(TIMES, pa.timestamp("s")), "y": [0, 1, 0]})
    csv = tmp_path / "w.csv"
    pacsv.write_csv(table, csv)
    from_csv = pacsv.read_csv(csv)
    assert from_csv.schema.field("event_time").type == pa.timestamp("s")
    data = canonical_parquet_bytes(from_csv)
    assert canonical_parquet_bytes(_reread(data)) == data == canonical_parquet_bytes(table)
