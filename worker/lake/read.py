"""Rows of a time range from the files that can hold them, and only those.

Pruning, cheapest first: the path (day folders of the range, one symbol and
data type each), the sidecar's first/last event time (through the catalog
digests: no Parquet opened), then each opened file's row-group statistics
on ``timestamp``. What is left is filtered to exactly
``start <= timestamp < end`` and sorted by event time (stable: rows keep
their file and offset order on ties).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from worker.lake.catalog import FileEntry
from worker.lake.errors import (
    CorruptFileWarning,
    InvalidRangeError,
    LakeError,
    NewerSchemaError,
    UnknownColumnError,
)
from worker.lake.fs import storage_error
from worker.records import SCHEMA_VERSION, Spec
from worker.sink.format import sort_by_event_time

# Files up to this size are fetched in one GET (sink files are small: the
# round trips, not the bytes, are the cost); larger ones are read by ranges,
# footer first, then only the row groups and columns needed.
WHOLE_FILE_BYTES = 8 * 1024 * 1024


@dataclass(slots=True)
class ReadStats:
    """What one read did: how much the pruning saved, what was fetched."""

    files_listed: int = 0
    files_pruned_by_sidecar: int = 0
    files_opened: int = 0
    files_corrupt: int = 0
    corrupt: list[str] = field(default_factory=list)
    row_groups_read: int = 0
    row_groups_skipped: int = 0
    bytes_read: int = 0
    rows: int = 0


def to_ms(value: Any, name: str) -> int:
    """Milliseconds since the epoch, UTC, of a datetime (naive = UTC), date, ISO string or int."""
    if isinstance(value, bool):
        raise InvalidRangeError(f"{name}: not a time: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidRangeError(
                f"{name}: {value!r} is not an ISO date or time (e.g. 2025-11-24 or "
                "2025-11-24T16:00:00Z)"
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return round(float(value.timestamp()) * 1000)
    if isinstance(value, date):
        return int(datetime.combine(value, time(), tzinfo=UTC).timestamp() * 1000)
    raise InvalidRangeError(f"{name}: not a time: {value!r}")


def check_range(start: Any, end: Any) -> tuple[int, int]:
    """``(start_ms, end_ms)``; an empty or inverted range is an error, not an empty table."""
    start_ms, end_ms = to_ms(start, "start"), to_ms(end, "end")
    if end_ms < start_ms:
        raise InvalidRangeError(f"inverted range: end {end!r} is before start {start!r}")
    if end_ms == start_ms:
        raise InvalidRangeError(
            f"empty range: start == end ({start!r}); end is exclusive, so nothing can match"
        )
    return start_ms, end_ms


def output_columns(spec: Spec, columns: Sequence[str] | None) -> list[str]:
    """The columns to return, in schema order unless the caller gave an order."""
    names = spec.arrow_schema.names
    if columns is None:
        return list(names)
    unknown = [c for c in columns if c not in names]
    if unknown:
        raise UnknownColumnError(
            f"{spec.data_type.value} has no column {', '.join(map(repr, unknown))}; "
            f"columns: {', '.join(names)}"
        )
    return list(dict.fromkeys(columns))


class Reader:
    """Reads pruned files in parallel into one table of the contract schema."""

    def __init__(self, fs: pafs.FileSystem, pool: ThreadPoolExecutor, url: str) -> None:
        self._fs = fs
        self._pool = pool
        self._url = url

    def read(
        self,
        spec: Spec,
        entries: Sequence[FileEntry],
        start_ms: int,
        end_ms: int,
        columns: list[str],
        *,
        symbols: set[str] | None = None,
        stats: ReadStats,
        progress: Callable[[int], None] | None = None,
    ) -> pa.Table:
        """Exactly the rows of ``entries`` with ``start_ms <= timestamp < end_ms``, sorted."""
        stats.files_listed += len(entries)
        for e in entries:
            if e.summary is not None and e.summary.schema_version > SCHEMA_VERSION:
                raise _newer(e.key.key, e.summary.schema_version)
        todo = [e for e in entries if e.may_hold(start_ms, end_ms)]
        stats.files_pruned_by_sidecar += len(entries) - len(todo)
        need = list(dict.fromkeys([*columns, "timestamp", *(["symbol"] if symbols else [])]))
        schema = pa.schema([spec.arrow_schema.field(c) for c in need])

        def one(e: FileEntry) -> tuple[pa.Table | None, _FileStats]:
            out = self._file(e, spec, schema, start_ms, end_ms)
            if progress is not None:
                progress(1)
            return out

        tables = []
        for entry, (table, fstats) in zip(todo, self._pool.map(one, todo), strict=True):
            fstats.add_to(stats, entry.key.key)
            if table is not None and table.num_rows:
                tables.append(table)
        result = pa.concat_tables(tables) if tables else schema.empty_table()
        if symbols:
            result = result.filter(pc.is_in(result.column("symbol"), pa.array(sorted(symbols))))
        result = sort_by_event_time(result).select(columns)
        stats.rows += result.num_rows
        meta = spec.arrow_schema.metadata
        return result.replace_schema_metadata(meta).combine_chunks()

    def _file(
        self, e: FileEntry, spec: Spec, schema: pa.Schema, start_ms: int, end_ms: int
    ) -> tuple[pa.Table | None, _FileStats]:
        st = _FileStats()
        try:
            source = self._open(e, st)
        except FileNotFoundError:
            st.corrupt = f"{e.key.key}: vanished between listing and reading"
            return None, st
        except OSError as exc:
            raise storage_error(exc, f"reading {e.key.key}", self._url) from None
        try:
            return _decode(source, e, spec, schema, start_ms, end_ms, st), st
        except LakeError:
            raise
        except (pa.ArrowException, OSError, ValueError, KeyError, IndexError) as exc:
            st.corrupt = f"{e.key.key}: {type(exc).__name__}: {str(exc)[:160]}"
            return None, st

    def _open(self, e: FileEntry, st: _FileStats) -> Any:
        st.opened = True
        if e.size <= WHOLE_FILE_BYTES:
            with self._fs.open_input_stream(e.key.key) as f:
                data = f.read()
            st.bytes_read = len(data)
            return pa.BufferReader(data)
        return _Counting(self._fs.open_input_file(e.key.key), st)


@dataclass(slots=True)
class _FileStats:
    opened: bool = False
    bytes_read: int = 0
    row_groups_read: int = 0
    row_groups_skipped: int = 0
    corrupt: str | None = None

    def add_to(self, stats: ReadStats, key: str) -> None:
        stats.files_opened += int(self.opened)
        stats.bytes_read += self.bytes_read
        stats.row_groups_read += self.row_groups_read
        stats.row_groups_skipped += self.row_groups_skipped
        if self.corrupt is not None:
            stats.files_corrupt += 1
            stats.corrupt.append(self.corrupt)
            warnings.warn(
                f"skipped a corrupt file, the rest of the range is returned: {self.corrupt}",
                CorruptFileWarning,
                stacklevel=4,
            )


class _Counting(io.RawIOBase):
    """A random-access pyarrow file that counts the bytes it reads (large files)."""

    def __init__(self, f: Any, st: _FileStats) -> None:
        self._f = f
        self._st = st

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._f.seek(offset, whence))

    def tell(self) -> int:
        return int(self._f.tell())

    def read(self, size: int = -1) -> bytes:
        data = bytes(self._f.read(None if size < 0 else size))
        self._st.bytes_read += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()


def _newer(key: str, version: int) -> NewerSchemaError:
    return NewerSchemaError(
        f"{key} has schema version {version}; this reader knows up to {SCHEMA_VERSION}: "
        "upgrade ticklake to read it"
    )


def _decode(  # noqa: PLR0917  # one file's whole context, private
    source: Any,
    e: FileEntry,
    spec: Spec,
    schema: pa.Schema,
    start_ms: int,
    end_ms: int,
    st: _FileStats,
) -> pa.Table:
    pf = pq.ParquetFile(source)
    meta = pf.schema_arrow.metadata or {}
    name = meta.get(b"ticklake.schema", spec.schema_name.encode()).decode()
    version = int(meta.get(b"ticklake.schema_version", b"1"))
    if version > SCHEMA_VERSION:
        raise _newer(e.key.key, version)
    if name != spec.schema_name:
        raise ValueError(f"holds {name}, not {spec.schema_name}")
    groups = _row_groups(pf, start_ms, end_ms)
    st.row_groups_read = len(groups)
    st.row_groups_skipped = pf.num_row_groups - len(groups)
    if not groups:
        return schema.empty_table()
    table = pf.read_row_groups(groups, columns=schema.names, use_threads=False)
    ts = table.column("timestamp").cast(pa.int64())
    mask = pc.and_(pc.greater_equal(ts, start_ms), pc.less(ts, end_ms))
    table = table.filter(mask)
    return table.cast(schema) if table.schema != schema else table


def _row_groups(pf: pq.ParquetFile, start_ms: int, end_ms: int) -> list[int]:
    """Row groups whose ``timestamp`` statistics overlap the range (no statistics: kept)."""
    md = pf.metadata
    if md.num_row_groups == 0:
        return []
    first = md.row_group(0)
    leaves = [first.column(j).path_in_schema for j in range(first.num_columns)]
    idx = leaves.index("timestamp")
    keep = []
    for i in range(md.num_row_groups):
        stats = md.row_group(i).column(idx).statistics
        if stats is not None and stats.has_min_max:
            lo, hi = _raw(stats.min), _raw(stats.max)
            if lo is not None and hi is not None and (hi < start_ms or lo >= end_ms):
                continue
        keep.append(i)
    return keep


def _raw(value: Any) -> int | None:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return round(float(value.timestamp()) * 1000)
    if isinstance(value, int):
        return value
    return None
