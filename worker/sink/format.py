"""Batches to Arrow, Arrow to Parquet bytes. No I/O: storage is elsewhere."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from worker.records import DataType, Record, Spec


def to_table(spec: Spec, rows: list[Record], orderbook_depth: int) -> pa.Table:
    """Rows (in offset order) as a table of the lake schema; books cut to ``orderbook_depth``."""
    table = pa.Table.from_pylist(rows, schema=spec.arrow_schema)
    if spec.data_type is DataType.ORDERBOOK:
        for side in ("bids", "asks"):
            idx = table.schema.get_field_index(side)
            cut = pc.list_slice(table.column(idx), 0, orderbook_depth)
            table = table.set_column(
                idx, spec.arrow_schema.field(side), cut.cast(spec.arrow_schema.field(side).type)
            )
    return table


def sort_by_event_time(table: pa.Table) -> pa.Table:
    """Stable sort on ``timestamp``: ties keep their offset order."""
    return table.take(pc.sort_indices(table, [("timestamp", "ascending")]))


def to_parquet(table: pa.Table, compression: str, row_group_rows: int) -> bytes:
    """Parquet bytes; the schema name and version ride in the key-value metadata."""
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression=compression,
        row_group_size=row_group_rows,
        write_statistics=True,
        use_dictionary=True,
    )
    return bytes(sink.getvalue().to_pybytes())
