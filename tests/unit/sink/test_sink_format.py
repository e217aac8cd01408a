"""Parquet files: rows in event-time order, dictionaries only where values repeat."""

from __future__ import annotations

import io

import pyarrow.parquet as pq

from tests.sinkkit import BASE_MS, trade
from worker.records import SPECS, DataType
from worker.sink.format import sort_by_event_time, to_parquet, to_table

SPEC = SPECS[DataType.TRADES]


def test_out_of_order_rows_are_sorted_stably() -> None:
    # Offsets order: ids 0..5; event times out of order, with ties (3 and 4 share one).
    times = [5, 1, 3, 2, 2, 0]
    rows = [trade(i, timestamp=BASE_MS + t) for i, t in enumerate(times)]
    out = sort_by_event_time(to_table(SPEC, rows, 25))
    assert out.column("id").to_pylist() == ["5", "1", "3", "4", "2", "0"]


def test_rows_in_order_stay_as_they_are() -> None:
    rows = [trade(i, timestamp=BASE_MS + i // 2) for i in range(6)]  # ties included
    table = to_table(SPEC, rows, 25)
    out = sort_by_event_time(table)
    assert out.column("id").to_pylist() == [str(i) for i in range(6)]
    assert out.equals(table)


def test_dictionary_only_for_repeating_columns() -> None:
    rows = [trade(i, timestamp=BASE_MS + i) for i in range(200)]
    table = to_table(SPEC, rows, 25)
    data = to_parquet(table, "snappy", 1000)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0)
    encodings = {
        meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)
    }
    assert "RLE_DICTIONARY" in encodings["symbol"]
    assert "RLE_DICTIONARY" in encodings["price"]
    for unique in ("id", "timestamp", "received_at"):
        assert "RLE_DICTIONARY" not in encodings[unique], unique
    assert pq.read_table(io.BytesIO(data)).equals(table)  # and the values come back
