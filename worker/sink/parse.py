"""Raw messages of a buffer to an Arrow table of the lake schema, in bulk.

The hot path keeps message bytes as they came; here, in an encoder process,
pyarrow's JSON reader parses a slice or a tail in C++ against the
data type's message schema, and the contract checks run vectorised. Only a
batch the bulk reader refuses (a string where a number belongs, a float
time, a pretty-printed message) takes the slow path: ``records.decode``
message by message, which names the reason of each bad one for the
dead-letter topic. Both paths accept and refuse exactly the same messages.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from worker.records import (
    DEFAULT_WINDOW,
    LEVEL_TYPE,
    SCHEMA_VERSION,
    TIMEFRAME_PATTERN,
    InvalidReason,
    InvalidRecordError,
    Kind,
    Record,
    Spec,
    TimeWindow,
    decode,
    valid_exchange,
    valid_symbol,
)

_KIND_TYPES = {
    Kind.STR: pa.string(),
    Kind.INT: pa.int64(),
    Kind.NUM: pa.float64(),
    Kind.LEVELS: pa.list_(pa.list_(pa.float64())),
}
_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message of the batch that is not a record (it goes to the dead-letter topic)."""

    index: int  # position in the buffer
    reason: InvalidReason
    detail: str


@dataclass(frozen=True, slots=True)
class Raw:
    """Messages as one newline-joined blob and their lengths (-1: a None value).

    One bytes object pickles to an encoder process as a single copy, and is
    what the bulk JSON reader reads; :meth:`values` splits it again for the
    message-by-message path.
    """

    blob: bytes
    lengths: array[int]

    @classmethod
    def of(cls, values: Sequence[bytes | None]) -> Raw:
        if None in values:
            lengths = array("q", [-1 if v is None else len(v) for v in values])
            return cls(b"\n".join(v or b"" for v in values), lengths)
        return cls(b"\n".join(values), array("q", map(len, values)))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def has_none(self) -> bool:
        return -1 in self.lengths

    def values(self) -> list[bytes | None]:
        out: list[bytes | None] = []
        start = 0
        for n in self.lengths:
            out.append(None if n < 0 else self.blob[start : start + n])
            start += max(n, 0) + 1
        return out


@dataclass(frozen=True, slots=True)
class Parsed:
    table: pa.Table  # lake schema, offset order, valid rows only
    offsets: pa.Array  # int64, the Kafka offset of each row of ``table``
    rejected: list[Rejected]


def message_schema(spec: Spec) -> pa.Schema:
    """The JSON message as the bulk reader sees it (envelope + contract fields)."""
    return _reader_options(spec)[1].explicit_schema


@functools.cache
def _reader_options(spec: Spec) -> tuple[pajson.ReadOptions, pajson.ParseOptions]:
    fields = [("schema", pa.string()), ("v", pa.int64())]
    fields += [(f.name, _KIND_TYPES[f.kind]) for f in spec.fields]
    return (
        # One thread: the encoders are processes already; threads only add overhead.
        pajson.ReadOptions(use_threads=False, block_size=_BLOCK_BYTES),
        pajson.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore"),
    )


def parse_batch(
    spec: Spec,
    values: Sequence[bytes | None] | Raw,
    offsets: array[int],
    key: tuple[str, str],
    window: TimeWindow = DEFAULT_WINDOW,
) -> Parsed:
    """Parse the messages of one buffer (all with Kafka key ``exchange:symbol`` = ``key``).

    Never raises for what a message holds: whatever the bulk reader cannot
    take goes message by message, and a message that still breaks Arrow is
    refused as ``poison``.
    """
    raw = values if isinstance(values, Raw) else Raw.of(values)
    try:
        table = _bulk(spec, raw)
        # a few bad messages: let decode() say why, keep the rest
        if not _invalid_rows(spec, table, key, window.bounds_ms()):
            return Parsed(_to_lake(spec, table), pa.array(offsets, type=pa.int64()), [])
    except (pa.ArrowException, _BulkRefusedError):
        pass
    return _one_by_one(spec, raw.values(), offsets, key, window)


class _BulkRefusedError(Exception):
    """The bulk reader's view does not line up with the messages."""


def _bulk(spec: Spec, raw: Raw) -> pa.Table:
    if raw.has_none:
        raise _BulkRefusedError
    read_options, parse_options = _reader_options(spec)
    table = pajson.read_json(
        pa.BufferReader(raw.blob), read_options=read_options, parse_options=parse_options
    )
    if table.num_rows != len(raw):  # e.g. a message with a raw newline inside
        raise _BulkRefusedError
    return table


def _invalid_rows(
    spec: Spec, table: pa.Table, key: tuple[str, str], bounds_ms: tuple[int, int]
) -> bool:
    """Whether any row breaks the contract (the slow path then says which and why).

    A slice is parsed every few hundred KiB, so this costs as few kernel
    calls as it can: null counts are free, and one min/max per envelope
    column tells whether every row holds the one expected value.
    """
    if not (valid_exchange(key[0]) and valid_symbol(key[1])):
        return True
    col = table.column
    return (
        any(col(f.name).null_count for f in spec.fields if f.required)
        or _out_of_window(col("timestamp"), col("received_at"), bounds_ms)
        or _not_finite(spec, table)
        or _bad_timeframe(spec, table)
        or _unexpected_envelope(spec, table, key)
        or _short_levels(spec, table)
    )


def _unexpected_envelope(spec: Spec, table: pa.Table, key: tuple[str, str]) -> bool:
    expected: list[tuple[str, str | int]] = [("schema", spec.schema_name), ("v", SCHEMA_VERSION)]
    expected += [("exchange", key[0]), ("symbol", key[1])]
    for name, value in expected:
        column = table.column(name)
        if column.null_count:
            return True
        bounds = pc.min_max(column)
        if bounds["min"].as_py() != value or bounds["max"].as_py() != value:
            return True
    return False


def _short_levels(spec: Spec, table: pa.Table) -> bool:
    """Every level needs a price and an amount."""
    for f in spec.fields:
        if f.kind is Kind.LEVELS:
            lengths = pc.list_value_length(pc.list_flatten(table.column(f.name)))
            if pc.any(pc.less(lengths, 2)).as_py():
                return True
    return False


def _out_of_window(ts: pa.ChunkedArray, received: pa.ChunkedArray, bounds: tuple[int, int]) -> bool:
    if not len(ts):
        return False
    low, high = bounds
    ts_bounds, rx_bounds = pc.min_max(ts), pc.min_max(received)
    return not (
        low <= ts_bounds["min"].as_py() <= ts_bounds["max"].as_py() <= high
        and low * 1000 <= rx_bounds["min"].as_py() <= rx_bounds["max"].as_py() <= high * 1000
    )


def _not_finite(spec: Spec, table: pa.Table) -> bool:
    """Arrow's reader takes ``NaN``/``Infinity`` literals; JSON (and decode) does not."""
    for f in spec.fields:
        if f.kind is Kind.NUM:
            values = table.column(f.name)
        elif f.kind is Kind.LEVELS:
            values = pc.list_flatten(pc.list_flatten(table.column(f.name)))
        else:
            continue
        if pc.any(pc.invert(pc.is_finite(values))).as_py():
            return True
    return False


def _bad_timeframe(spec: Spec, table: pa.Table) -> bool:
    if "timeframe" not in table.column_names:
        return False
    unique = pc.unique(table.column("timeframe")).to_pylist()
    return any(t is None or TIMEFRAME_PATTERN.fullmatch(t) is None for t in unique)


def _to_lake(spec: Spec, table: pa.Table) -> pa.Table:
    columns = []
    for field in spec.arrow_schema:
        col = table.column(field.name)
        if pa.types.is_timestamp(field.type):  # int64 epoch -> timestamp: a zero-copy view
            col = pa.chunked_array([c.view(field.type) for c in col.chunks], field.type)
        elif field.type == LEVEL_TYPE:
            col = _levels(col)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=spec.arrow_schema)


def _levels(col: pa.ChunkedArray) -> pa.Array:
    """list<list<double>> ([[price, amount], ...]) to list<struct<price, amount>>."""
    arr = col.combine_chunks()
    inner = pc.list_flatten(arr)
    price = pc.list_element(inner, 0)
    amount = pc.list_element(inner, 1)
    structs = pa.StructArray.from_arrays([price, amount], names=["price", "amount"])
    return pa.ListArray.from_arrays(arr.offsets, structs, type=LEVEL_TYPE)


def _one_by_one(
    spec: Spec,
    values: list[bytes | None],
    offsets: array[int],
    key: tuple[str, str],
    window: TimeWindow,
) -> Parsed:
    rows: list[Record] = []
    kept: list[int] = []
    rejected: list[Rejected] = []
    for i, value in enumerate(values):
        try:
            got, rec = decode(value, window)
        except InvalidRecordError as exc:
            rejected.append(Rejected(i, exc.reason, exc.detail))
            continue
        if got is not spec:
            reason, detail = (
                InvalidReason.UNKNOWN_SCHEMA,
                f"{got.schema_name} on a {spec.schema_name} topic",
            )
            rejected.append(Rejected(i, reason, detail))
            continue
        if (rec["exchange"], rec["symbol"]) != key:
            detail = f"key {key[0]}:{key[1]}, record {rec['exchange']}:{rec['symbol']}"
            rejected.append(Rejected(i, InvalidReason.KEY_MISMATCH, detail))
            continue
        rows.append(rec)
        kept.append(i)
    try:
        table = pa.Table.from_pylist(rows, schema=spec.arrow_schema)
    except pa.ArrowException:  # decode let through what Arrow cannot hold: find which
        table, kept = _rows_one_by_one(spec, rows, kept, rejected)
    return Parsed(table, pa.array([offsets[i] for i in kept], type=pa.int64()), rejected)


def _rows_one_by_one(
    spec: Spec, rows: list[Record], kept: list[int], rejected: list[Rejected]
) -> tuple[pa.Table, list[int]]:
    """A contract bug, never expected: refuse each row Arrow cannot take as ``poison``."""
    good: list[Record] = []
    good_index: list[int] = []
    for row, i in zip(rows, kept, strict=True):
        try:
            pa.Table.from_pylist([row], schema=spec.arrow_schema)
        except pa.ArrowException as exc:
            rejected.append(Rejected(i, InvalidReason.POISON, type(exc).__name__))
            continue
        good.append(row)
        good_index.append(i)
    rejected.sort(key=lambda r: r.index)
    return pa.Table.from_pylist(good, schema=spec.arrow_schema), good_index
