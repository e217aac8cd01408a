"""What is in the lake, from listings and sidecars: never a Parquet file.

A listing names every data file (its day, symbol, type, exchange and
destination are in its key); its sidecar adds rows, event-time bounds,
schema version and quality. Reading thousands of sidecars one GET each is
slow, so the reader keeps a *digest* per symbol, type and day:

    _catalog/<SYMBOL>/<data_type>/<YYYY-MM-DD>.json
    {"version": 1, "files": {"<data key>": {"size": …, "mtime_ns": …, "summary": {…}}}}

A digest entry is trusted only while the listed file has the same size and
modification time as when it was summarised (a replay that rewrites a file
rewrites its sidecar right after, and changes both); anything new or
changed is read from its sidecar, in parallel, and the digest written back
(best effort: a read-only lake still works, just slower). The digest is a
cache: deleting ``_catalog/`` loses nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pyarrow.fs as pafs

from worker.lake.errors import LakeError
from worker.lake.paths import QUARANTINE, DataKey, parse_key
from worker.records import DataType
from worker.sink.layout import Destination

DIGEST_VERSION = 1
CATALOG_ROOT = "_catalog"


@dataclass(frozen=True, slots=True)
class Summary:
    """What a sidecar says about its file (the part readers need)."""

    rows: int
    first_ms: int | None
    last_ms: int | None
    schema_version: int
    symbol: str
    exchange: str
    score: float | None
    passed: bool | None
    threshold: float | None
    rows_in: int
    exact_duplicates_removed: int
    checks: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of_sidecar(cls, body: dict[str, Any]) -> Summary:
        quality = body.get("quality") or {}
        lineage = body.get("lineage") or {}
        rows = int(body["rows"])
        return cls(
            rows=rows,
            first_ms=_ms(body.get("first_event_time")),
            last_ms=_ms(body.get("last_event_time")),
            schema_version=int((body.get("schema") or {}).get("version", 1)),
            symbol=str(lineage.get("symbol", "")),
            exchange=str(lineage.get("exchange", "")),
            score=quality.get("score"),
            passed=quality.get("passed"),
            threshold=quality.get("threshold"),
            rows_in=int(quality.get("rows_in", rows)),
            exact_duplicates_removed=int(quality.get("exact_duplicates_removed", 0)),
            checks={str(k): int(v) for k, v in (quality.get("checks") or {}).items()},
        )

    @classmethod
    def of_dict(cls, d: dict[str, Any]) -> Summary:
        return cls(**d)


def _ms(iso: str | None) -> int | None:
    if iso is None:
        return None
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One data file: its parsed key, listing and (when it has one) its sidecar summary."""

    key: DataKey
    size: int
    mtime_ns: int
    summary: Summary | None

    @property
    def symbol(self) -> str:
        """The ccxt symbol (from the sidecar), else the path form."""
        return self.summary.symbol if self.summary and self.summary.symbol else self.key.path_symbol

    def may_hold(self, start_ms: int, end_ms: int) -> bool:
        """False only when the sidecar proves no row lies in ``[start_ms, end_ms)``."""
        s = self.summary
        if s is None or s.first_ms is None or s.last_ms is None:
            return s is None  # no sidecar: maybe; an empty file: no
        return s.first_ms < end_ms and s.last_ms >= start_ms


@dataclass(slots=True)
class IndexStats:
    """What building a catalog cost (tests and the benchmark read it)."""

    listed: int = 0
    digests_read: int = 0
    digests_written: int = 0
    sidecars_read: int = 0
    sidecars_missing: int = 0


Listed = tuple[DataKey, pafs.FileInfo]


def list_folder(fs: pafs.FileSystem, folder: str, *, recursive: bool = False) -> list[Listed]:
    """Data files under ``folder`` (absent folder: none)."""
    try:
        infos = fs.get_file_info(
            pafs.FileSelector(folder, allow_not_found=True, recursive=recursive)
        )
    except OSError as exc:
        raise _error(exc, f"listing {folder}/") from None
    out = []
    for info in infos:
        if info.type == pafs.FileType.File and (key := parse_key(info.path)) is not None:
            out.append((key, info))
    return out


def top_folders(fs: pafs.FileSystem, folder: str = "") -> list[str]:
    """Folder names directly under ``folder``."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    except OSError as exc:
        raise _error(exc, f"listing {folder or 'the lake root'}") from None
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def list_all(fs: pafs.FileSystem, pool: ThreadPoolExecutor) -> list[Listed]:
    """Every data file of the lake and of its quarantine, both layouts."""
    roots: list[str] = []
    for name in top_folders(fs):
        if name == QUARANTINE.rstrip("/"):
            roots += [f"{name}/{q}" for q in top_folders(fs, name) if not q.startswith("_")]
        elif not name.startswith("_"):
            roots.append(name)
    out: list[Listed] = []
    for part in pool.map(lambda r: list_folder(fs, r, recursive=True), roots):
        out += part
    return out


def _error(exc: BaseException, what: str) -> LakeError:
    from worker.lake.fs import storage_error

    return storage_error(exc, what, "lake")


def _digest_key(path_symbol: str, data_type: DataType, day: date) -> str:
    return f"{CATALOG_ROOT}/{path_symbol}/{data_type.value}/{day.isoformat()}.json"


Group = tuple[str, DataType, date]


class Index:
    """Sidecar summaries for listed files, through the per-day digests."""

    def __init__(
        self, fs: pafs.FileSystem, pool: ThreadPoolExecutor, *, write_digests: bool = True
    ) -> None:
        self._fs = fs
        self._pool = pool
        self._write = write_digests
        self.stats = IndexStats()

    def entries(
        self, listed: Sequence[Listed], progress: Callable[[int], None] | None = None
    ) -> list[FileEntry]:
        """A :class:`FileEntry` per listed file, in key order.

        Three flat parallel phases (digests, stale sidecars, digests back):
        tasks never wait on tasks of the same pool.
        """
        self.stats.listed += len(listed)
        groups: dict[Group, list[Listed]] = {}
        for key, info in listed:
            groups.setdefault((key.path_symbol, key.data_type, key.day), []).append((key, info))
        names = list(groups)
        digests = dict(zip(names, self._pool.map(self._read_digest, names), strict=True))
        entries: dict[Group, list[FileEntry]] = {g: [] for g in names}
        stale: list[tuple[Group, DataKey, pafs.FileInfo]] = []
        for group, files in groups.items():
            known = digests[group]
            for key, info in files:
                if _fresh(known.get(key.key), info):
                    s = known[key.key]["summary"]
                    summary = None if s is None else Summary.of_dict(s)
                    entries[group].append(_entry(key, info, summary))
                else:
                    stale.append((group, key, info))
        if progress is not None:
            progress(len(listed) - len(stale))
        for (group, key, info), summary in zip(
            stale, self._pool.map(self._read_sidecar, [k for _, k, _ in stale]), strict=True
        ):
            entries[group].append(_entry(key, info, summary))
            if progress is not None:
                progress(1)
        if self._write:
            changed = {g for g, _, _ in stale}
            changed |= {g for g in names if len(digests[g]) != len(groups[g])}
            list(self._pool.map(lambda g: self._write_digest(g, entries[g]), sorted(changed)))
        out = [e for part in entries.values() for e in part]
        out.sort(key=lambda e: e.key.key)
        return out

    def _read_digest(self, group: Group) -> dict[str, Any]:
        key = _digest_key(*group)
        try:
            with self._fs.open_input_stream(key) as f:
                body = orjson.loads(f.read())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError):
            return {}  # unreadable cache: rebuilt from the sidecars
        self.stats.digests_read += 1
        if not isinstance(body, dict) or body.get("version") != DIGEST_VERSION:
            return {}
        files = body.get("files")
        return files if isinstance(files, dict) else {}

    def _read_sidecar(self, key: DataKey) -> Summary | None:
        try:
            with self._fs.open_input_stream(key.sidecar) as f:
                body = orjson.loads(f.read())
            self.stats.sidecars_read += 1
            return Summary.of_sidecar(body)
        except FileNotFoundError:
            self.stats.sidecars_missing += 1
            return None  # a file whose sidecar is not written (yet): read, never pruned
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.stats.sidecars_missing += 1
            return None
        except OSError as exc:
            raise _error(exc, f"reading {key.sidecar}") from None

    def _write_digest(self, group: Group, entries: Iterable[FileEntry]) -> None:
        key = _digest_key(*group)
        files = {
            e.key.key: {
                "size": e.size,
                "mtime_ns": e.mtime_ns,
                "summary": None if e.summary is None else asdict(e.summary),
            }
            for e in entries
            if e.summary is not None  # no sidecar yet: ask again next time
        }
        body = orjson.dumps({"version": DIGEST_VERSION, "files": files})
        with contextlib.suppress(OSError):  # read-only credentials: a cache we cannot keep
            try:
                self._put(key, body)
            except FileNotFoundError:  # a local folder: parents first (S3 has none)
                self._fs.create_dir(key.rsplit("/", 1)[0], recursive=True)
                self._put(key, body)
            self.stats.digests_written += 1

    def _put(self, key: str, body: bytes) -> None:
        with self._fs.open_output_stream(key) as f:
            f.write(body)


def _entry(key: DataKey, info: pafs.FileInfo, summary: Summary | None) -> FileEntry:
    return FileEntry(key, info.size or 0, info.mtime_ns or 0, summary)


def _fresh(known: Any, info: pafs.FileInfo) -> bool:
    return (
        isinstance(known, dict)
        and known.get("size") == info.size
        and known.get("mtime_ns") == info.mtime_ns
    )


# --------------------------------------------------------------------------- roll-ups


@dataclass(slots=True)
class CatalogRow:
    """One (day, exchange, symbol, data type) of the lake."""

    day: date
    exchange: str
    symbol: str
    data_type: str
    files: int = 0
    rows: int = 0
    bytes: int = 0
    first_event_time: datetime | None = None
    last_event_time: datetime | None = None
    min_score: float | None = None
    mean_score: float | None = None  # row-weighted over every batch, quarantined included
    quarantined: int = 0  # batches under the threshold (files in _quarantine/)
    quarantined_rows: int = 0
    without_sidecar: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["day"] = self.day.isoformat()
        for name in ("first_event_time", "last_event_time"):
            v = out[name]
            out[name] = None if v is None else v.isoformat(timespec="milliseconds")
        return out


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def roll_up(entries: Iterable[FileEntry]) -> list[CatalogRow]:
    """Per (day, exchange, symbol, data type), sorted."""
    rows: dict[tuple[date, str, str, str], CatalogRow] = {}
    weights: dict[tuple[date, str, str, str], tuple[float, int]] = {}
    for e in entries:
        k = (e.key.day, e.key.exchange, e.symbol, e.key.data_type.value)
        row = rows.get(k) or rows.setdefault(k, CatalogRow(*k))
        s = e.summary
        if e.key.destination is Destination.QUARANTINE:
            row.quarantined += 1
            row.quarantined_rows += s.rows if s else 0
        else:
            row.files += 1
            row.rows += s.rows if s else 0
            row.bytes += e.size
        if s is None:
            row.without_sidecar += 1
            continue
        if e.key.destination is Destination.LAKE and s.first_ms is not None:
            first, last = _dt(s.first_ms), _dt(s.last_ms or s.first_ms)
            row.first_event_time = min(filter(None, [row.first_event_time, first]))
            row.last_event_time = max(filter(None, [row.last_event_time, last]))
        if s.score is not None:
            row.min_score = s.score if row.min_score is None else min(row.min_score, s.score)
            total, n = weights.get(k, (0.0, 0))
            weights[k] = (total + s.score * s.rows_in, n + s.rows_in)
    for k, (total, n) in weights.items():
        rows[k].mean_score = round(total / n, 3) if n else rows[k].min_score
    return [rows[k] for k in sorted(rows)]
