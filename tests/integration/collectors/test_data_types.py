"""Each data type: emulator -> ccxt.pro -> collector -> Kafka, in contract form, values intact."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.collectors.conftest import Harness, read_topic
from worker.records import DataType


def trade_key(r: dict) -> tuple:
    return (r["symbol"], r["id"], r["timestamp"], r["price"], r["amount"], r["side"])


async def test_trades_arrive_exactly_as_sent(harness: Harness) -> None:
    await harness.start({"trades": True})
    await harness.streaming("trade")
    await asyncio.sleep(3)
    await harness.settle()
    assert await harness.stop() == 0

    sent = harness.sent("trades")
    got = await read_topic(harness.bootstrap, harness.topics[DataType.TRADES], expect=len(sent))
    assert len(sent) > 50
    assert sorted(trade_key(r) for _, r in got) == sorted(trade_key(r) for r in sent)
    for key, r in got:
        assert key == f"binance:{r['symbol']}".encode()
        assert r["exchange"] == "binance"
        assert r["collector_id"] == "test-collector"
        assert r["received_at"] >= r["timestamp"] * 1000
        assert r["cost"] == pytest.approx(r["price"] * r["amount"])


async def test_orderbook_snapshots_match_the_emulator_book(harness: Harness) -> None:
    await harness.start({"trades": False, "orderbook": {"depth": 5}})
    await harness.streaming("depth")
    await asyncio.sleep(3)
    await harness.settle()
    await harness.stop()

    sent = {(r["symbol"], r["nonce"]): r for r in harness.sent("orderbook")}
    got = await read_topic(harness.bootstrap, harness.topics[DataType.ORDERBOOK])
    assert len(got) > 20
    for _, r in got:
        truth = sent[(r["symbol"], r["nonce"])]
        assert r["timestamp"] == truth["timestamp"]
        assert [[lv["price"], lv["amount"]] for lv in r["bids"]] == truth["bids"][:5]
        assert [[lv["price"], lv["amount"]] for lv in r["asks"]] == truth["asks"][:5]
    # the last state of every symbol was published (quiet symbols are swept)
    last = {}
    for r in harness.sent("orderbook"):
        last[r["symbol"]] = r["nonce"]
    published = {(r["symbol"], r["nonce"]) for _, r in got}
    assert all(item in published for item in last.items())


async def test_only_closed_candles_each_once(harness: Harness) -> None:
    await harness.start({"trades": False, "ohlcv": {"timeframes": ["1s"]}})
    await harness.streaming("kline")
    await asyncio.sleep(4.5)
    await harness.settle()
    await harness.stop()

    sent = {(r["symbol"], r["timestamp"]): r for r in harness.sent("ohlcv")}
    got = [r for _, r in await read_topic(harness.bootstrap, harness.topics[DataType.OHLCV])]
    keys = [(r["symbol"], r["timestamp"]) for r in got]
    assert len(keys) == len(set(keys)), "a candle was published twice"
    assert len(got) >= 4
    for r in got:
        truth = sent[(r["symbol"], r["timestamp"])]  # a final (x: true) kline was sent
        for field in ("open", "high", "low", "close", "volume"):
            assert r[field] == pytest.approx(truth[field])
        assert r["timeframe"] == "1s"


async def test_tickers_arrive_with_bid_and_ask(harness: Harness) -> None:
    await harness.start({"trades": False, "ticker": True})
    await harness.streaming("ticker")
    await asyncio.sleep(2)
    await harness.settle()
    await harness.stop()

    sent = {(r["symbol"], r["timestamp"]): r for r in harness.sent("ticker")}
    got = [r for _, r in await read_topic(harness.bootstrap, harness.topics[DataType.TICKER])]
    assert len(got) > 10
    for r in got:
        assert r["last"] == sent[(r["symbol"], r["timestamp"])]["last"]
        assert r["bid"] is not None
        assert r["ask"] is not None
        assert r["bid"] < r["ask"]
