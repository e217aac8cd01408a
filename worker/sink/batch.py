"""One buffer to stored files: parse, split by UTC day, check, Parquet, sidecars. CPU only.

Runs in the encoder processes (threads with ``encode_processes: 0``): a
buffer's messages are parsed in slices while it fills (:func:`parse_slice`),
and the rest at its flush (:func:`encode_files`).
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from worker.bus.source import Message, TopicPartition
from worker.config import SinkConfig
from worker.records import (
    DEFAULT_WINDOW,
    SCHEMA_VERSION,
    SPECS,
    DataType,
    Spec,
    TimeWindow,
    encode,
)
from worker.sink.buffer import Buffer
from worker.sink.format import sort_by_event_time, to_parquet, truncate_books
from worker.sink.layout import (
    DAY_MS,
    BufferKey,
    Destination,
    FilePaths,
    day_of,
    file_paths,
    file_stem,
)
from worker.sink.parse import Raw, Rejected, parse_batch
from worker.sink.quality import QualityReport, check_batch


@dataclass(frozen=True, slots=True)
class EncodedFile:
    """One Parquet file and its sidecar, ready to store."""

    paths: FilePaths
    other: FilePaths  # the same name in the other destination (cleaned up on replays)
    destination: Destination
    parquet: bytes
    sidecar: bytes
    report: QualityReport
    rows: int
    first_offset: int
    last_offset: int


@dataclass(frozen=True, slots=True)
class Poisoned:
    """A valid row whose file could not be made (a bug, or a value no check foresaw).

    It goes to the dead-letter topic as a record message rebuilt from the row
    (its raw message is no longer held once parsed), with reason ``poison``.
    """

    offset: int
    value: bytes
    detail: str


@dataclass(frozen=True, slots=True)
class EncodeJob:
    """What an encoder process needs of a buffer (a :class:`Buffer` holds tasks: not picklable)."""

    key: BufferKey
    tp: TopicPartition
    first_offset: int
    last_offset: int
    sealed: str | None
    number: int  # Buffer.number: the parsed slices this encoder holds for it
    slices: int  # how many
    values: Raw  # the rest, still raw
    offsets: array[int]

    @classmethod
    def of(cls, buf: Buffer, slices: int) -> EncodeJob:
        raw, offsets = buf.tail()
        return cls(
            buf.key,
            buf.tp,
            buf.first_offset,
            buf.last_offset,
            buf.sealed,
            buf.number,
            slices,
            raw,
            offsets,
        )


@dataclass(slots=True)
class EncodedBuffer:
    """What a flush stores for one buffer: a file per UTC day, and its dead letters."""

    buffer: Buffer
    files: list[EncodedFile]
    rejected: list[tuple[Message, Rejected]] = field(default_factory=list)
    rows: int = 0  # messages the buffer held
    dead_letters_sent: bool = False
    refused: set[str] = field(default_factory=set)  # data keys the store refused (poison.py)


def warm() -> None:
    """Submitted once per encoder process at start: imports this module (pyarrow) early."""


def encoder_init(sink_pid: int | None = None) -> None:
    """Encoder processes ignore SIGINT: Ctrl-C in a terminal signals the whole
    process group, and the parent still needs its encoders for the final flush.
    They exit when the sink shuts the pool down, or when it dies (SIGKILL):
    a worker blocked on its task queue would otherwise live on as an orphan."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sink_pid is not None:
        threading.Thread(target=_exit_with, args=(sink_pid,), daemon=True).start()


def _exit_with(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfds (not Linux >= 5.3): poll
        while _alive(pid):
            time.sleep(1.0)
    else:
        select.select([fd], [], [])  # readable once the process has exited
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


_OFFSET = "__offset"  # the Kafka offset of each row, beside the lake columns in a slice
# The same on every row of a buffer (the parser checks them against the Kafka
# key): slices are held without them (~22 % of a trade's bytes), the encode
# puts them back.
_KEY_COLUMNS = ("exchange", "symbol")


def _held(table: pa.Table, offsets: pa.Array) -> pa.Table:
    return table.drop_columns(list(_KEY_COLUMNS)).append_column(_OFFSET, offsets)


def _with_key(spec: Spec, table: pa.Table, key: BufferKey) -> pa.Table:
    n = table.num_rows
    columns = {"exchange": pa.repeat(key.exchange, n), "symbol": pa.repeat(key.symbol, n)}
    arrays = [
        columns[f.name] if f.name in columns else table.column(f.name) for f in spec.arrow_schema
    ]
    return pa.Table.from_arrays(arrays, schema=spec.arrow_schema)


# Parsed slices, by buffer number and slice number, in the encoder that parsed
# them: they stay here until their buffer's flush (or until forgotten) rather
# than crossing the pipe back to the sink and out again (~2 x 220 MB per 2M trades).
_HELD: dict[int, dict[int, pa.Table]] = {}
_HELD_LOCK = threading.Lock()  # encoder threads (encode_processes: 0) share one


def parse_slice(
    data_type: DataType,
    key: tuple[str, str],
    values: Raw,
    offsets: array[int],
    *,
    number: int,
    seq: int,
    window: TimeWindow = DEFAULT_WINDOW,
) -> tuple[int, list[Rejected]]:
    """Parse slice ``seq`` of buffer ``number`` ahead of its flush; keep the lake rows here.

    Parsing is most of an encode; doing it while the buffer still fills
    keeps the encoders busy, and the rows held as Arrow take ~2.5x fewer
    bytes than the JSON. Returns their size and the messages refused.
    """
    parsed = parse_batch(SPECS[data_type], values, offsets, key, window)
    table = _held(parsed.table, parsed.offsets)
    with _HELD_LOCK:
        _HELD.setdefault(number, {})[seq] = table
    return table.nbytes, parsed.rejected


def forget(numbers: list[int]) -> None:
    """Drop the slices of buffers that will not be encoded (their partition went)."""
    with _HELD_LOCK:
        for number in numbers:
            _HELD.pop(number, None)


def held_buffers() -> int:
    """How many buffers have slices held here (tests)."""
    return len(_HELD)


class MissingSlicesError(RuntimeError):
    """An encoder lacks parsed slices of a buffer it is asked to encode: a bug, never data."""


def encode_files(
    job: EncodeJob, cfg: SinkConfig, lineage: dict[str, Any]
) -> tuple[list[EncodedFile], list[Rejected], list[Poisoned]]:
    """One file per UTC day of event time (a file never spans two days).

    Parses what :func:`parse_slice` has not, joins it to the slices this
    encoder holds for the buffer (and drops them once the files are made).
    Runs in an encoder process: arguments and results are pickled. The
    rejected messages it returns index ``job.values``; rows whose file
    cannot be made come back as :class:`Poisoned` (see :func:`_isolate`).
    """
    spec = SPECS[job.key.data_type]
    with _HELD_LOCK:
        held = dict(_HELD.get(job.number, {}))
    if sorted(held) != list(range(job.slices)):
        raise MissingSlicesError(
            f"buffer {job.number}: slices {sorted(held)} held, 0..{job.slices - 1} expected"
        )
    tables = [held[i] for i in range(job.slices)]
    rejected: list[Rejected] = []
    if len(job.values) or not tables:
        key = (job.key.exchange, job.key.symbol)
        parsed = parse_batch(spec, job.values, job.offsets, key, cfg.time_window())
        tables.append(_held(parsed.table, parsed.offsets))
        rejected = parsed.rejected
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    all_offsets = table.column(_OFFSET).combine_chunks()
    table = _with_key(spec, table.drop_columns([_OFFSET]), job.key)
    days = day_numbers(table.column("timestamp"))
    files: list[EncodedFile] = []
    poisoned: list[Poisoned] = []
    all_days = sorted(pc.unique(days).to_pylist())
    for day in all_days:
        part, offsets = table, all_offsets
        if len(all_days) > 1:  # else the whole batch: no copy
            mask = pc.equal(days, day)
            part, offsets = table.filter(mask), all_offsets.filter(mask.combine_chunks())
        make = partial(_encode_file, job, cfg, day=day_of(day * DAY_MS), lineage=lineage)
        made, bad = _isolate(spec, make, part, offsets)
        files += made
        poisoned += bad
    forget([job.number])  # encoded: the files carry the rows now
    return files, rejected, poisoned


def day_numbers(timestamps: pa.ChunkedArray) -> pa.Array:
    """Days since the epoch of ``timestamp[ms]`` values, floored (pre-1970 times too).

    Through doubles: exact for every millisecond count below 2**53 (year 287,396).
    """
    ms = pc.cast(timestamps, pa.int64()).cast(pa.float64())
    return pc.cast(pc.floor(pc.divide(ms, float(DAY_MS))), pa.int64())


# Encode attempts one poisoned batch may take to find its bad rows, so a batch
# where every row fails costs a bounded time (the rest of the search poisons
# whole segments).
_ISOLATE_BUDGET = 64


def _isolate(
    spec: Spec,
    make: Callable[[pa.Table, pa.Array], EncodedFile],
    table: pa.Table,
    offsets: pa.Array,
) -> tuple[list[EncodedFile], list[Poisoned]]:
    """Make the day's file; if that fails, find the rows that make it fail.

    An exception here is a bug or a value the contract let through: never
    retriable, and a sink that stopped on it would stop again on the same
    records after every restart. So the batch is bisected (at most
    ``_ISOLATE_BUDGET`` tries) down to the rows that fail on their own;
    those become :class:`Poisoned` and the file is made of the rest.
    """
    try:
        return [make(table, offsets)], []
    except MissingSlicesError:
        raise
    except Exception as exc:  # noqa: BLE001  # isolated below, never swallowed
        error = exc
    budget = [_ISOLATE_BUDGET]

    def failing(lo: int, hi: int) -> list[int]:
        if budget[0] <= 0:
            return list(range(lo, hi))
        budget[0] -= 1
        try:
            make(table.slice(lo, hi - lo), offsets.slice(lo, hi - lo))
        except Exception:  # noqa: BLE001  # the search itself
            if hi - lo == 1:
                return [lo]
            mid = (lo + hi) // 2
            return failing(lo, mid) + failing(mid, hi)
        return []

    bad = failing(0, table.num_rows) or list(range(table.num_rows))  # fails only as a whole
    detail = f"{type(error).__name__}: {str(error)[:200]}"
    keep = pc.invert(pc.is_in(pa.array(range(table.num_rows)), pa.array(bad)))
    poisoned = [
        Poisoned(int(offsets[i].as_py()), as_message(spec, table.slice(i, 1)), detail) for i in bad
    ]
    files: list[EncodedFile] = []
    if len(bad) < table.num_rows:
        rest, rest_offsets = table.filter(keep), offsets.filter(keep)
        try:
            files.append(make(rest, rest_offsets))
        except Exception:  # noqa: BLE001  # fails only together: poison the rest as well
            poisoned += [
                Poisoned(int(rest_offsets[i].as_py()), as_message(spec, rest.slice(i, 1)), detail)
                for i in range(rest.num_rows)
            ]
    poisoned.sort(key=lambda p: p.offset)
    return files, poisoned


def as_message(spec: Spec, row: pa.Table) -> bytes:
    """One lake row as the record message it came from (times back to integers)."""
    columns = {}
    for f in row.schema:
        col = row.column(f.name)
        if pa.types.is_timestamp(f.type):
            col = col.cast(pa.int64())
        columns[f.name] = col.to_pylist()[0]
    for side in ("bids", "asks"):
        if side in columns and columns[side] is not None:
            columns[side] = [[lv["price"], lv["amount"]] for lv in columns[side]]
    return encode(spec.data_type, columns)


def _encode_file(
    buf: EncodeJob,
    cfg: SinkConfig,
    table: pa.Table,
    offsets: pa.Array,
    *,
    day: date,
    lineage: dict[str, Any],
) -> EncodedFile:
    spec = SPECS[buf.key.data_type]
    table = truncate_books(spec, table, cfg.orderbook_depth)
    first, last = int(offsets[0].as_py()), int(offsets[-1].as_py())
    first_ts = int(table.column("timestamp").cast(pa.int64())[0].as_py())
    table, report = check_batch(
        spec,
        table,
        now_ms=int(datetime.now(UTC).timestamp() * 1000),
        max_future_skew_s=cfg.quality.max_future_skew_s,
        threshold=cfg.quality.threshold(buf.key.data_type),
        weights=cfg.quality.weights,
    )
    table = sort_by_event_time(table)
    data = to_parquet(table, cfg.compression, cfg.row_group_rows)
    dest, other = Destination.LAKE, Destination.QUARANTINE
    if not report.passed:
        dest, other = other, dest
    stem = file_stem(buf.key.exchange, buf.tp.partition, first, first_ts)
    paths = file_paths(buf.key, day, stem, cfg.layout, dest)
    meta = {"first_offset": first, "last_offset": last, "day": day.isoformat(), **lineage}
    sidecar = _sidecar(buf, table, data, paths=paths, dest=dest, report=report, lineage=meta)
    other_paths = file_paths(buf.key, day, stem, cfg.layout, other)
    return EncodedFile(paths, other_paths, dest, data, sidecar, report, table.num_rows, first, last)


def _sidecar(
    buf: EncodeJob,
    table: pa.Table,
    data: bytes,
    *,
    paths: FilePaths,
    dest: Destination,
    report: QualityReport,
    lineage: dict[str, Any],
) -> bytes:
    ts = table.column("timestamp").cast(pa.int64())
    ids = [c for c in pc.unique(table.column("collector_id")).to_pylist() if c is not None]
    body = {
        "file": paths.data,
        "destination": dest.value,
        "rows": table.num_rows,
        "columns": table.num_columns,
        "schema": {"name": buf.key.data_type.schema_name, "version": SCHEMA_VERSION},
        "first_event_time": _iso(pc.min(ts).as_py()) if table.num_rows else None,
        "last_event_time": _iso(pc.max(ts).as_py()) if table.num_rows else None,
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "uploaded_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "quality": report.as_dict(),
        "lineage": {
            **lineage,
            "topic": buf.tp.topic,
            "partition": buf.tp.partition,
            "exchange": buf.key.exchange,
            "symbol": buf.key.symbol,
            "data_type": buf.key.data_type.value,
            "collector_ids": sorted(ids),
            "trigger": buf.sealed,
            "batch_first_offset": buf.first_offset,
            "batch_last_offset": buf.last_offset,
        },
    }
    return orjson.dumps(body, option=orjson.OPT_INDENT_2)
