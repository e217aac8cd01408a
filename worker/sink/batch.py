"""One buffer to stored files: parse, split by UTC day, check, Parquet, sidecars. CPU only.

Runs in a worker thread; pyarrow releases the GIL for nearly all of it, so
the event loop keeps consuming on the other core while a batch is encoded.
"""

from __future__ import annotations

import hashlib
import signal
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from worker.bus.source import Message
from worker.config import SinkConfig
from worker.records import SCHEMA_VERSION, SPECS
from worker.sink.buffer import Buffer
from worker.sink.format import sort_by_event_time, to_parquet, truncate_books
from worker.sink.layout import DAY_MS, Destination, FilePaths, day_of, file_paths, file_stem
from worker.sink.parse import Rejected, parse_batch
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


@dataclass(slots=True)
class EncodedBuffer:
    """What a flush stores for one buffer: a file per UTC day, and its dead letters."""

    buffer: Buffer
    files: list[EncodedFile]
    rejected: list[tuple[Message, Rejected]] = field(default_factory=list)
    rows: int = 0  # messages the buffer held
    dead_letters_sent: bool = False


def warm() -> None:
    """Submitted once per encoder process at start: imports this module (pyarrow) early."""


def encoder_init() -> None:
    """Encoder processes ignore SIGINT: Ctrl-C in a terminal signals the whole
    process group, and the parent still needs its encoders for the final flush.
    They exit when the parent shuts the pool down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def encode_files(
    buf: Buffer, cfg: SinkConfig, lineage: dict[str, Any]
) -> tuple[list[EncodedFile], list[Rejected]]:
    """Parse ``buf``, one file per UTC day of event time (a file never spans two days).

    Runs in an encoder process: arguments and results are pickled.
    """
    spec = SPECS[buf.key.data_type]
    parsed = parse_batch(spec, buf.values, buf.offsets, (buf.key.exchange, buf.key.symbol))
    table = truncate_books(spec, parsed.table, cfg.orderbook_depth)
    ts = table.column("timestamp").cast(pa.int64())
    days = pc.divide(ts, DAY_MS)  # integer division on int64
    files = []
    for day in sorted(pc.unique(days).to_pylist()):
        mask = pc.equal(days, day)
        part = table.filter(mask)
        offsets = parsed.offsets.filter(mask.combine_chunks())
        files.append(
            _encode_file(buf, cfg, part, offsets, day=day_of(day * DAY_MS), lineage=lineage)
        )
    return files, parsed.rejected


def _encode_file(
    buf: Buffer,
    cfg: SinkConfig,
    table: pa.Table,
    offsets: pa.Array,
    *,
    day: date,
    lineage: dict[str, Any],
) -> EncodedFile:
    spec = SPECS[buf.key.data_type]
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
    buf: Buffer,
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
