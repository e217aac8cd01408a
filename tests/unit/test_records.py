"""The record contract: encode/decode round trips and every refusal reason."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pyarrow as pa
import pytest

from worker.records import (
    SCHEMA_VERSION,
    SPECS,
    DataType,
    InvalidReason,
    InvalidRecordError,
    decode,
    encode,
    lake_symbol,
    message_key,
)

TRADE: dict[str, Any] = {
    "exchange": "binance",
    "symbol": "BTC/USDT",
    "id": "12345",
    "timestamp": 1_700_000_000_123,
    "received_at": 1_700_000_000_200_456,
    "side": "buy",
    "price": 36_500.5,
    "amount": 0.25,
    "cost": 9_125.125,
    "taker_or_maker": "taker",
}


def test_trade_round_trip_keeps_every_value() -> None:
    spec, record = decode(encode(DataType.TRADES, TRADE))
    assert spec.data_type is DataType.TRADES
    assert {k: record[k] for k in TRADE} == TRADE


def test_message_carries_schema_name_and_version() -> None:
    body = orjson.loads(encode(DataType.TICKER, {"exchange": "x"}))
    assert body["schema"] == "ticklake.ticker"
    assert body["v"] == SCHEMA_VERSION


def test_orderbook_levels_become_price_amount_structs() -> None:
    book = {
        "exchange": "binance",
        "symbol": "ETH/USDT",
        "timestamp": 1_700_000_000_000,
        "received_at": 1_700_000_000_000_000,
        "nonce": 42,
        "bids": [[100.0, 1.5], [99.5, 2]],
        "asks": [[100.5, 0.1]],
    }
    _, record = decode(encode(DataType.ORDERBOOK, book))
    assert record["bids"] == [{"price": 100.0, "amount": 1.5}, {"price": 99.5, "amount": 2}]
    table = pa.Table.from_pylist([record], schema=SPECS[DataType.ORDERBOOK].arrow_schema)
    assert table.column("asks").to_pylist() == [[{"price": 100.5, "amount": 0.1}]]


def test_nan_price_is_encoded_as_null_not_dropped() -> None:
    _, record = decode(encode(DataType.TRADES, {**TRADE, "price": math.nan}))
    assert record["price"] is None
    assert record["amount"] == 0.25


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00\xffgarbage", InvalidReason.NOT_JSON),
        (None, InvalidReason.NOT_JSON),
        (b"[1, 2]", InvalidReason.NOT_OBJECT),
        (b'{"schema": "ticklake.candles", "v": 1}', InvalidReason.UNKNOWN_SCHEMA),
        (b'{"schema": "ticklake.trades", "v": 99}', InvalidReason.UNSUPPORTED_VERSION),
    ],
)
def test_unparseable_messages_are_refused_with_a_reason(
    raw: bytes | None, reason: InvalidReason
) -> None:
    with pytest.raises(InvalidRecordError) as info:
        decode(raw)
    assert info.value.reason is reason


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("id", None, InvalidReason.MISSING_FIELD),
        ("timestamp", None, InvalidReason.MISSING_FIELD),
        ("price", "36500.5", InvalidReason.WRONG_TYPE),
        ("timestamp", 1.5, InvalidReason.WRONG_TYPE),
        ("amount", True, InvalidReason.WRONG_TYPE),
        ("symbol", 7, InvalidReason.WRONG_TYPE),
    ],
)
def test_wrong_types_and_missing_fields_are_refused(
    field: str, value: object, reason: InvalidReason
) -> None:
    with pytest.raises(InvalidRecordError) as info:
        decode(encode(DataType.TRADES, {**TRADE, field: value}))
    assert info.value.reason is reason
    assert field in info.value.detail


def test_malformed_book_levels_are_wrong_type() -> None:
    book = {
        "exchange": "b",
        "symbol": "X/Y",
        "timestamp": 1,
        "received_at": 1,
        "bids": [["100", 1]],
        "asks": [],
    }
    with pytest.raises(InvalidRecordError) as info:
        decode(encode(DataType.ORDERBOOK, book))
    assert info.value.reason is InvalidReason.WRONG_TYPE


def test_every_spec_matches_its_arrow_schema() -> None:
    for dt, spec in SPECS.items():
        assert [f.name for f in spec.fields if f.name != "collector_id"] == [
            n for n in spec.arrow_schema.names if n != "collector_id"
        ], dt
        meta = spec.arrow_schema.metadata
        assert meta[b"ticklake.schema"] == f"ticklake.{dt.value}".encode()
        assert meta[b"ticklake.schema_version"] == str(SCHEMA_VERSION).encode()


@pytest.mark.parametrize(
    ("symbol", "path"),
    [
        ("BTC/USDT", "BTC_USDT"),
        ("BTC/USDT:USDT", "BTC_USDT_USDT"),
        ("1000PEPE/USDT", "1000PEPE_USDT"),
    ],
)
def test_lake_symbol(symbol: str, path: str) -> None:
    assert lake_symbol(symbol) == path


def test_message_key() -> None:
    assert message_key("binance", "BTC/USDT") == b"binance:BTC/USDT"
