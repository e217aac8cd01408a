"""``Lake``: find, read, check and write market data, from a notebook or the CLI.

    lake = Lake.open("s3://market-data/prod")          # or a folder, or file://
    lake.catalog(data_type="trades", symbols="BTC/USDT")
    t = lake.read("trades", "BTC/USDT", "2025-11-24", "2025-11-25")   # pyarrow.Table
    lake.quality(start="2025-11-24", end="2025-11-25")
    lake.write(df, "trades", "binance")                 # as the sink would have

Credentials and endpoint come from the sink's ``storage`` section (a config
file, ``TICKLAKE_STORAGE__*``, ``S3_ENDPOINT_URL`` and the ``AWS_*``
variables), overridable per call. See docs/reading.md for what ``read``
guarantees and how it prunes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from worker.config import ConfigError, Settings, SinkConfig, StorageConfig, load_config
from worker.lake import catalog as cat
from worker.lake import quality as qual
from worker.lake.errors import (
    LakeError,
    UnknownExchangeError,
    UnknownSymbolError,
)
from worker.lake.fs import normalise_url, open_filesystem, storage_error
from worker.lake.paths import QUARANTINE, day_folder, sidecar_folder
from worker.lake.read import Reader, ReadStats, check_range, output_columns, to_ms
from worker.lake.write import WriteResult, as_table, data_type_of, write_table
from worker.records import SPECS, DataType, lake_symbol, valid_exchange, valid_symbol
from worker.sink.layout import DAY_MS, Destination, day_of
from worker.storage import StorageError

# ``(description, total) -> advance(n)``: how the CLI draws progress bars.
ProgressHook = Callable[[str, int], Callable[[int], None]]
_PATH_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_YEAR = re.compile(r"\d{4}")


def _no_progress(_what: str, _total: int) -> Callable[[int], None]:
    return lambda _n: None


class Lake:
    """One lake (an S3 bucket and prefix, or a folder): catalog, read, quality, write."""

    def __init__(
        self,
        storage: StorageConfig,
        sink: SinkConfig,
        *,
        filesystem: pafs.FileSystem | None = None,
        threads: int = 16,
        write_index: bool = True,
        progress: ProgressHook | None = None,
    ) -> None:
        self.storage = storage
        self.sink = sink
        self.url = storage.url
        self.fs = filesystem if filesystem is not None else open_filesystem(storage)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="lake")
        self._write_index = write_index
        self.progress: ProgressHook = progress or _no_progress
        self.last_read = ReadStats()
        self.last_index = cat.IndexStats()

    @classmethod
    def open(
        cls,
        url: str | Path | None = None,
        *,
        config: str | Path | Settings | None = None,
        filesystem: pafs.FileSystem | None = None,
        threads: int = 16,
        write_index: bool = True,
        progress: ProgressHook | None = None,
        **storage: Any,
    ) -> Lake:
        """The lake at ``url`` (default: the configuration's ``storage.url``).

        ``config``: a YAML file or :class:`Settings` (default: the environment only);
        keyword arguments override its ``storage`` keys (``endpoint_url=``, ``region=``,
        ``access_key_id=``, ``secret_access_key=``, …). ``filesystem`` replaces the
        store's pyarrow filesystem (rooted at the lake), e.g. to count requests.
        """
        try:
            settings = config if isinstance(config, Settings) else load_config(config)
        except ConfigError as exc:
            raise LakeError(f"configuration: {exc}") from None
        values = settings.storage.model_dump()
        values.update(storage)
        if url is not None:
            values["url"] = normalise_url(str(url))
        try:
            cfg = StorageConfig(**values)
        except ValueError as exc:
            raise LakeError(f"storage settings: {exc}") from None
        return cls(
            cfg,
            settings.sink,
            filesystem=filesystem,
            threads=threads,
            write_index=write_index,
            progress=progress,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Lake:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Lake({self.url!r})"

    # ------------------------------------------------------------------ public API

    def catalog(
        self,
        data_type: str | DataType | Sequence[str | DataType] | None = None,
        symbols: str | Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
        *,
        exchange: str | None = None,
    ) -> pa.Table:
        """Per (day, exchange, symbol, data type): files, rows, bytes, first/last event
        time, min/mean quality score, quarantined batches. From the sidecars (through
        the catalog digests), never a Parquet file."""
        entries = self._entries(data_type, symbols, start, end, exchange, quarantine=True)
        return _table([r.as_dict() for r in cat.roll_up(entries)], _CATALOG_SCHEMA)

    def quality(
        self,
        data_type: str | DataType | Sequence[str | DataType] | None = None,
        symbols: str | Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
        *,
        exchange: str | None = None,
        per_file: bool = False,
    ) -> pa.Table:
        """Quality per day, symbol and type (or ``per_file``), each named check's counts."""
        return _table(
            [
                r.as_dict()
                for r in self.quality_rows(
                    data_type, symbols, start, end, exchange=exchange, per_file=per_file
                )
            ],
            None,
        )

    def quality_rows(
        self,
        data_type: str | DataType | Sequence[str | DataType] | None = None,
        symbols: str | Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
        *,
        exchange: str | None = None,
        per_file: bool = False,
    ) -> list[qual.DayQuality] | list[qual.FileQuality]:
        """:meth:`quality` as objects (``DayQuality.below()`` says which days fail)."""
        entries = self._entries(data_type, symbols, start, end, exchange, quarantine=True)
        return qual.file_reports(entries) if per_file else qual.roll_up(entries)

    def read(
        self,
        data_type: str | DataType,
        symbols: str | Sequence[str] | None,
        start: Any,
        end: Any,
        *,
        exchange: str | None = None,
        columns: Sequence[str] | None = None,
        include_quarantine: bool = False,
    ) -> pa.Table:
        """Every row of ``symbols`` (None: all) with ``start <= timestamp < end``, sorted
        by event time, typed as the contract's schema. Times: datetimes (naive = UTC),
        dates, ISO strings or epoch milliseconds. What it cost: :attr:`last_read`."""
        dt = data_type_of(data_type)
        spec = SPECS[dt]
        start_ms, end_ms = check_range(start, end)
        cols = output_columns(spec, columns)
        wanted = self._symbols(symbols)
        entries = self._entries(
            dt, symbols, start_ms, end_ms, exchange, quarantine=include_quarantine
        )
        stats = ReadStats()
        self.last_read = stats
        advance = self.progress(f"reading {dt.value}", len(entries))
        reader = Reader(self.fs, self._pool, self.url)
        unified = {s for s in (wanted or []) if not _PATH_SYMBOL.fullmatch(s)}
        return reader.read(
            spec,
            entries,
            start_ms,
            end_ms,
            cols,
            symbols=unified or None,
            stats=stats,
            progress=advance,
        )

    def write(
        self,
        data: Any,
        data_type: str | DataType,
        exchange: str,
        *,
        symbol: str | None = None,
        on_invalid: str = "raise",
    ) -> WriteResult:
        """Store a table or DataFrame as the sink would: validated against the record
        contract, split by UTC day, quality-checked (quarantined under the threshold),
        Parquet, sidecars, deterministic names (the same input twice: no new rows)."""
        dt = data_type_of(data_type)
        table = as_table(data)
        advance = self.progress(f"writing {dt.value}", table.num_rows)
        try:
            return write_table(
                table,
                dt,
                exchange,
                storage=self.storage,
                sink=self.sink,
                symbol=symbol,
                on_invalid=on_invalid,
                progress=advance,
            )
        except StorageError as exc:
            raise storage_error(exc, "writing", self.url) from None

    def query(
        self,
        sql: str,
        start: Any,
        end: Any,
        *,
        symbols: str | Sequence[str] | None = None,
        exchange: str | None = None,
    ) -> pa.Table:
        """DuckDB SQL over views ``trades``, ``orderbook``, ``ohlcv``, ``ticker`` holding
        only ``[start, end)`` of ``symbols`` (read with :meth:`read`, pruned)."""
        import duckdb

        con = duckdb.connect()
        try:
            for dt in DataType:
                if re.search(rf"\b{dt.value}\b", sql, re.IGNORECASE):
                    table = self._read_for_query(dt, symbols, start, end, exchange)
                    con.register(dt.value, table)
            try:
                relation = con.sql(sql)
                return pa.table({}) if relation is None else relation.to_arrow_table()
            except duckdb.Error as exc:
                raise LakeError(f"query: {exc}") from None
        finally:
            con.close()

    # ------------------------------------------------------------------ internals

    def _read_for_query(
        self, dt: DataType, symbols: Any, start: Any, end: Any, exchange: str | None
    ) -> pa.Table:
        try:
            return self.read(dt, symbols, start, end, exchange=exchange)
        except (UnknownSymbolError, UnknownExchangeError):
            if symbols is None:
                return SPECS[dt].arrow_schema.empty_table()
            raise

    def _symbols(self, symbols: str | Sequence[str] | None) -> list[str] | None:
        if symbols is None:
            return None
        out = [symbols] if isinstance(symbols, str) else list(symbols)
        for s in out:
            if not (valid_symbol(s) or _PATH_SYMBOL.fullmatch(s)):
                raise UnknownSymbolError(f"{s!r} is not a symbol (BTC/USDT, BTC/USDT:USDT)")
        return out

    def _data_types(self, data_type: Any) -> list[DataType]:
        if data_type is None:
            return list(DataType)
        if isinstance(data_type, str | DataType):
            return [data_type_of(data_type)]
        return [data_type_of(d) for d in data_type]

    def _entries(
        self,
        data_type: Any,
        symbols: str | Sequence[str] | None,
        start: Any,
        end: Any,
        exchange: str | None,
        *,
        quarantine: bool,
    ) -> list[cat.FileEntry]:
        """The data files matching the filter, with their sidecar summaries."""
        dts = self._data_types(data_type)
        wanted = self._symbols(symbols)
        if exchange is not None and not valid_exchange(exchange):
            raise UnknownExchangeError(f"{exchange!r} is not an exchange id (binance, okx, …)")
        start_ms = None if start is None else to_ms(start, "start")
        end_ms = None if end is None else to_ms(end, "end")
        if start_ms is not None and end_ms is not None:
            check_range(start_ms, end_ms)
        first = None if start_ms is None else day_of(start_ms)
        last = None if end_ms is None else day_of(end_ms - 1)
        if wanted is None or first is None or last is None:
            listed = cat.list_all(self.fs, self._pool)
        else:
            listed = self._list_days(dts, wanted, first, last, quarantine)
        paths = None if wanted is None else {lake_symbol(s) for s in wanted}
        keep = [
            (k, i)
            for k, i in listed
            if k.data_type in dts
            and (paths is None or k.path_symbol in paths)
            and (first is None or k.day >= first)
            and (last is None or k.day <= last)
            and (quarantine or k.destination is Destination.LAKE)
        ]
        if wanted is not None:
            self._check_known(dts, wanted, keep, exchange)
        if exchange is not None:
            matched = [(k, i) for k, i in keep if k.exchange == exchange]
            if (
                not matched
                and wanted is None
                and not any(k.exchange == exchange for k, _ in listed)
            ):
                raise UnknownExchangeError(f"no data of exchange {exchange!r} in {self.url}")
            keep = matched
        index = cat.Index(self.fs, self._pool, write_digests=self._write_index)
        self.last_index = index.stats
        advance = self.progress("reading the catalog", len(keep))
        return index.entries(keep, advance)

    def _list_days(
        self,
        dts: list[DataType],
        symbols: list[str],
        first: date,
        last: date,
        quarantine: bool,
    ) -> list[cat.Listed]:
        """List only the day folders of the range (both layouts, both destinations)."""
        roots = [""] + ([QUARANTINE] if quarantine else [])
        folders: list[str] = []
        for root in roots:
            top = cat.top_folders(self.fs, root.rstrip("/"))
            default = any(_YEAR.fullmatch(n) for n in top)
            exchanges = [n.removeprefix("exchange=") for n in top if n.startswith("exchange=")]
            days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
            for dt in dts:
                for sym in symbols:
                    for day in days:
                        if default:
                            folders.append(root + day_folder(sym, dt, day, "default"))
                        folders += [root + day_folder(sym, dt, day, "hive", e) for e in exchanges]
        out: list[cat.Listed] = []
        for part in self._pool.map(lambda f: cat.list_folder(self.fs, f), folders):
            out += part
        return out

    def _check_known(
        self,
        dts: list[DataType],
        symbols: list[str],
        listed: Iterable[cat.Listed],
        exchange: str | None,
    ) -> None:
        """Nothing in range for a symbol: is it in the lake at all? (else: an empty range)."""
        found = {(k.path_symbol, k.data_type) for k, _ in listed}
        for dt in dts:
            for sym in symbols:
                path = lake_symbol(sym)
                names = self._sidecar_names(path, dt) if (path, dt) not in found else None
                if names is not None and not names:
                    raise UnknownSymbolError(
                        f"no {dt.value} of {sym!r} in {self.url}; known: "
                        f"{', '.join(self._known_symbols(dt)[:20]) or 'none'}"
                    )
                if exchange is None:
                    continue
                if not any(k.exchange == exchange for k, _ in listed if k.path_symbol == path):
                    names = names if names is not None else self._sidecar_names(path, dt)
                    seen = sorted({n.split("-", 1)[0] for n in names})
                    if exchange not in seen:
                        raise UnknownExchangeError(
                            f"no {dt.value} of {sym!r} from exchange {exchange!r} in {self.url}; "
                            f"exchanges: {', '.join(seen) or 'none'}"
                        )

    def _sidecar_names(self, path_symbol: str, dt: DataType) -> list[str]:
        names: list[str] = []
        for dest in Destination:
            folder = sidecar_folder(path_symbol, dt, dest)
            try:
                infos = self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
            except OSError as exc:
                raise storage_error(exc, f"listing {folder}", self.url) from None
            names += [i.base_name for i in infos if i.type == pafs.FileType.File]
        return names

    def _known_symbols(self, dt: DataType) -> list[str]:
        out = []
        for sym in cat.top_folders(self.fs, "_metadata"):
            if dt.value in cat.top_folders(self.fs, f"_metadata/{sym}"):
                out.append(sym)
        return out


_CATALOG_SCHEMA = pa.schema(
    [
        ("day", pa.string()),
        ("exchange", pa.string()),
        ("symbol", pa.string()),
        ("data_type", pa.string()),
        ("files", pa.int64()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("first_event_time", pa.string()),
        ("last_event_time", pa.string()),
        ("min_score", pa.float64()),
        ("mean_score", pa.float64()),
        ("quarantined", pa.int64()),
        ("quarantined_rows", pa.int64()),
        ("without_sidecar", pa.int64()),
    ]
)


def _table(rows: list[dict[str, Any]], schema: pa.Schema | None) -> pa.Table:
    if schema is not None:
        return pa.Table.from_pylist(rows, schema=schema)
    return pa.Table.from_pylist(rows)


__all__ = ["DAY_MS", "Lake", "ProgressHook"]
