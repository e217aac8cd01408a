"""The bounded publish queue: FIFO, drop-oldest past the bound (counted), requeue at the head."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from worker.bus.publish_queue import Outgoing, PublishQueue, forward
from worker.records import DataType


def item(n: int, dt: DataType = DataType.TRADES) -> Outgoing:
    return Outgoing("t", b"k", str(n).encode(), "binance", dt, 0.0)


def values(items: list[Outgoing]) -> list[int]:
    return [int(i.value) for i in items]


def dropped(dt: str) -> float:
    return (
        REGISTRY.get_sample_value("ticklake_collector_dropped_records_total", {"data_type": dt})
        or 0
    )


def test_fifo_and_take_limit() -> None:
    q = PublishQueue(10)
    for n in range(5):
        q.put(item(n))
    assert values(q.take(3)) == [0, 1, 2]
    assert values(q.take(10)) == [3, 4]
    assert len(q) == 0


def test_full_queue_drops_the_oldest_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    before = dropped("ohlcv")
    q = PublishQueue(3)
    for n in range(5):
        q.put(item(n, DataType.OHLCV))
    assert values(q.take(10)) == [2, 3, 4]
    assert q.dropped == 2
    assert dropped("ohlcv") - before == 2


def test_requeue_puts_failed_records_back_first_in_order() -> None:
    q = PublishQueue(10)
    for n in range(4):
        q.put(item(n))
    taken = q.take(2)
    q.put(item(9))
    q.requeue(taken)
    assert values(q.take(10)) == [0, 1, 2, 3, 9]


def test_requeue_past_the_bound_still_drops_oldest() -> None:
    q = PublishQueue(3)
    taken = [item(0), item(1)]
    for n in range(2, 5):
        q.put(item(n))
    q.requeue(taken)
    assert values(q.take(10)) == [2, 3, 4]
    assert q.dropped == 2


class FlakyBus:
    def __init__(self, fail_times: int) -> None:
        self.fail_times = fail_times
        self.got: list[bytes] = []

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("bus down")
        self.got.append(value)


async def test_forward_retries_without_loss_or_reorder() -> None:
    q = PublishQueue(100)
    bus = FlakyBus(fail_times=3)
    for n in range(20):
        q.put(item(n))
    task = asyncio.create_task(forward(q, bus, chunk=7, retry_s=0.01))
    for _ in range(200):
        if len(bus.got) == 20:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [int(v) for v in bus.got] == list(range(20))
