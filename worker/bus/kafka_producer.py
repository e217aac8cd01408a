"""Publishing records to Kafka: idempotent aiokafka producer behind the queue.

Delivery, in order:

1. Collectors put encoded records in the bounded :class:`PublishQueue`.
2. :meth:`KafkaPublisher.run` takes a chunk off the head and hands every
   record to aiokafka (``acks=all``, idempotent, compressed). aiokafka
   batches and retries on its own until ``request_timeout_ms``.
3. It waits for every record's acknowledgement. Acknowledged records are
   counted as published and forgotten. Failed ones (broker down longer than
   aiokafka's own retries) go back to the head of the queue and are re-sent
   after a capped, jittered backoff, by a NEW producer: once a batch expired,
   aiokafka's idempotent sequence numbers no longer match the broker's and
   every later send of that producer fails. Newer records wait in the queue
   meanwhile, so a broker outage costs memory, not data, until the queue's
   bound; past it the oldest records are dropped, counted and logged.

A record re-sent after a failure the broker actually committed can appear
twice in Kafka (at-least-once); the sink removes exact duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.codec import has_gzip, has_lz4, has_snappy, has_zstd
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from worker import metrics
from worker.bus.broker_watch import BrokerWatch
from worker.bus.kafka_source import kafka_client_kwargs
from worker.bus.publish_queue import Outgoing, Publisher, PublishQueue, record_published
from worker.collectors.backoff import Backoff
from worker.config import KafkaConfig
from worker.logging import get_logger

__all__ = ["KafkaPublisher", "Publisher"]

log = get_logger("collector.kafka")

_CODECS = {"gzip": has_gzip, "lz4": has_lz4, "zstd": has_zstd, "snappy": has_snappy}


def error_reason(exc: BaseException) -> str:
    """Bounded metric label for a publish failure."""
    if isinstance(exc, KafkaTimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, KafkaConnectionError):
        return "connection"
    if isinstance(exc, KafkaError):
        return "broker"
    return "other"


def producer_kwargs(cfg: KafkaConfig) -> dict[str, Any]:
    """aiokafka producer arguments; fails early if the codec is missing."""
    codec = None if cfg.compression == "none" else cfg.compression
    if codec is not None and not _CODECS[codec]():
        raise RuntimeError(f"kafka.compression={codec!r} but its codec library is not installed")
    return {
        **kafka_client_kwargs(cfg),
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": codec,
        "linger_ms": cfg.linger_ms,
        "max_batch_size": cfg.max_batch_bytes,
    }


class KafkaPublisher:
    """Owns the aiokafka producer and the sender loop over a queue."""

    def __init__(
        self,
        cfg: KafkaConfig,
        queue: PublishQueue,
        chunk_records: int = 5_000,
        factory: Callable[..., Any] = AIOKafkaProducer,
    ) -> None:
        self._kwargs = producer_kwargs(cfg)
        self._factory = factory
        self._queue = queue
        self._chunk = chunk_records
        self._producer: AIOKafkaProducer | None = None
        self._backoff = Backoff(base_s=0.2, max_s=5.0, healthy_after_s=10.0)
        self.ready = False
        # Across producers: a resend makes a new one (worker/bus/broker_watch.py).
        self.broker = BrokerWatch("producer")

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        """The :class:`Publisher` protocol: send one record and wait for its ack."""
        producer = await self._started()
        await producer.send_and_wait(topic, value=value, key=key)

    async def run(self) -> None:
        """Sender loop: runs until cancelled (see the module docstring)."""
        while True:
            await self._queue.wait()
            items = self._queue.take(self._chunk)
            await self._deliver(items)

    async def drain(self, deadline_s: float) -> int:
        """Publish what is queued within ``deadline_s``; return what is left."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline_s):
                while len(self._queue):
                    await self._deliver(self._queue.take(self._chunk))
        if len(self._queue):
            log.error("kafka_drain_deadline_passed", left=len(self._queue))
        return len(self._queue)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        self.ready = False

    async def _started(self) -> AIOKafkaProducer:
        while self._producer is None:
            producer = self._factory(**self._kwargs)
            client = getattr(producer, "client", None)
            if client is not None and hasattr(client, "_metadata_update"):  # not a test double
                self.broker.attach(client)
            try:
                await producer.start()
            except KafkaError as exc:
                await producer.stop()
                self.broker.failed(exc)
                metrics.COLLECTOR_PUBLISH_ERRORS.labels(error_reason(exc)).inc()
                delay = self._backoff.next_delay()
                log.warning("kafka_connect_failed", error=str(exc)[:200], retry_in_s=delay)
                await asyncio.sleep(delay)
                continue
            self._producer = producer
            self.ready = True
            log.info("kafka_producer_started", bootstrap=self._kwargs["bootstrap_servers"])
        return self._producer

    async def _deliver(self, items: list[Outgoing]) -> None:
        """Send ``items`` until every one is acknowledged (or cancelled)."""
        pending = items
        try:
            while pending:
                pending, error = await self._send_once(pending)
                if pending:
                    self.ready = False
                    delay = self._backoff.next_delay()
                    log.error(
                        "kafka_publish_failed_will_resend",
                        records=len(pending),
                        error=error,
                        retry_in_s=round(delay, 3),
                    )
                    await self.stop()  # a fresh producer id and sequence numbers
                    await asyncio.sleep(delay)
        except BaseException:
            self._queue.requeue(pending)  # cancelled mid-flight: keep them
            raise
        self.ready = True
        self._backoff.observe_healthy()

    async def _send_once(self, items: list[Outgoing]) -> tuple[list[Outgoing], str]:
        """One attempt: the records not acknowledged, in order, and the first error."""
        producer = await self._started()
        futures: list[asyncio.Future[Any]] = []
        unsent: list[Outgoing] = []
        error = ""
        for n, item in enumerate(items):
            try:
                futures.append(await producer.send(item.topic, value=item.value, key=item.key))
            except KafkaError as exc:  # metadata or buffer timeout: resend the rest
                metrics.COLLECTOR_PUBLISH_ERRORS.labels(error_reason(exc)).inc()
                unsent, error = items[n:], f"{type(exc).__name__}: {exc}"[:200]
                break
        results = await asyncio.gather(*futures, return_exceptions=True)
        acked: list[Outgoing] = []
        failed: list[Outgoing] = []
        for item, result in zip(items, results, strict=False):
            if isinstance(result, BaseException):
                metrics.COLLECTOR_PUBLISH_ERRORS.labels(error_reason(result)).inc()
                error = error or f"{type(result).__name__}: {result}"[:200]
                failed.append(item)
            else:
                acked.append(item)
        record_published(acked)
        return failed + unsent, error
