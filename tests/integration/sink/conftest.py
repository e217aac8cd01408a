"""Fixtures for the sink's integration tests: real Kafka, real S3, the sink in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.helpers import S3Config, TopicFactory
from tests.sinkkit import message
from worker.config import Settings, StorageConfig
from worker.records import DataType
from worker.sink.app import run_sink
from worker.storage.s3 import S3Store


@dataclass
class SinkLab:
    """Topics, a bucket and a consumer group for one test; runs the sink in this loop."""

    kafka: str
    s3: S3Config
    bucket: str
    group: str
    topics: dict[DataType, str]
    dlq: str
    end_offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    def settings(self, **sink: Any) -> Settings:
        storage = self.storage_config().model_dump()
        storage.update(max_attempts=3, backoff_base_s=0.05, backoff_max_s=0.5)
        return Settings(
            http={"host": "127.0.0.1", "port": 0},
            kafka={
                "bootstrap_servers": self.kafka,
                "topics": {dt.value: t for dt, t in self.topics.items()},
                "dead_letter_topic": self.dlq,
            },
            storage=storage,
            sink={
                "group_id": self.group,
                "max_age_s": 0.5,
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 1000,
                "data_types": list(self.topics),
                **sink,
            },
        )

    def storage_config(self, **kw: Any) -> StorageConfig:
        return StorageConfig(
            url=f"s3://{self.bucket}",
            endpoint_url=self.s3.endpoint_url,
            region=self.s3.region,
            access_key_id=self.s3.access_key,  # type: ignore[arg-type]
            secret_access_key=self.s3.secret_key,  # type: ignore[arg-type]
            **kw,
        )

    @contextlib.asynccontextmanager
    async def store(self) -> AsyncIterator[S3Store]:
        store = S3Store(self.storage_config())
        await store.start()
        try:
            yield store
        finally:
            await store.close()

    async def produce(self, dt: DataType, records: list[dict[str, Any]]) -> None:
        await self.produce_raw(dt, [message(dt, r) for r in records])

    async def produce_raw(self, dt: DataType, msgs: list[tuple[bytes | None, bytes]]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.kafka, acks="all")
        await producer.start()
        try:
            futs = [await producer.send(self.topics[dt], v, key=k) for k, v in msgs]
            for md in await asyncio.gather(*futs):
                key = (md.topic, md.partition)
                self.end_offsets[key] = max(self.end_offsets.get(key, 0), md.offset + 1)
        finally:
            await producer.stop()

    async def all_stored(self) -> bool:
        """Every partition produced to has its state object at its end offset."""
        async with self.store() as store:
            for (topic, part), end in self.end_offsets.items():
                try:
                    blob = await store.get(f"_state/{self.group}/{topic}/{part}.json")
                except Exception:
                    return False
                import orjson

                if (orjson.loads(blob.data).get("next_offset") or 0) < end:
                    return False
        return True

    async def run(
        self,
        settings: Settings,
        until: Callable[[], Awaitable[bool]] | None = None,
        timeout_s: float = 30,
    ) -> int:
        """Run the sink until ``until()`` (default: everything stored), then stop it cleanly."""
        stop = asyncio.Event()
        task = asyncio.create_task(run_sink(settings, stop))
        check = until or self.all_stored
        try:
            async with asyncio.timeout(timeout_s):
                while not await check():
                    if task.done():
                        return task.result()
                    await asyncio.sleep(0.2)
        finally:
            stop.set()
        return await task

    async def dead_letters(self, expected: int) -> list[Any]:
        consumer = AIOKafkaConsumer(
            self.dlq, bootstrap_servers=self.kafka, auto_offset_reset="earliest"
        )
        await consumer.start()
        out: list[Any] = []
        try:
            async with asyncio.timeout(15):
                while len(out) < expected:
                    batch = await consumer.getmany(timeout_ms=500)
                    for msgs in batch.values():
                        out.extend(msgs)
        finally:
            await consumer.stop()
        return out


@pytest.fixture
async def lab(
    kafka_bootstrap: str,
    s3_config: S3Config,
    topic_factory: TopicFactory,
    unique_group: str,
    bucket: str,
) -> SinkLab:
    topics = {dt: await topic_factory(2, prefix=f"sink-{dt.value}") for dt in DataType}
    dlq = await topic_factory(1, prefix="sink-dlq")
    return SinkLab(kafka_bootstrap, s3_config, bucket, unique_group, topics, dlq)
