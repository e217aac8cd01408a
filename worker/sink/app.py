"""``ticklake sink``: wire the sink to Kafka, the store and the HTTP endpoints.

SIGTERM/SIGINT: stop consuming, flush every buffer, write state, commit,
exit 0 -- all within ``sink.shutdown_deadline_s`` (else exit 1: nothing is
lost, the next start replays from the state objects).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket

from worker import __version__
from worker.bus.dead_letter import DeadLetters, KafkaDeadLetters
from worker.bus.kafka_source import KafkaSource
from worker.bus.source import Source
from worker.config import Settings
from worker.logging import get_logger
from worker.metrics import BUILD
from worker.server import HttpServer
from worker.sink.sink import Sink
from worker.storage import Store, open_store

log = get_logger("sink.app")


def writer_id() -> str:
    """Who wrote a file or state object (lineage, never part of a key)."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def run_sink(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Run the Kafka sink until SIGTERM/SIGINT (or ``stop``); return the exit code."""
    BUILD.info({"version": __version__, "component": "sink"})
    store = await open_store(settings.storage)
    topics = [settings.kafka.topic(dt) for dt in settings.sink.data_types]
    source = KafkaSource(
        settings.kafka,
        settings.sink.group_id,
        topics,
        session_timeout_ms=settings.sink.session_timeout_ms,
        heartbeat_interval_ms=settings.sink.heartbeat_interval_ms,
        fast_fetch=settings.sink.fast_fetch,
    )
    dead = KafkaDeadLetters(settings.kafka)
    await dead.start()
    try:
        return await serve(settings, source=source, store=store, dead_letters=dead, stop=stop)
    finally:
        await dead.stop()
        await store.close()


async def serve(
    settings: Settings,
    *,
    source: Source,
    store: Store,
    dead_letters: DeadLetters,
    stop: asyncio.Event | None = None,
) -> int:
    """Run a sink over any source (Kafka, the in-process bus) until ``stop`` or a signal."""
    stop = stop or asyncio.Event()
    sink = Sink(settings, source=source, store=store, dead_letters=dead_letters, writer=writer_id())
    server = HttpServer(settings.http.host, settings.http.port, lambda: sink.ready)
    await server.start()
    signals = _install_signals(stop)
    log.info("sink_starting", topics=sink.topics, store=store.url, http_port=server.port)
    try:
        await source.start(sink)
        return await _run(settings, sink, stop)
    finally:
        with contextlib.suppress(Exception):
            await source.stop()
        sink.close()
        await server.stop()
        for sig in signals:
            asyncio.get_running_loop().remove_signal_handler(sig)


async def _run(settings: Settings, sink: Sink, stop: asyncio.Event) -> int:
    try:
        await sink.run(stop)
    except Exception:
        log.exception("sink_failed")  # nothing committed past what is stored
        return 1
    try:
        await asyncio.wait_for(sink.shutdown(), settings.sink.shutdown_deadline_s)
    except TimeoutError:
        log.error("shutdown_deadline_passed", buffered_rows=sink.buffered_rows)  # noqa: TRY400
        return 1
    log.info("sink_stopped")
    return 0


def _install_signals(stop: asyncio.Event) -> list[signal.Signals]:
    loop, installed = asyncio.get_running_loop(), []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    return installed
