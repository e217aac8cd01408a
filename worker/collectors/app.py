"""``ticklake collect``: the collector process (streams -> queue -> Kafka)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from worker import __version__, metrics
from worker.bus.kafka_producer import KafkaPublisher
from worker.bus.publish_queue import PublishQueue
from worker.collectors.runtime import CollectorRuntime
from worker.config import Settings
from worker.logging import get_logger
from worker.server import HttpServer

log = get_logger("collector.app")


def stop_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on every platform
            loop.add_signal_handler(sig, event.set)
    return event


async def run_collect(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Run until SIGINT/SIGTERM (or ``stop``); return the exit code.

    Shutdown: stop the streams, publish what is still queued within
    ``collector.shutdown_drain_s``, stop the producer. Exit code 1 if records
    were left unpublished.
    """
    cfg = settings.collector
    metrics.BUILD.info({"version": __version__, "component": "collector"})
    queue = PublishQueue(cfg.queue_max_records)
    kafka = KafkaPublisher(settings.kafka, queue)
    runtime = CollectorRuntime.for_queue(cfg, settings.kafka, queue)
    http = settings.http
    server = HttpServer(http.host, http.port, lambda: kafka.ready and runtime.any_up())
    stop = stop or stop_event()
    await server.start()
    sender = asyncio.create_task(kafka.run(), name="kafka-sender")
    runtime.start()
    log.info("collector_started", exchanges=[e.id for e in cfg.exchanges], http_port=server.port)
    try:
        await stop.wait()
    finally:
        log.info("collector_stopping", queued=len(queue))
        await runtime.stop()
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        left = await kafka.drain(cfg.shutdown_drain_s)
        await kafka.stop()
        await server.stop()
    log.info("collector_stopped", unpublished=left, dropped=queue.dropped)
    return 0 if left == 0 else 1
