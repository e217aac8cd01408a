"""Turning normalised records into queued Kafka messages."""

from __future__ import annotations

import time
from typing import Any

from worker import metrics
from worker.bus.publish_queue import Outgoing, PublishQueue
from worker.config import KafkaConfig
from worker.records import DataType, Record, encode, message_key


class Emitter:
    """Encodes records, adds lineage and puts them on the publish queue."""

    def __init__(self, queue: PublishQueue, kafka: KafkaConfig, collector_id: str) -> None:
        self.queue = queue
        self._topics = {dt: kafka.topic(dt) for dt in DataType}
        self._collector_id = collector_id
        self._latency: dict[tuple[str, DataType], Any] = {}  # metric children, looked up once

    def emit(self, data_type: DataType, record: Record) -> None:
        """Queue one contract record (never blocks)."""
        record["collector_id"] = self._collector_id
        exchange = record["exchange"]
        latency_s = record["received_at"] / 1e6 - record["timestamp"] / 1e3
        child = self._latency.get((exchange, data_type))
        if child is None:
            child = metrics.COLLECTOR_LATENCY.labels(exchange, data_type.value)
            self._latency[(exchange, data_type)] = child
        child.observe(max(latency_s, 0.0))
        self.queue.put(
            Outgoing(
                topic=self._topics[data_type],
                key=message_key(exchange, record["symbol"]),
                value=encode(data_type, record),
                exchange=exchange,
                data_type=data_type,
                received_at_s=time.monotonic(),
            )
        )
