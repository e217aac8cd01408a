"""A recorded capture replayed by the emulator comes out of the collector unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from tests.helpers import TopicFactory
from tests.integration.collectors.conftest import Harness, read_topic
from worker.emulator import Emulator, EmulatorConfig
from worker.records import DataType

CAPTURE = Path(__file__).resolve().parents[2] / "data" / "binance_spot_capture.jsonl"
MARKETS = Path(__file__).resolve().parents[3] / "configs" / "markets" / "emulator-binance.json"


@pytest.fixture
async def replay_harness(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> AsyncIterator[Harness]:
    em = Emulator(EmulatorConfig(replay=CAPTURE, replay_speed=3.0, replay_delay_s=0.5))
    await em.start()
    topics = {dt: await topic_factory(prefix=f"r-{dt.value}") for dt in DataType}
    h = Harness(em, kafka_bootstrap, topics)
    try:
        yield h
    finally:
        if h.task is not None:
            await h.stop()
        await em.stop()


def capture_trades() -> list[tuple]:
    out = []
    for line in CAPTURE.read_bytes().splitlines():
        d = orjson.loads(line)["data"]
        if d["e"] == "trade":
            symbol = {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"}[d["s"]]
            out.append((symbol, str(d["t"]), float(d["p"]), float(d["q"]), d["m"]))
    return out


async def test_replayed_capture_trades_arrive_unchanged(replay_harness: Harness) -> None:
    h = replay_harness
    await h.start({"trades": True, "ohlcv": {"timeframes": ["1s"]}})
    await asyncio.sleep(4.5)  # 6.5 s of capture at 3x, after the first subscription
    await h.settle(1.0)
    await h.stop()

    got = await read_topic(h.bootstrap, h.topics[DataType.TRADES])
    mine = sorted(
        (r["symbol"], r["id"], r["price"], r["amount"], r["side"] == "sell") for _, r in got
    )
    assert mine == sorted(capture_trades())
    candles = [r for _, r in await read_topic(h.bootstrap, h.topics[DataType.OHLCV])]
    assert len(candles) >= 6
    assert len({(c["symbol"], c["timestamp"]) for c in candles}) == len(candles)


async def test_markets_file_means_no_rest_call_at_start(replay_harness: Harness) -> None:
    h = replay_harness
    settings = h.settings({"trades": True})
    exchange = settings.collector.exchanges[0].model_copy(update={"markets_file": MARKETS})
    collector = settings.collector.model_copy(update={"exchanges": [exchange]})
    h.stop_event = asyncio.Event()
    from worker.collectors.app import run_collect

    h.task = asyncio.create_task(
        run_collect(settings.model_copy(update={"collector": collector}), h.stop_event)
    )
    await asyncio.sleep(3)
    await h.stop()
    assert h.emulator.hub.stats["exchange_info_requests"] == 0
    assert len(await read_topic(h.bootstrap, h.topics[DataType.TRADES])) > 0
