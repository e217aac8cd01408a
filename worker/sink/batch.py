"""One buffer to one stored file: Arrow, quality, Parquet, sidecar. CPU only.

Runs in a worker thread (pyarrow releases the GIL for most of it) so the
event loop keeps consuming and heartbeating while a batch is encoded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from worker.config import SinkConfig
from worker.records import SCHEMA_VERSION, SPECS
from worker.sink.buffer import Buffer
from worker.sink.format import sort_by_event_time, to_parquet, to_table
from worker.sink.layout import Destination, FilePaths, file_paths, file_stem
from worker.sink.quality import QualityReport, check_batch


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """What a flush stores for one buffer."""

    buffer: Buffer
    paths: FilePaths
    other: FilePaths  # the same name in the other destination (cleaned up on replays)
    destination: Destination
    parquet: bytes
    sidecar: bytes
    report: QualityReport
    rows: int


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def encode_batch(buf: Buffer, cfg: SinkConfig, lineage: dict[str, Any]) -> EncodedBatch:
    """Check and serialise ``buf``; decide lake or quarantine; build the sidecar."""
    spec = SPECS[buf.key.data_type]
    table = to_table(spec, buf.rows, cfg.orderbook_depth)
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
    dest = Destination.LAKE if report.passed else Destination.QUARANTINE
    other = Destination.QUARANTINE if report.passed else Destination.LAKE
    stem = file_stem(buf.key, buf.tp.partition, buf.first_offset, buf.first_ts_ms)
    paths = file_paths(buf.key, stem, cfg.layout, dest)
    sidecar = _sidecar(buf, table, data, paths=paths, dest=dest, report=report, lineage=lineage)
    other_paths = file_paths(buf.key, stem, cfg.layout, other)
    return EncodedBatch(buf, paths, other_paths, dest, data, sidecar, report, table.num_rows)


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
            "first_offset": buf.first_offset,
            "last_offset": buf.last_offset,
            "exchange": buf.key.exchange,
            "symbol": buf.key.symbol,
            "data_type": buf.key.data_type.value,
            "date": buf.key.date.isoformat(),
            "collector_ids": sorted(ids),
            "trigger": buf.sealed,
        },
    }
    return orjson.dumps(body, option=orjson.OPT_INDENT_2)
