"""A broker outage under a running consumer is logged (with its duration) and in /metrics.

The test runs its own short-lived broker (scripts/services with a private
SERVICES_DIR and ports), never the shared one, stops it under a consumer
that owns a partition, then starts it again.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY, generate_latest
from structlog.testing import capture_logs

from tests.helpers import REPO_ROOT, SERVICES_SCRIPT, unique_name
from worker.bus.kafka_source import KafkaSource
from worker.bus.source import TopicPartition
from worker.config import KafkaConfig
from worker.metrics import KAFKA_BROKER_UNREACHABLE_SECONDS

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnBroker:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "SERVICES_DIR": str(workdir / "services"),
            "SERVICES_CACHE": str(REPO_ROOT / ".services" / "cache"),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
        }

    def run(self, command: str) -> None:
        subprocess.run(
            [str(SERVICES_SCRIPT), command],
            env=self.env,
            check=True,
            timeout=180,
            capture_output=True,
        )


class Listener:
    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        pass

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        pass


async def poll_until(source: KafkaSource, done: object, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not done():  # type: ignore[operator]  # a predicate
            await source.getmany(0.2, 100)


async def test_broker_outage_is_logged_and_measured(tmp_path: Path) -> None:
    broker = OwnBroker(tmp_path)
    await asyncio.to_thread(broker.run, "start-kafka")
    bootstrap = f"127.0.0.1:{broker.port}"
    source = None
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        topic = unique_name("broker-down")
        await admin.create_topics([NewTopic(topic, 1, 1)])
        await admin.close()
        cfg = KafkaConfig(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
        source = KafkaSource(
            cfg,
            unique_name("g-broker-down"),
            [topic],
            session_timeout_ms=6_000,
            heartbeat_interval_ms=1_000,
            unreachable_after_s=3.0,
        )
        await source.start(Listener())
        await poll_until(source, source.assignment, 60)
        before = KAFKA_BROKER_UNREACHABLE_SECONDS.labels("consumer")._value.get()
        with capture_logs() as logs:
            await asyncio.to_thread(broker.run, "stop-kafka")
            events = lambda: [e["event"] for e in logs if e["event"].startswith("broker_")]  # noqa: E731
            await poll_until(source, lambda: "broker_unreachable" in events(), 30)
            metrics = generate_latest(REGISTRY).decode()
            assert 'ticklake_kafka_broker_reachable{client="consumer"} 0.0' in metrics
            await asyncio.sleep(2)
            await asyncio.to_thread(broker.run, "start-kafka")
            await poll_until(source, lambda: "broker_reachable" in events(), 90)
        down = [e for e in logs if e["event"] == "broker_unreachable"]
        back = [e for e in logs if e["event"] == "broker_reachable"]
        assert down[0]["client"] == "consumer"
        assert down[0]["down_s"] >= 3.0
        assert len(back) == 1
        assert back[0]["down_s"] >= 5.0  # stopped, 2 s, a broker start
        metrics = generate_latest(REGISTRY).decode()
        assert 'ticklake_kafka_broker_reachable{client="consumer"} 1.0' in metrics
        counted = KAFKA_BROKER_UNREACHABLE_SECONDS.labels("consumer")._value.get() - before
        assert counted == pytest.approx(back[0]["down_s"], abs=1.0)
    finally:
        if source is not None:
            await source.stop()
        await asyncio.to_thread(broker.run, "stop-kafka")


async def test_unreachable_broker_at_start_is_logged() -> None:
    cfg = KafkaConfig(bootstrap_servers=f"127.0.0.1:{free_port()}", request_timeout_ms=2_000)
    source = KafkaSource(cfg, unique_name("g-nobroker"), ["t"])
    with capture_logs() as logs, pytest.raises(Exception, match="bootstrap"):
        await source.start(Listener())
    await source.stop()
    assert [e["event"] for e in logs] == ["broker_unreachable"]
    assert logs[0]["phase"] == "start"
    metrics = generate_latest(REGISTRY).decode()
    assert 'ticklake_kafka_broker_reachable{client="consumer"} 0.0' in metrics
