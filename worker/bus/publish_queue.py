"""The bounded queue between collectors and a publisher.

Collectors never wait for the bus: they ``put`` encoded records here and go
back to the websocket. A sender task takes records off the head, publishes
them and, if publishing fails, puts them back at the head to be re-sent. So
a record leaves the collector's memory only once the bus acknowledged it.

The queue holds at most ``max_records``. Past the bound the OLDEST records
are dropped: each drop is counted (``ticklake_collector_dropped_records_total``)
and logged at error level (at most once per second, with the count), never
silently.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from worker import metrics
from worker.logging import get_logger
from worker.records import DataType

log = get_logger("collector.queue")


class Publisher(Protocol):
    """Anything records can be published to: Kafka, the in-process bus."""

    async def publish(self, topic: str, key: bytes, value: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One encoded record on its way to the bus."""

    topic: str
    key: bytes
    value: bytes
    exchange: str
    data_type: DataType
    received_at_s: float  # monotonic clock, for the publish-latency histogram


class PublishQueue:
    """FIFO with a hard bound; drops the oldest records when full."""

    def __init__(self, max_records: int) -> None:
        self.max_records = max_records
        self._items: deque[Outgoing] = deque()
        self._ready = asyncio.Event()
        self._dropped_since_log = 0
        self._last_drop_log = 0.0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Outgoing) -> None:
        """Append without ever blocking; drop the oldest record if full."""
        self._items.append(item)
        self._trim()
        self._changed()

    def take(self, limit: int) -> list[Outgoing]:
        """Remove and return up to ``limit`` records from the head."""
        n = min(limit, len(self._items))
        out = [self._items.popleft() for _ in range(n)]
        self._changed()
        return out

    def requeue(self, items: Iterable[Outgoing]) -> None:
        """Put records that failed to publish back at the head, in order."""
        self._items.extendleft(reversed(list(items)))
        self._trim()
        self._changed()

    async def wait(self) -> None:
        """Return once the queue holds at least one record."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()

    def _changed(self) -> None:
        metrics.COLLECTOR_QUEUE_DEPTH.set(len(self._items))
        if self._items:
            self._ready.set()

    def _trim(self) -> None:
        while len(self._items) > self.max_records:
            dropped = self._items.popleft()
            metrics.COLLECTOR_DROPPED.labels(dropped.data_type.value).inc()
            self.dropped += 1
            self._dropped_since_log += 1
        self._log_drops()

    def _log_drops(self) -> None:
        now = time.monotonic()
        if self._dropped_since_log and now - self._last_drop_log >= 1.0:
            log.error(
                "publish_queue_full_dropped_oldest",
                dropped=self._dropped_since_log,
                dropped_total=self.dropped,
                max_records=self.max_records,
            )
            self._dropped_since_log = 0
            self._last_drop_log = now


def record_published(items: Iterable[Outgoing]) -> None:
    """Count acknowledged records (one place for every publisher)."""
    now = time.monotonic()
    counts: Counter[tuple[str, DataType]] = Counter()
    for item in items:
        counts[(item.exchange, item.data_type)] += 1
        metrics.COLLECTOR_PUBLISH_LATENCY.observe(now - item.received_at_s)
    for (exchange, data_type), n in counts.items():
        metrics.COLLECTOR_PUBLISHED.labels(exchange, data_type.value).inc(n)


async def forward(
    queue: PublishQueue, publisher: Publisher, chunk: int = 500, retry_s: float = 0.5
) -> None:
    """Drain ``queue`` into any :class:`Publisher`, one awaited publish at a time.

    Runs until cancelled. A failed publish puts the unsent records back at the
    head of the queue and retries after ``retry_s``.
    """
    while True:
        await queue.wait()
        items = queue.take(chunk)
        for i, item in enumerate(items):
            try:
                await publisher.publish(item.topic, item.key, item.value)
            except Exception as exc:  # noqa: BLE001  # any bus failure: keep the records, retry
                metrics.COLLECTOR_PUBLISH_ERRORS.labels("bus").inc()
                log.warning("publish_failed_will_retry", error=str(exc)[:200])
                queue.requeue(items[i:])
                await asyncio.sleep(retry_s)
                break
            record_published((item,))
