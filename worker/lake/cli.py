"""``ticklake ls | read | quality | query | import``: the lake from the command line.

Human tables by default, ``--format json|csv`` for scripts; progress bars
only when stderr is a terminal. A :class:`~worker.lake.errors.LakeError`
is printed as one line (exit 2), never as a traceback.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import pyarrow as pa

    from worker.lake.lake import Lake


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


LakeOpt = Annotated[
    str | None,
    typer.Option(
        "--lake",
        "-l",
        help="s3://bucket/prefix, file:///path or a folder "
        "(default: storage.url of the configuration).",
    ),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML configuration file.", dir_okay=False)
]
TypeOpt = Annotated[
    str | None, typer.Option("--type", "-t", help="Data type: trades, orderbook, ohlcv, ticker.")
]
SymbolOpt = Annotated[
    list[str] | None, typer.Option("--symbol", "-s", help="Symbol (BTC/USDT); repeatable.")
]
ExchangeOpt = Annotated[str | None, typer.Option("--exchange", "-e", help="Exchange id.")]
FromOpt = Annotated[
    str | None, typer.Option("--from", help="Start, inclusive (ISO date/time, UTC).")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="End, exclusive (ISO date/time, UTC).")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


@contextmanager
def _lake(lake: str | None, config: Path | None) -> Iterator[Lake]:
    """The lake, with progress bars on a terminal; a LakeError becomes one line, exit 2."""
    from worker.config import ConfigError, load_config
    from worker.lake.errors import LakeError
    from worker.lake.lake import Lake
    from worker.logging import configure_logging

    try:
        settings = load_config(config)
    except ConfigError as exc:
        typer.echo(f"configuration error:\n{exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log.level, settings.log.format)
    with _progress() as hook:
        try:
            with Lake.open(lake, config=settings, progress=hook) as opened:
                yield opened
        except LakeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None


@contextmanager
def _progress() -> Iterator[Callable[[str, int], Callable[[int], None]] | None]:
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:

        def hook(what: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(what, total=total or None)
            return lambda n: bar.advance(task, n)

        yield hook


def _emit(rows: list[dict[str, Any]], fmt: Format, title: str) -> None:
    if fmt is Format.JSON:
        import orjson

        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2, default=str).decode())
        return
    names = list(rows[0]) if rows else []
    if fmt is Format.CSV:
        out = io.StringIO()
        writer = csv.DictWriter(out, names, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in r.items()} for r in rows)
        typer.echo(out.getvalue(), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for name in names:
        table.add_column(name, overflow="fold")
    for r in rows:
        table.add_row(*(_cell(r[n]) for n in names))
    Console(width=max(100, len(names) * 12)).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items() if v)
    return str(value)


def _symbols(symbol: list[str] | None) -> list[str] | None:
    return symbol or None


def ls(  # noqa: PLR0917  # typer: each option is a parameter
    lake: LakeOpt = None,
    config: ConfigOpt = None,
    data_type: TypeOpt = None,
    symbol: SymbolOpt = None,
    exchange: ExchangeOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """What is in the lake: per day, exchange, symbol and type (from the sidecars)."""
    with _lake(lake, config) as opened:
        table = opened.catalog(data_type, _symbols(symbol), start, end, exchange=exchange)
    _emit(table.to_pylist(), fmt, f"{opened.url}")


def read(  # noqa: PLR0917  # typer: each option is a parameter
    data_type: Annotated[str, typer.Argument(help="trades, orderbook, ohlcv or ticker.")],
    start: Annotated[str, typer.Option("--from", help="Start, inclusive (UTC).")],
    end: Annotated[str, typer.Option("--to", help="End, exclusive (UTC).")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="out.parquet or out.csv.", dir_okay=False)
    ],
    lake: LakeOpt = None,
    config: ConfigOpt = None,
    symbol: SymbolOpt = None,
    exchange: ExchangeOpt = None,
    columns: Annotated[
        str | None, typer.Option("--columns", help="Comma-separated columns.")
    ] = None,
    quarantine: Annotated[
        bool, typer.Option("--include-quarantine", help="Also batches under the threshold.")
    ] = False,
) -> None:
    """Download a range of one data type to a Parquet or CSV file."""
    suffix = output.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        typer.echo("error: --output must end in .parquet or .csv", err=True)
        raise typer.Exit(2)
    cols = [c.strip() for c in columns.split(",")] if columns else None
    with _lake(lake, config) as opened:
        table = opened.read(
            data_type,
            _symbols(symbol),
            start,
            end,
            exchange=exchange,
            columns=cols,
            include_quarantine=quarantine,
        )
        stats = opened.last_read
    _write_file(table, output)
    typer.echo(
        f"{table.num_rows} rows -> {output} ({stats.files_opened} files opened, "
        f"{stats.files_pruned_by_sidecar} pruned, {stats.bytes_read} bytes read"
        + (f", {stats.files_corrupt} corrupt files skipped" if stats.files_corrupt else "")
        + ")",
        err=True,
    )


def _write_file(table: pa.Table, output: Path) -> None:
    if output.suffix.lower() == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, output)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, output)


def quality(  # noqa: PLR0917  # typer: each option is a parameter
    lake: LakeOpt = None,
    config: ConfigOpt = None,
    data_type: TypeOpt = None,
    symbol: SymbolOpt = None,
    exchange: ExchangeOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    min_score: Annotated[
        float | None,
        typer.Option("--min-score", help="Threshold (default: each batch's own, 95)."),
    ] = None,
    per_file: Annotated[bool, typer.Option("--per-file", help="One row per file.")] = False,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Quality per day, symbol and type; exit 1 when a day scores under the threshold."""
    from worker.lake.quality import DayQuality

    with _lake(lake, config) as opened:
        rows = opened.quality_rows(
            data_type, _symbols(symbol), start, end, exchange=exchange, per_file=per_file
        )
    _emit([r.as_dict() for r in rows], fmt, f"quality of {opened.url}")
    bad = [r for r in rows if isinstance(r, DayQuality) and r.below(min_score)]
    if per_file:
        bad_files = [r for r in rows if r.passed is False]  # type: ignore[union-attr]
        if bad_files:
            raise typer.Exit(1)
    if bad:
        typer.echo(f"{len(bad)} day(s) under the threshold", err=True)
        raise typer.Exit(1)


def query(  # noqa: PLR0917  # typer: each option is a parameter
    sql: Annotated[str, typer.Argument(help="DuckDB SQL over trades, orderbook, ohlcv, ticker.")],
    start: Annotated[str, typer.Option("--from", help="Start, inclusive (UTC).")],
    end: Annotated[str, typer.Option("--to", help="End, exclusive (UTC).")],
    lake: LakeOpt = None,
    config: ConfigOpt = None,
    symbol: SymbolOpt = None,
    exchange: ExchangeOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Run SQL (DuckDB) over the lake; the views hold only --from/--to and --symbol."""
    with _lake(lake, config) as opened:
        table = opened.query(sql, start, end, symbols=_symbols(symbol), exchange=exchange)
    _emit(table.to_pylist(), fmt, "query")


def import_(  # noqa: PLR0917  # typer: each option is a parameter
    file: Annotated[
        Path, typer.Argument(help="A CSV or Parquet file.", exists=True, dir_okay=False)
    ],
    data_type: Annotated[str, typer.Option("--type", "-t", help="Data type of the rows.")],
    exchange: Annotated[str, typer.Option("--exchange", "-e", help="Exchange id.")],
    lake: LakeOpt = None,
    config: ConfigOpt = None,
    symbol: Annotated[
        str | None, typer.Option("--symbol", "-s", help="Symbol, if the file has no column.")
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Write the valid rows, count the rest.")
    ] = False,
) -> None:
    """Import rows through lake.write: validated, quality-checked, as the sink writes."""
    table = _read_file(file)
    with _lake(lake, config) as opened:
        result = opened.write(
            table,
            data_type,
            exchange,
            symbol=symbol,
            on_invalid="skip" if skip_invalid else "raise",
        )
    typer.echo(
        f"{result.rows} rows in {len(result.files)} files, {len(result.quarantined)} "
        f"quarantined, {result.rejected} rejected"
    )


def _read_file(file: Path) -> pa.Table:
    try:
        if file.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(file)
        import pyarrow.csv as pacsv

        return pacsv.read_csv(file)
    except Exception as exc:  # noqa: BLE001  # any unreadable input: one line, exit 2
        typer.echo(f"error: cannot read {file}: {str(exc)[:300]}", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    """Add the lake commands to the ``ticklake`` app."""
    app.command("ls")(ls)
    app.command("read")(read)
    app.command("quality")(quality)
    app.command("query")(query)
    app.command("import")(import_)
