"""Kafka :class:`~worker.bus.source.Source` over aiokafka's ``AIOKafkaConsumer``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import aiokafka
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka import TopicPartition as KafkaTP
from aiokafka.errors import KafkaError

from worker.bus import kafka_fetch
from worker.bus.broker_watch import BrokerWatch, watched
from worker.bus.source import Batch, CommitError, RebalanceListener, TopicPartition, chunk_of
from worker.logging import get_logger, reveal

if TYPE_CHECKING:
    from worker.config import KafkaConfig

log = get_logger("bus.kafka")


def kafka_client_kwargs(cfg: KafkaConfig) -> dict[str, Any]:
    """Connection settings shared by consumers and producers."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol,
        "request_timeout_ms": cfg.request_timeout_ms,
    }
    if cfg.sasl_mechanism:
        kwargs["sasl_mechanism"] = cfg.sasl_mechanism
        kwargs["sasl_plain_username"] = cfg.sasl_username
        kwargs["sasl_plain_password"] = reveal(cfg.sasl_password) if cfg.sasl_password else None
    return kwargs


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, owner: KafkaSource, listener: RebalanceListener) -> None:
        self._owner, self._listener = owner, listener

    async def on_partitions_revoked(self, revoked: Iterable[KafkaTP]) -> None:
        await self._listener.on_revoked({TopicPartition(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Iterable[KafkaTP]) -> None:
        self._owner.joined = True
        await self._listener.on_assigned(
            {TopicPartition(tp.topic, tp.partition) for tp in assigned}
        )


class KafkaSource:
    """A consumer-group member with auto-commit off."""

    def __init__(
        self,
        cfg: KafkaConfig,
        group_id: str,
        topics: list[str],
        *,
        session_timeout_ms: int = 30_000,
        heartbeat_interval_ms: int = 3_000,
        fast_fetch: bool = True,
        unreachable_after_s: float = 10.0,
    ) -> None:
        self.joined = False
        self._bootstrap = cfg.bootstrap_servers
        self._topics = topics
        self.chunked = fast_fetch and kafka_fetch.install()
        if fast_fetch and not self.chunked:
            log.warning(
                "fast_fetch_unavailable",
                aiokafka=aiokafka.__version__,
                tested=sorted(kafka_fetch.TESTED_VERSIONS),
            )
        self._consumer = AIOKafkaConsumer(
            **kafka_client_kwargs(cfg),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Fetched, not yet consumed data sits outside the buffer cap: keep it small.
            max_partition_fetch_bytes=2 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
            # A revoke may flush buffers to S3; give it room before the group moves on.
            max_poll_interval_ms=300_000,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            value_deserializer=kafka_fetch.CHUNKED if self.chunked else None,
        )
        # Logs and counts broker outages (worker/bus/broker_watch.py).
        self.broker = BrokerWatch("consumer", unreachable_after_s=unreachable_after_s)
        self.broker.attach(self._consumer._client)  # the consumer's client

    async def start(self, listener: RebalanceListener) -> None:
        self._consumer.subscribe(self._topics, listener=_Listener(self, listener))
        await watched(self.broker, self._consumer.start(), self._bootstrap)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def getmany(self, timeout_s: float, max_records: int) -> Batch:
        timeout_ms = int(timeout_s * 1000)
        self.broker.check()
        if self.chunked:  # aiokafka counts chunks of ~CHUNK_RECORDS messages
            chunks = max(1, max_records // kafka_fetch.CHUNK_RECORDS)
            batch: Batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=chunks)
            return batch
        msgs = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return {tp: [chunk_of(m)] for tp, m in msgs.items()}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(KafkaTP(*tp), offset)

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.pause(*(KafkaTP(*tp) for tp in partitions))

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.resume(*(KafkaTP(*tp) for tp in partitions))

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def highwater(self, tp: TopicPartition) -> int | None:
        value = self._consumer.highwater(KafkaTP(*tp))
        return int(value) if value is not None else None

    async def committed(self, tp: TopicPartition) -> int | None:
        value = await self._consumer.committed(KafkaTP(*tp))
        return int(value) if value is not None else None

    async def beginning(self, tp: TopicPartition) -> int:
        offsets = await self._consumer.beginning_offsets([KafkaTP(*tp)])
        return int(offsets[KafkaTP(*tp)])

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit({KafkaTP(*tp): off for tp, off in offsets.items()})
        except KafkaError as exc:
            raise CommitError(f"{type(exc).__name__}: {exc}") from exc
