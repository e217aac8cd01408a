"""Building ccxt objects: urls/options merged, markets seeded, bad frames guarded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from worker.collectors.exchange import create_exchange, exchange_class, read_markets_file
from worker.collectors.runtime import known_symbols
from worker.config import ExchangeConfig
from worker.records import DataType

MARKETS = Path(__file__).resolve().parents[3] / "configs" / "markets" / "emulator-binance.json"


def cfg(**over: object) -> ExchangeConfig:
    base: dict[str, object] = {
        "id": "binance",
        "symbols": ["BTC/USDT"],
        "urls": {
            "api": {"public": "http://127.0.0.1:1/api/v3", "ws": {"spot": "ws://x/stream/ws"}}
        },
        "options": {"tradesLimit": 50, "watchTickers": {"name": "ticker"}},
    }
    return ExchangeConfig.model_validate({**base, **over})


async def test_urls_and_options_are_deep_merged() -> None:
    ex = create_exchange(cfg(), DataType.TRADES)
    try:
        assert ex.urls["api"]["public"] == "http://127.0.0.1:1/api/v3"
        assert ex.urls["api"]["ws"]["spot"] == "ws://x/stream/ws"
        assert "linear" in ex.urls["api"]["ws"]  # untouched keys survive
        assert ex.options["tradesLimit"] == 50
        assert ex.options["OHLCVLimit"] == 20  # bounded default
        assert ex.options["watchTickers"]["name"] == "ticker"
        assert ex.newUpdates is True
    finally:
        await ex.close()


async def test_markets_file_seeds_markets_without_rest() -> None:
    markets = read_markets_file(MARKETS)
    ex = create_exchange(cfg(), DataType.TRADES, markets)
    try:
        assert "BTC/USDT" in ex.markets
        assert ex.market("ETH/USDT")["id"] == "ETHUSDT"
    finally:
        await ex.close()


def test_markets_file_must_hold_markets(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps([]))
    with pytest.raises(ValueError, match="non-empty"):
        read_markets_file(bad)


def test_unknown_exchange_id() -> None:
    with pytest.raises(ValueError, match=r"unknown ccxt\.pro exchange"):
        exchange_class("nosuchexchange")


def test_unknown_symbols_are_left_out() -> None:
    markets = read_markets_file(MARKETS)
    c = cfg(symbols=["BTC/USDT", "NOPE/USDT", "ETH/USDT"])
    assert known_symbols(c, markets) == ["BTC/USDT", "ETH/USDT"]
    assert known_symbols(c, {m["symbol"]: m for m in markets}) == ["BTC/USDT", "ETH/USDT"]


async def test_frame_guard_counts_bad_frames_and_keeps_going() -> None:
    ex = create_exchange(cfg(id="binance"), DataType.TICKER, read_markets_file(MARKETS))
    labels = {"exchange": "binance", "data_type": "ticker", "reason": "unparseable"}
    before = REGISTRY.get_sample_value("ticklake_collector_invalid_updates_total", labels) or 0
    try:
        client = ex.client("ws://127.0.0.1:1/stream/ws/0")
        client.handle_text_or_binary_message('{"stream": "btcusdt@trade", "data": {"e": "tr')
        client.handle_text_or_binary_message(
            '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,'
            '"p":"x","q":"1","T":1,"m":true}}'
        )
        good = (
            '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":2,'
            '"p":"1.5","q":"2","T":1,"m":false}}'
        )
        client.handle_text_or_binary_message(good)
        assert ex.trades["BTC/USDT"][-1]["id"] == "2"
        assert ex.client("ws://127.0.0.1:1/stream/ws/0") is client  # wrapped once
    finally:
        await ex.close()
    after = REGISTRY.get_sample_value("ticklake_collector_invalid_updates_total", labels) or 0
    assert after - before == 2
