"""Batches to Arrow, Arrow to Parquet bytes. No I/O: storage is elsewhere."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from worker.records import DataType, Record, Spec


def to_table(spec: Spec, rows: list[Record], orderbook_depth: int) -> pa.Table:
    """Records (as ``records.decode`` returns them) as a table of the lake schema."""
    return truncate_books(
        spec, pa.Table.from_pylist(rows, schema=spec.arrow_schema), orderbook_depth
    )


def truncate_books(spec: Spec, table: pa.Table, orderbook_depth: int) -> pa.Table:
    """Order books cut to their top ``orderbook_depth`` levels per side."""
    if spec.data_type is not DataType.ORDERBOOK:
        return table
    for side in ("bids", "asks"):
        idx = table.schema.get_field_index(side)
        field = spec.arrow_schema.field(side)
        cut = pc.list_slice(table.column(idx), 0, orderbook_depth).cast(field.type)
        table = table.set_column(idx, field, cut)
    return table


def sort_by_event_time(table: pa.Table) -> pa.Table:
    """Stable sort on ``timestamp``: ties keep their offset order."""
    if table.num_rows < 2:
        return table
    ts = table.column("timestamp").combine_chunks().cast(pa.int64())
    if pc.min(pc.pairwise_diff(ts)).as_py() >= 0:
        return table  # already in order (the usual case): no copy
    return table.take(pc.sort_indices(table, [("timestamp", "ascending")]))


# Columns with a new value on (nearly) every row: a dictionary only costs time
# before the writer falls back to plain encoding, and makes files bigger.
_UNIQUE_PER_ROW = frozenset({"id", "timestamp", "received_at", "nonce"})


def to_parquet(table: pa.Table, compression: str, row_group_rows: int) -> bytes:
    """Parquet bytes; the schema name and version ride in the key-value metadata."""
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression=compression,
        row_group_size=row_group_rows,
        write_statistics=True,
        use_dictionary=[c for c in table.column_names if c not in _UNIQUE_PER_ROW],
    )
    return bytes(sink.getvalue().to_pybytes())
