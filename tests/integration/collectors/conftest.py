"""Fixtures for collector tests: the emulator, topics, a running collector, Kafka reads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from worker.collectors.app import run_collect
from worker.config import Settings
from worker.emulator import Emulator, EmulatorConfig
from worker.records import DataType, Record, decode


@dataclass
class Harness:
    """A collector running in this event loop against the emulator and Kafka."""

    emulator: Emulator
    bootstrap: str
    topics: dict[DataType, str]
    task: asyncio.Task[int] | None = None
    stop_event: asyncio.Event | None = None

    def settings(self, streams: dict[str, Any], **collector: Any) -> Settings:
        exchange = {
            "id": "binance",
            "symbols": self.emulator.symbols,
            "streams": streams,
            "urls": self.emulator.ccxt_urls(),
            "options": {"fetchMarkets": {"types": ["spot"]}, "watchTickers": {"name": "ticker"}},
        }
        return Settings(
            http={"host": "127.0.0.1", "port": 0},
            kafka={
                "bootstrap_servers": self.bootstrap,
                "topics": {dt.value: t for dt, t in self.topics.items()},
                "linger_ms": 5,
            },
            collector={
                "collector_id": "test-collector",
                "exchanges": [exchange],
                "backoff_base_s": 0.05,
                "backoff_max_s": 0.5,
                "sweep_interval_s": 0.2,
                **collector,
            },
        )

    async def start(self, streams: dict[str, Any], **collector: Any) -> None:
        self.stop_event = asyncio.Event()
        settings = self.settings(streams, **collector)
        self.task = asyncio.create_task(run_collect(settings, self.stop_event))

    async def streaming(self, kind: str = "trade", timeout_s: float = 30) -> None:
        """Until the collector subscribed to a ``kind`` stream (start-up may be slow)."""
        async with asyncio.timeout(timeout_s):
            while not any(kind in s.split("@", 1)[-1] for s in self.emulator.hub.by_stream):
                await asyncio.sleep(0.05)

    async def stop(self) -> int:
        assert self.task is not None
        assert self.stop_event is not None
        self.stop_event.set()
        code = await asyncio.wait_for(self.task, 30)
        self.task = None
        return code

    async def settle(self, seconds: float = 1.5) -> None:
        """Pause the feed and give the collector time to read and publish the rest."""
        await self.emulator.pause()
        await asyncio.sleep(seconds)

    def sent(self, data_type: str) -> list[dict[str, Any]]:
        return self.emulator.hub.sent.get(data_type)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def read_topic(
    bootstrap: str, topic: str, *, expect: int | None = None, idle_s: float = 2.0
) -> list[tuple[bytes | None, Record]]:
    """All (key, record) pairs in ``topic``: until ``expect`` are read or ``idle_s`` of silence."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[tuple[bytes | None, Record]] = []
    try:
        idle = 0.0
        while idle < idle_s and (expect is None or len(out) < expect):
            batch = await consumer.getmany(timeout_ms=250)
            msgs = [m for part in batch.values() for m in part]
            idle = 0.0 if msgs else idle + 0.25
            out.extend((m.key, decode(m.value)[1]) for m in msgs)
    finally:
        await consumer.stop()
    return out


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    em = Emulator(EmulatorConfig(symbols=2, rate_hz=20, seed=7))
    await em.start()
    try:
        yield em
    finally:
        await em.stop()


TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def harness(
    emulator: Emulator, kafka_bootstrap: str, topic_factory: TopicFactory
) -> AsyncIterator[Harness]:
    topics = {dt: await topic_factory(prefix=f"c-{dt.value}") for dt in DataType}
    h = Harness(emulator, kafka_bootstrap, topics)
    try:
        yield h
    finally:
        if h.task is not None:
            with contextlib.suppress(Exception):
                await h.stop()
