"""Stream logic without sockets: trade cursors, dedupe, book throttling, kafka resend."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from worker.bus.kafka_producer import KafkaPublisher
from worker.bus.publish_queue import Outgoing, PublishQueue
from worker.collectors.emit import Emitter
from worker.collectors.streams import OrderBookStream, TradesStream
from worker.collectors.streams.trades import RecentIds
from worker.config import KafkaConfig
from worker.records import DataType, TimeWindow, decode

T0 = 1_764_806_400_000  # 2025-12-04T00:00:00Z: inside the contract's time window
ANY_TIME = TimeWindow(min_ms=0, max_ahead_ms=10**15)


class FakeExchange:
    def __init__(self) -> None:
        self.trades: dict[str, deque[dict[str, Any]]] = {}
        self.orderbooks: dict[str, dict[str, Any]] = {}
        self.clients: dict[str, object] = {}


def trade(n: int, symbol: str = "BTC/USDT") -> dict[str, Any]:
    return {"id": str(n), "symbol": symbol, "timestamp": T0 + n, "price": 1.0, "amount": 2.0}


def make(cls: Any, **kw: Any) -> tuple[Any, FakeExchange, PublishQueue]:
    ex = FakeExchange()
    queue = PublishQueue(1000)
    emitter = Emitter(queue, KafkaConfig(), "c1")
    return cls(ex, "binance", ["BTC/USDT", "ETH/USDT"], emitter, **kw), ex, queue


def published(queue: PublishQueue) -> list[dict[str, Any]]:
    # received_at values here are small counters: any time is fine for these tests
    return [decode(item.value, ANY_TIME)[1] for item in queue.take(10_000)]


def test_trade_cursor_reads_each_trade_once() -> None:
    stream, ex, queue = make(TradesStream)
    cache: deque[dict[str, Any]] = deque(maxlen=5)
    ex.trades["BTC/USDT"] = cache
    cache.extend([trade(1), trade(2)])
    stream.drain("BTC/USDT", 5)
    stream.drain("BTC/USDT", 6)
    cache.extend([trade(3)])
    stream.sweep()  # ccxt did not write ex.trades[...]: nothing to read
    ex.trades["BTC/USDT"] = cache  # what ccxt does on every trade
    stream.sweep()
    assert [r["id"] for r in published(queue)] == ["1", "2", "3"]
    assert stream.updated_symbols() == []


def test_trade_cursor_survives_cache_eviction() -> None:
    stream, ex, queue = make(TradesStream)
    cache: deque[dict[str, Any]] = deque(maxlen=3)
    ex.trades["BTC/USDT"] = cache
    cache.extend([trade(1), trade(2)])
    stream.drain("BTC/USDT", 5)
    cache.extend([trade(3), trade(4), trade(5), trade(6)])  # 2 fell out before we read
    stream.drain("BTC/USDT", 5)
    assert [r["id"] for r in published(queue)] == ["1", "2", "4", "5", "6"]


def test_replayed_trade_ids_are_duplicates_and_bad_trades_are_skipped() -> None:
    stream, ex, queue = make(TradesStream, dedupe_ids=100)
    bad = {**trade(3), "price": float("nan")}
    ex.trades["BTC/USDT"] = deque([trade(1), trade(2), dict(trade(2)), bad, trade(4)])
    stream.drain("BTC/USDT", 5)
    records = published(queue)
    assert [r["id"] for r in records] == ["1", "2", "4"]
    assert all(r["collector_id"] == "c1" for r in records)


def test_a_silent_redial_is_noticed_once() -> None:
    stream, ex, _ = make(TradesStream)
    assert stream.redialled() is False  # no socket yet
    ex.clients = {"u": object()}
    assert stream.redialled() is False  # first socket
    assert stream.redialled() is False
    ex.clients = {"u": object()}  # ccxt replaced it
    assert stream.redialled() is True
    assert stream.redialled() is False
    stream.forget_sockets()  # the supervisor handled a failure
    ex.clients = {"u": object()}
    assert stream.redialled() is False


def test_recent_ids_is_bounded() -> None:
    ids = RecentIds(3)
    assert [ids.seen(x) for x in "abcab"] == [False, False, False, True, True]
    ids.seen("d")  # evicts "a"
    assert ids.seen("a") is False
    assert len(ids._ids) == 3


def test_books_publish_on_new_nonce_only_and_respect_throttle() -> None:
    stream, ex, queue = make(OrderBookStream, depth=2, throttle_ms=60_000)
    book = {"timestamp": T0 + 5, "nonce": 10, "bids": [[1.0, 1.0]], "asks": [[2.0, 1.0]]}
    ex.orderbooks["BTC/USDT"] = book
    stream.drain("BTC/USDT", 7)
    stream.drain("BTC/USDT", 7)  # same nonce
    book["nonce"] = 11
    stream.drain("BTC/USDT", 7)  # throttled
    ex.orderbooks["ETH/USDT"] = {**book, "nonce": None}  # waiting for its snapshot
    stream.drain("ETH/USDT", 7)
    assert [(r["symbol"], r["nonce"]) for r in published(queue)] == [("BTC/USDT", 10)]


class FakeFuture(asyncio.Future[Any]):
    pass


class FlakyProducer:
    """aiokafka-like: the first ``fail`` sends fail at acknowledgement."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.acked: list[bytes] = []
        self.starts = 0

    def __call__(self, **kwargs: Any) -> FlakyProducer:
        return self

    async def start(self) -> None:
        self.starts += 1

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail:
            self.fail -= 1
            fut.set_exception(TimeoutError("broker away"))
        else:
            self.acked.append(value)
            fut.set_result(None)
        return fut


async def test_kafka_publisher_resends_failed_records_before_newer_ones() -> None:
    queue = PublishQueue(100)
    producer = FlakyProducer(fail=3)
    pub = KafkaPublisher(KafkaConfig(compression="none"), queue, chunk_records=4, factory=producer)
    pub._backoff.base_s = pub._backoff.max_s = 0.001
    for n in range(10):
        queue.put(Outgoing("t", b"k", str(n).encode(), "binance", DataType.TRADES, 0.0))
    assert await pub.drain(5.0) == 0
    # 0-2 failed, 3 was acknowledged in the same attempt; 0-2 are re-sent before 4-9.
    assert [int(v) for v in producer.acked] == [3, 0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert producer.starts == 2  # a failed attempt replaces the producer
