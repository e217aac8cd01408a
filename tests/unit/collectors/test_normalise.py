"""Normalisation: ccxt structures -> contract records, invalid input refused with a reason."""

from __future__ import annotations

import math

import pytest

from worker.collectors import normalise
from worker.collectors.normalise import InvalidUpdateError, Reason
from worker.records import SPECS, DataType, decode, encode

RX = 1_700_000_000_123_456

TRADE = {
    "id": "42",
    "symbol": "BTC/USDT",
    "timestamp": 1_700_000_000_000,
    "side": "buy",
    "price": 100.5,
    "amount": 0.25,
    "cost": 25.125,
    "takerOrMaker": "taker",
    "info": {"ignored": True},
}


def _roundtrip(dt: DataType, record: dict) -> dict:
    spec, back = decode(encode(dt, record))
    assert spec is SPECS[dt]
    return back


def test_trade_has_exactly_the_contract_fields() -> None:
    record = normalise.trade("binance", TRADE, RX)
    assert record == {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "id": "42",
        "timestamp": 1_700_000_000_000,
        "received_at": RX,
        "side": "buy",
        "price": 100.5,
        "amount": 0.25,
        "cost": 25.125,
        "taker_or_maker": "taker",
    }
    contract = {f.name for f in SPECS[DataType.TRADES].fields} - {"collector_id"}
    assert set(record) == contract
    assert _roundtrip(DataType.TRADES, record)["price"] == 100.5


def test_integer_trade_ids_become_strings() -> None:
    assert normalise.trade("x", {**TRADE, "id": 7}, RX)["id"] == "7"


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"price": math.nan}, Reason.NOT_FINITE),
        ({"amount": math.inf}, Reason.NOT_FINITE),
        ({"price": None}, Reason.MISSING),
        ({"price": "100.5"}, Reason.WRONG_TYPE),
        ({"price": True}, Reason.WRONG_TYPE),
        ({"timestamp": None}, Reason.MISSING),
        ({"timestamp": 1.5}, Reason.NOT_FINITE),
        ({"id": None}, Reason.MISSING),
        ({"symbol": 3.2}, Reason.WRONG_TYPE),
        ({"cost": math.nan}, Reason.NOT_FINITE),
    ],
)
def test_bad_trades_are_refused_with_a_reason(patch: dict, reason: Reason) -> None:
    with pytest.raises(InvalidUpdateError) as err:
        normalise.trade("binance", {**TRADE, **patch}, RX)
    assert err.value.reason is reason


def test_optional_trade_fields_may_be_missing() -> None:
    record = normalise.trade("b", {**TRADE, "cost": None, "side": None, "takerOrMaker": None}, RX)
    assert record["cost"] is None
    assert record["side"] is None


def test_orderbook_is_cut_to_depth() -> None:
    book = {
        "timestamp": 1_700_000_000_000,
        "nonce": 1004,
        "bids": [[100.0 - i, 1.0 + i] for i in range(30)],
        "asks": [[101.0 + i, 2.0] for i in range(30)],
    }
    record = normalise.orderbook("binance", "BTC/USDT", book, 5, RX)
    assert record["bids"] == [[100.0 - i, 1.0 + i] for i in range(5)]
    assert len(record["asks"]) == 5
    assert record["nonce"] == 1004
    back = _roundtrip(DataType.ORDERBOOK, record)
    assert back["bids"][0] == {"price": 100.0, "amount": 1.0}


@pytest.mark.parametrize("bids", [[[math.nan, 1.0]], [[100.0]], [["100", "1"]], [[100.0, None]]])
def test_bad_levels_are_refused(bids: list) -> None:
    book = {"timestamp": 1, "nonce": 1, "bids": bids, "asks": []}
    with pytest.raises(InvalidUpdateError):
        normalise.orderbook("binance", "BTC/USDT", book, 5, RX)


def test_ohlcv_candle() -> None:
    record = normalise.ohlcv(
        "binance", "ETH/USDT", "1m", [1_764_806_400_000, 1.0, 2.0, 0.5, 1.5, 10.0], RX
    )
    assert record["timestamp"] == 1_764_806_400_000
    assert (record["open"], record["high"], record["low"], record["close"]) == (1.0, 2.0, 0.5, 1.5)
    assert _roundtrip(DataType.OHLCV, record)["volume"] == 10.0
    with pytest.raises(InvalidUpdateError):
        normalise.ohlcv("binance", "ETH/USDT", "1m", [60_000, 1.0, None, 0.5, 1.5, 10.0], RX)
    with pytest.raises(InvalidUpdateError):
        normalise.ohlcv("binance", "ETH/USDT", "1m", [60_000, 1.0], RX)


def test_ticker_needs_last_but_not_bid_ask() -> None:
    t = {"symbol": "BTC/USDT", "timestamp": 5, "last": 10.0, "bid": None, "baseVolume": 3}
    record = normalise.ticker("binance", t, RX)
    assert record["last"] == 10.0
    assert record["bid"] is None
    assert record["base_volume"] == 3.0
    assert set(record) == {f.name for f in SPECS[DataType.TICKER].fields} - {"collector_id"}
    with pytest.raises(InvalidUpdateError):
        normalise.ticker("binance", {**t, "last": None}, RX)
    with pytest.raises(InvalidUpdateError):
        normalise.ticker("binance", {**t, "ask": math.nan}, RX)
