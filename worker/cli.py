"""The ``ticklake`` command line."""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path
from typing import Annotated

import typer

from worker import __version__
from worker.config import ConfigError, Settings, load_config
from worker.logging import configure_logging

app = typer.Typer(
    name="ticklake",
    help="Market-data lake ingestion: exchanges -> collectors -> Kafka -> sink -> Parquet on S3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# The sink's consumer loop makes and frees millions of short-lived lists,
# tuples and dicts; at Python's default (a young-generation collection every
# 700 net allocations) the cyclic GC ran ~480 young and ~45 older collections
# in a 2M-message backlog, 1.3-1.5 s of the sink process's ~13 CPU-s. At
# 50,000 it runs twice (0.1 s). Reference cycles are still collected, just
# later: at most ~50,000 container objects wait for it (docs/benchmarks.md).
SINK_GC_THRESHOLD = 50_000

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML configuration file.", dir_okay=False),
]


def _load(config: Path | None) -> Settings:
    try:
        settings = load_config(config)
    except ConfigError as exc:
        typer.echo(f"configuration error:\n{exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log.level, settings.log.format)
    return settings


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command("check-config")
def check_config(config: ConfigOpt = None) -> None:
    """Validate a configuration file and print it (secrets masked)."""
    settings = _load(config)
    typer.echo(settings.model_dump_json(indent=2))


@app.command()
def sink(config: ConfigOpt = None) -> None:
    """Consume ticks from Kafka and write quality-checked Parquet to the lake."""
    settings = _load(config)
    if settings.sink.encode_processes:
        from worker.sink import forkserver

        forkserver.start()  # imports pyarrow in parallel with the imports below
    from worker.sink.app import run_sink

    gc.set_threshold(SINK_GC_THRESHOLD)
    raise typer.Exit(asyncio.run(run_sink(settings)))


@app.command()
def collect(config: ConfigOpt = None) -> None:
    """Stream exchange data through ccxt.pro and publish it to Kafka."""
    from worker.collectors.app import run_collect

    raise typer.Exit(asyncio.run(run_collect(_load(config))))


@app.command()
def run(
    config: ConfigOpt = None,
    duration_s: Annotated[
        float | None, typer.Option(help="Stop cleanly after this many seconds.")
    ] = None,
) -> None:
    """Development mode: collectors and sink in one process over an in-process bus."""
    from worker.embedded import run_embedded

    raise typer.Exit(asyncio.run(run_embedded(_load(config), duration_s)))


def _register_optional() -> None:
    # Commands contributed by optional modules (the exchange emulator).
    try:
        from worker.emulator.cli import register
    except ImportError:
        return
    register(app)


def main() -> None:
    """Console-script entry point."""
    _register_optional()
    app(prog_name="ticklake")
    sys.exit(0)


# The lake's read side (worker/lake/cli.py): ls, read, quality, query, import.
from worker.lake.cli import register as _register_lake  # noqa: E402  # after app exists

_register_lake(app)
