"""Dead letters: messages ``records.decode`` refuses, kept, never dropped.

Each goes to the dead-letter topic unchanged (key and value), with headers
saying why and where it came from: ``ticklake.reason`` (an
:class:`~worker.records.InvalidReason`), ``ticklake.detail``,
``ticklake.source`` (``topic/partition/offset``). The log line names the
field the detail is about, never its value: a refused message's content
stays in the dead-letter topic (:func:`field_of`). Sends are awaited in
:meth:`flush` before the sink records the offset as done; after a crash a
dead letter may be sent twice (dedupe on ``ticklake.source``).
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any, Protocol

from aiokafka import AIOKafkaProducer

from worker.bus.broker_watch import BrokerWatch, watched
from worker.bus.kafka_source import kafka_client_kwargs
from worker.logging import get_logger
from worker.metrics import SINK_DEAD_LETTERS

if TYPE_CHECKING:
    from worker.bus.source import Message
    from worker.config import KafkaConfig
    from worker.records import InvalidReason

log = get_logger("sink.dead_letter")
Headers = list[tuple[str, bytes]]


_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_]{0,63})(?:=| outside |$)")


def field_of(detail: str) -> str | None:
    """The field a refusal's detail names (``price=...`` -> ``price``), for logs; or None.

    Details quote values (``wrong_type``: ``price='abc'``; ``invalid_exchange``:
    the exchange): payload, which the dead letter's header keeps in full.
    """
    found = _FIELD.match(detail)
    return found.group(1) if found else None


def dead_letter_headers(msg: Message, reason: InvalidReason, detail: str) -> Headers:
    return [
        ("ticklake.reason", reason.value.encode()),
        ("ticklake.detail", detail[:500].encode()),
        ("ticklake.source", f"{msg.topic}/{msg.partition}/{msg.offset}".encode()),
    ]


class DeadLetters(Protocol):
    async def send(self, msg: Message, reason: InvalidReason, detail: str) -> None:
        """Queue one dead letter (may return before it is acknowledged)."""
        ...

    async def flush(self) -> None:
        """Wait until every queued dead letter is acknowledged (raises if one failed)."""
        ...


class KafkaDeadLetters:
    """Dead letters to a Kafka topic (idempotent producer, acks=all)."""

    def __init__(self, cfg: KafkaConfig) -> None:
        self.topic = cfg.dlq_topic
        self._producer = AIOKafkaProducer(
            **kafka_client_kwargs(cfg), acks="all", enable_idempotence=True, linger_ms=5
        )
        self._pending: list[tuple[Message, InvalidReason, str, asyncio.Future[Any]]] = []
        self._bootstrap = cfg.bootstrap_servers
        self.broker = BrokerWatch("dead_letter")
        self.broker.attach(self._producer.client)

    async def start(self) -> None:
        await watched(self.broker, self._producer.start(), self._bootstrap)

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, msg: Message, reason: InvalidReason, detail: str) -> None:
        await self._send(msg, reason, detail)
        SINK_DEAD_LETTERS.labels(reason.value).inc()
        log.warning(
            "dead_letter",
            reason=reason.value,
            field=field_of(detail),
            source=f"{msg.topic}/{msg.partition}/{msg.offset}",
        )

    async def _send(self, msg: Message, reason: InvalidReason, detail: str) -> None:
        headers = dead_letter_headers(msg, reason, detail)
        fut = await self._producer.send(self.topic, msg.value, key=msg.key, headers=headers)
        self._pending.append((msg, reason, detail, fut))

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        results = await asyncio.gather(*(p[3] for p in pending), return_exceptions=True)
        failed = [p for p, r in zip(pending, results, strict=True) if isinstance(r, BaseException)]
        for msg, reason, detail, _ in failed:  # queued again: the next flush retries them
            await self._send(msg, reason, detail)
        if failed:
            raise DeadLetterError(f"{len(failed)} dead letters not acknowledged")


class DeadLetterError(Exception):
    """Some dead letters were not acknowledged; they are queued again."""

    retriable = True
