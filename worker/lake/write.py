"""The batch path into the lake: a table in, the sink's files out.

``lake.write`` does not have a writer of its own. It turns the table into
the record messages the collectors would have sent (``records.encode``) and
hands them, one symbol at a time, to the sink's encoder
(:func:`worker.sink.batch.encode_files`): the same parser and contract
validation, the same split by UTC day, quality checks, quarantine
threshold, Parquet writer, layout, file names and sidecars. The files are
stored through the same :class:`~worker.storage.Store` in the committer's
order: data file, sidecar, then the same name in the other destination
removed (a rewrite may score differently and flip lake and quarantine).

Names. A sink file is named from its first record's Kafka partition and
offset. An import has no offsets, so it gets pseudo-offsets: its rows
numbered from a base derived from a hash of the symbol's rows (partition
0, offsets from 10^18: far above any real Kafka offset). The same input
written twice therefore gives the same names and overwrites itself; it
never adds a second copy of its rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import socket
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from worker.bus.source import TopicPartition
from worker.config import SinkConfig, StorageConfig
from worker.lake.errors import InvalidInputError, UnknownDataTypeError
from worker.records import DataType, encode, valid_exchange
from worker.sink.batch import EncodedFile, EncodeJob, encode_files
from worker.sink.layout import BufferKey
from worker.sink.parse import Raw
from worker.storage import open_store

IMPORT_TOPIC = "ticklake.import"
OFFSET_BASE = 10**18
_OFFSET_SPAN = 8 * 10**18  # base + span + rows stays inside int64
# Negative buffer numbers: never one of a sink's in this process (they count from 0).
_numbers = itertools.count(-1, -1)


@dataclass(slots=True)
class WriteResult:
    """What one ``lake.write`` stored."""

    files: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    rows: int = 0  # rows in the stored files (exact duplicates removed)
    rows_in: int = 0
    rejected: int = 0  # rows refused by the contract (with on_invalid="skip")
    scores: list[float] = field(default_factory=list)


def data_type_of(value: str | DataType) -> DataType:
    try:
        return DataType(value)
    except ValueError:
        known = ", ".join(d.value for d in DataType)
        raise UnknownDataTypeError(f"unknown data type {value!r}; one of: {known}") from None


def as_table(data: Any) -> pa.Table:
    """A pyarrow Table from a Table, a pandas or polars DataFrame, Arrow streams or rows."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if type(data).__module__.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if hasattr(data, "to_arrow"):  # polars
        return as_table(data.to_arrow())
    if isinstance(data, list):
        return pa.Table.from_pylist(data)
    try:
        return pa.table(data)
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise InvalidInputError(
            f"cannot turn a {type(data).__name__} into a table: {exc}"
        ) from None


def _times(table: pa.Table, name: str, unit: str) -> pa.Array:
    """A time column as integers (``ms`` or ``us`` since the epoch, UTC)."""
    col = table.column(name)
    try:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.cast(col, pa.timestamp(unit, tz="UTC"))
        if pa.types.is_timestamp(col.type):
            if col.type.tz is None:
                col = pc.assume_timezone(col, "UTC")
            col = pc.cast(col, pa.timestamp(unit, tz="UTC"), safe=False)
        if pa.types.is_integer(col.type) or pa.types.is_timestamp(col.type):
            return pc.cast(col, pa.int64()).combine_chunks()
    except pa.ArrowException as exc:
        raise InvalidInputError(f"column {name!r}: not a time: {exc}") from None
    raise InvalidInputError(
        f"column {name!r} has type {col.type}: use timestamps, ISO strings or integers "
        f"({'milliseconds' if unit == 'ms' else 'microseconds'} since the epoch)"
    )


def messages(data_type: DataType, table: pa.Table) -> list[bytes]:
    """Each row as the record message a collector would send."""
    if "timestamp" not in table.column_names:
        raise InvalidInputError("the table has no 'timestamp' column (event time)")
    ts = _times(table, "timestamp", "ms")
    table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp", ts)
    if "received_at" in table.column_names:
        received = _times(table, "received_at", "us")
        idx = table.schema.get_field_index("received_at")
        table = table.set_column(idx, "received_at", received)
    else:  # a backfill has no receive time: the event time stands in for it
        table = table.append_column("received_at", pc.multiply(ts, 1000))
    rows = table.to_pylist()
    if data_type is DataType.ORDERBOOK:
        for row in rows:
            for side in ("bids", "asks"):
                levels = row.get(side)
                if isinstance(levels, list):
                    row[side] = [_level(lv) for lv in levels]
    return [encode(data_type, row) for row in rows]


def _level(level: Any) -> Any:
    if isinstance(level, dict):
        return [level.get("price"), level.get("amount")]
    return level


def _base_offset(values: list[bytes]) -> int:
    digest = hashlib.sha256(b"\n".join(values)).digest()
    return OFFSET_BASE + int.from_bytes(digest[:8], "big") % _OFFSET_SPAN


def encode_symbol(
    data_type: DataType,
    exchange: str,
    symbol: str,
    values: list[bytes],
    cfg: SinkConfig,
) -> tuple[list[EncodedFile], list[str]]:
    """The sink's encode of one symbol's messages: files, and why rows were refused."""
    base = _base_offset(values)
    offsets = array("q", range(base, base + len(values)))
    job = EncodeJob(
        key=BufferKey(exchange, symbol, data_type),
        tp=TopicPartition(IMPORT_TOPIC, 0),
        first_offset=base,
        last_offset=base + len(values) - 1,
        sealed="import",
        number=next(_numbers),
        slices=0,
        values=Raw.of(values),
        offsets=offsets,
    )
    lineage = {"consumer_group": None, "writer": f"lake.write {socket.gethostname()}:{os.getpid()}"}
    files, rejected, poisoned = encode_files(job, cfg, lineage)
    why = [f"row {r.index}: {r.reason.value}: {r.detail}" for r in rejected]
    why += [f"row {p.offset - base}: poison: {p.detail}" for p in poisoned]
    return files, why


def write_table(
    table: pa.Table,
    data_type: DataType,
    exchange: str,
    *,
    storage: StorageConfig,
    sink: SinkConfig,
    symbol: str | None = None,
    on_invalid: str = "raise",
    progress: Callable[[int], None] | None = None,
) -> WriteResult:
    """Validate, check and store ``table`` as the sink would (see the module docstring)."""
    if not valid_exchange(exchange):
        raise InvalidInputError(f"invalid exchange {exchange!r}: a ccxt exchange id (binance)")
    if on_invalid not in ("raise", "skip"):
        raise ValueError("on_invalid is 'raise' or 'skip'")
    if "symbol" not in table.column_names:
        if symbol is None:
            raise InvalidInputError("the table has no 'symbol' column: pass symbol=")
        table = table.append_column("symbol", pa.repeat(symbol, table.num_rows).cast(pa.string()))
    if "exchange" not in table.column_names:
        table = table.append_column("exchange", pa.repeat(exchange, table.num_rows))
    result = WriteResult(rows_in=table.num_rows)
    encoded: list[EncodedFile] = []
    problems: list[str] = []
    symbols = table.column("symbol")
    for sym in sorted(s for s in pc.unique(symbols).to_pylist() if s is not None):
        part = table.filter(pc.equal(symbols, sym))
        files, why = encode_symbol(data_type, exchange, str(sym), messages(data_type, part), sink)
        encoded += files
        problems += [f"{sym}: {w}" for w in why]
        if progress is not None:
            progress(part.num_rows)
    if pc.any(pc.is_null(symbols)).as_py():
        problems.append("rows with a null symbol")
    if problems and on_invalid == "raise":
        shown = "; ".join(problems[:5]) + (
            f"; … {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise InvalidInputError(
            f"{len(problems)} row(s) are not {data_type.value} records of the contract, nothing "
            f"was written (on_invalid='skip' writes the rest): {shown}"
        )
    result.rejected = len(problems)
    _run(_store_all(storage, encoded, sink.flush_concurrency))
    for f in encoded:
        (result.files if f.destination.value == "lake" else result.quarantined).append(f.paths.data)
        result.rows += f.rows
        result.scores.append(f.report.score)
    return result


async def _store_all(storage: StorageConfig, files: list[EncodedFile], concurrency: int) -> None:
    store = await open_store(storage)
    limit = asyncio.Semaphore(concurrency)

    async def one(f: EncodedFile) -> None:
        async with limit:
            await store.put(f.paths.data, f.parquet)
            await store.put(f.paths.sidecar, f.sidecar)
            await store.delete(f.other.data)
            await store.delete(f.other.sidecar)

    try:
        await asyncio.gather(*(one(f) for f in files))
    finally:
        await store.close()


def _run(coro: Any) -> None:
    """``asyncio.run``, also from a notebook (whose loop is running): in a thread then."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()
