"""``ticklake emulate``: run the exchange emulator until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer

from worker.emulator.server import Emulator, EmulatorConfig


async def serve(cfg: EmulatorConfig, port_file: Path | None, duration_s: float | None) -> int:
    emulator = Emulator(cfg)
    port = await emulator.start()
    if port_file is not None:
        await asyncio.to_thread(port_file.write_text, f"{port}\n", encoding="utf-8")
    names = ",".join(emulator.symbols)
    typer.echo(f"emulator listening on http://{cfg.host}:{port} symbols={names}", err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=duration_s)
    await emulator.stop()
    return 0


def register(app: typer.Typer) -> None:
    """Add the ``emulate`` command to the ticklake CLI."""

    @app.command()
    def emulate(  # noqa: PLR0917  # typer maps parameters to options
        host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port (0: any free port).")] = 0,
        symbols: Annotated[int, typer.Option(help="Number of random-walk symbols.")] = 3,
        rate_hz: Annotated[
            float, typer.Option(help="Ticks per second per symbol; 0: trades as fast as possible.")
        ] = 5.0,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
        replay: Annotated[
            Path | None, typer.Option(help="Replay this JSON-lines capture instead.", exists=True)
        ] = None,
        replay_speed: Annotated[float, typer.Option(help="Replay speed factor.")] = 1.0,
        port_file: Annotated[
            Path | None, typer.Option(help="Write the bound port to this file.")
        ] = None,
        duration_s: Annotated[float | None, typer.Option(help="Stop after this long.")] = None,
        sent_log_max: Annotated[
            int, typer.Option(help="Entries kept per data type for GET /_control/sent.")
        ] = 200_000,
    ) -> None:
        """Run a local exchange emulator speaking Binance spot's public protocol."""
        cfg = EmulatorConfig(
            host=host,
            port=port,
            symbols=symbols,
            rate_hz=rate_hz,
            seed=seed,
            replay=replay,
            replay_speed=replay_speed,
            sent_log_max=sent_log_max,
        )
        raise typer.Exit(asyncio.run(serve(cfg, port_file, duration_s)))
