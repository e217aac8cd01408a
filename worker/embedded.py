"""``ticklake run``: collectors and sink in one process over the in-process bus.

A development mode for trying ticklake with no Kafka and no S3: the same
collectors and the same sink as production, joined by
:class:`~worker.bus.memory.MemoryBus` and usually writing to a local folder
(``storage.url: file://./lake``). There is NO exactly-once guarantee here:
the bus lives in memory, so a crash loses whatever the sink had not stored.

Shutdown order (duration reached, SIGINT or SIGTERM):

1. stop the collectors (no new records);
2. move what is still queued onto the bus;
3. stop the sink, which flushes every buffer to the store and commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from worker.bus.memory import MemoryBus, MemoryDeadLetters
from worker.bus.publish_queue import PublishQueue, forward, record_published
from worker.collectors.runtime import CollectorRuntime
from worker.config import Settings
from worker.logging import get_logger
from worker.sink.app import serve
from worker.storage import open_store

log = get_logger("embedded")


async def run_embedded(settings: Settings, duration_s: float | None) -> int:
    """Run until ``duration_s`` passes or a signal arrives; return the exit code."""
    bus = MemoryBus()
    queue = PublishQueue(settings.collector.queue_max_records)
    runtime = CollectorRuntime.for_queue(settings.collector, settings.kafka, queue)
    store = await open_store(settings.storage)
    topics = [settings.kafka.topic(dt) for dt in settings.sink.data_types]
    source = bus.source(settings.sink.group_id, topics)
    sink_stop = asyncio.Event()
    dead = MemoryDeadLetters(bus, settings.kafka.dlq_topic)
    sink = asyncio.create_task(
        serve(settings, source=source, store=store, dead_letters=dead, stop=sink_stop)
    )
    try:
        await _until_joined(source, sink)
        stop = _stop_event()  # after the sink's own handlers: ours decide the order
        forwarder = asyncio.create_task(forward(queue, bus), name="forward")
        runtime.start()
        log.info("embedded_started", storage=settings.storage.url, duration_s=duration_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration_s)
        log.info("embedded_stopping")
        await runtime.stop()
        forwarder.cancel()
        await asyncio.gather(forwarder, return_exceptions=True)
        await _drain(queue, bus)
    finally:
        sink_stop.set()
        code = await sink
        await store.close()
    log.info("embedded_stopped", exit_code=code, dropped=queue.dropped)
    return code


async def _until_joined(source: object, sink: asyncio.Task[int]) -> None:
    """Wait until the sink has installed its handlers and joined the bus."""
    while not getattr(source, "joined", False):
        if sink.done():
            sink.result()  # raises the sink's start-up error
            raise RuntimeError("sink stopped during start-up")
        await asyncio.sleep(0.01)


async def _drain(queue: PublishQueue, bus: MemoryBus) -> None:
    while len(queue):
        items = queue.take(10_000)
        for item in items:
            await bus.publish(item.topic, item.key, item.value)
        record_published(items)


def _stop_event() -> asyncio.Event:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, event.set)
    return event
