"""Helpers for the sink tests: record factories, settings, reading the lake back."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from worker.config import Settings
from worker.records import TICKER_NUMBERS, DataType, encode, message_key
from worker.storage import Store

BASE_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z


def trade(
    i: int, symbol: str = "BTC/USDT", exchange: str = "binance", **over: Any
) -> dict[str, Any]:
    rec = {
        "exchange": exchange,
        "symbol": symbol,
        "id": str(i),
        "timestamp": BASE_MS + i,
        "received_at": (BASE_MS + i) * 1000 + 7,
        "side": "buy" if i % 2 else "sell",
        "price": 100.0 + i / 100,
        "amount": 0.5 + i / 1000,
        "cost": (100.0 + i / 100) * (0.5 + i / 1000),
        "taker_or_maker": "taker",
        "collector_id": "c1",
    }
    rec.update(over)
    return rec


def book(i: int, symbol: str = "BTC/USDT", depth: int = 30, **over: Any) -> dict[str, Any]:
    rec = {
        "exchange": "binance",
        "symbol": symbol,
        "timestamp": BASE_MS + i * 100,
        "received_at": (BASE_MS + i * 100) * 1000,
        "nonce": 1000 + i,
        "bids": [[100.0 - k * 0.5, 1.0 + k] for k in range(depth)],
        "asks": [[100.5 + k * 0.5, 2.0 + k] for k in range(depth)],
        "collector_id": "c1",
    }
    rec.update(over)
    return rec


def candle(i: int, symbol: str = "BTC/USDT", **over: Any) -> dict[str, Any]:
    rec = {
        "exchange": "binance",
        "symbol": symbol,
        "timeframe": "1m",
        "timestamp": BASE_MS + i * 60_000,
        "received_at": (BASE_MS + i * 60_000 + 60_000) * 1000,
        "open": 100.0 + i,
        "high": 102.0 + i,
        "low": 99.0 + i,
        "close": 101.0 + i,
        "volume": 10.0 + i,
        "collector_id": "c1",
    }
    rec.update(over)
    return rec


def ticker(i: int, symbol: str = "BTC/USDT", **over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "exchange": "binance",
        "symbol": symbol,
        "timestamp": BASE_MS + i * 1000,
        "received_at": (BASE_MS + i * 1000) * 1000,
        "collector_id": "c1",
    }
    for n, name in enumerate(TICKER_NUMBERS):
        rec[name] = 100.0 + n + i / 10
    rec["ask"] = rec["bid"] + 0.5
    rec.update(over)
    return rec


FACTORIES = {
    DataType.TRADES: trade,
    DataType.ORDERBOOK: book,
    DataType.OHLCV: candle,
    DataType.TICKER: ticker,
}


def message(dt: DataType, rec: dict[str, Any]) -> tuple[bytes, bytes]:
    """(key, value) of one record."""
    return message_key(rec["exchange"], rec["symbol"]), encode(dt, rec)


def settings(url: str, group: str = "g", **sink: Any) -> Settings:
    """Settings for a test sink (small, fast flushes)."""
    base: dict[str, Any] = {
        "max_age_s": 0.5,
        "shutdown_deadline_s": 20,
        "revoke_deadline_s": 10,
        "encode_processes": 0,
    }
    base.update(sink)
    base["group_id"] = group
    return Settings(
        storage={"url": url, "max_attempts": 3, "backoff_base_s": 0.05, "backoff_max_s": 0.5},
        sink=base,
        http={"host": "127.0.0.1", "port": 0},
    )


async def read_lake(store: Store, prefix: str = "") -> dict[str, pa.Table]:
    """Every Parquet file under ``prefix`` (excluding quarantine unless asked), by key."""
    out = {}
    for key in await store.list(prefix):
        if key.endswith(".parquet") and (
            prefix.startswith("_quarantine") or not key.startswith("_")
        ):
            out[key] = pq.read_table(io.BytesIO((await store.get(key)).data))
    return out


async def read_json(store: Store, key: str) -> Any:
    return orjson.loads((await store.get(key)).data)


def rows_of(tables: Iterable[pa.Table]) -> list[dict[str, Any]]:
    """All rows, times as integers (ms / µs since the epoch), like the messages."""
    out = []
    for table in tables:
        flat = table
        for col in ("timestamp", "received_at"):
            idx = flat.schema.get_field_index(col)
            flat = flat.set_column(idx, col, flat.column(col).cast(pa.int64()))
        out.extend(flat.to_pylist())
    return out


def as_lake_row(dt: DataType, rec: dict[str, Any], depth: int = 25) -> dict[str, Any]:
    """What a record looks like when read back from the lake."""
    row = dict(rec)
    if dt is DataType.ORDERBOOK:
        for side in ("bids", "asks"):
            row[side] = [{"price": p, "amount": a} for p, a in rec[side][:depth]]
    return row
