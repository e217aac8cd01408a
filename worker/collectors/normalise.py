"""The one place where ccxt structures become contract records (STYLE 6).

Every function takes a ccxt unified structure plus the collector's receive
time (µs since the epoch) and returns a record with exactly the fields of
:mod:`worker.records` for its data type, or raises :class:`InvalidUpdateError`
with a reason from a small fixed set. Nothing else in the collectors looks
inside ccxt dicts.

Rules: ``timestamp`` is the exchange time in integer milliseconds and is
required; prices and amounts that the data type needs (a trade's price and
amount, an order-book level, every OHLCV value) must be finite numbers;
optional numbers may be missing (``None``) but never NaN, infinite or of the
wrong type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from worker.records import Record


class Reason(StrEnum):
    """Why an update was refused (a bounded metric label)."""

    MISSING = "missing_field"
    NOT_FINITE = "not_finite"
    WRONG_TYPE = "wrong_type"
    UNPARSEABLE = "unparseable"  # the frame itself (used by the client guard)


class InvalidUpdateError(ValueError):
    def __init__(self, reason: Reason, field: str) -> None:
        super().__init__(f"{reason.value}: {field}")
        self.reason = reason
        self.field = field


def _num(obj: Mapping[str, Any], key: str, *, required: bool, out: str | None = None) -> Any:
    value = obj.get(key)
    name = out or key
    if value is None:
        if required:
            raise InvalidUpdateError(Reason.MISSING, name)
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidUpdateError(Reason.WRONG_TYPE, name)
    if not math.isfinite(value):
        raise InvalidUpdateError(Reason.NOT_FINITE, name)
    return float(value)


def _int(value: Any, name: str) -> int:
    if value is None:
        raise InvalidUpdateError(Reason.MISSING, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidUpdateError(Reason.WRONG_TYPE, name)
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise InvalidUpdateError(Reason.NOT_FINITE, name)
    return int(value)


def _str(obj: Mapping[str, Any], key: str, *, required: bool, out: str | None = None) -> Any:
    value = obj.get(key)
    if value is None:
        if required:
            raise InvalidUpdateError(Reason.MISSING, out or key)
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise InvalidUpdateError(Reason.WRONG_TYPE, out or key)
    return value


def trade(exchange: str, t: Mapping[str, Any], received_at_us: int) -> Record:
    """A ccxt trade -> ``ticklake.trades`` record."""
    return {
        "exchange": exchange,
        "symbol": _str(t, "symbol", required=True),
        "id": _str(t, "id", required=True),
        "timestamp": _int(t.get("timestamp"), "timestamp"),
        "received_at": received_at_us,
        "side": _str(t, "side", required=False),
        "price": _num(t, "price", required=True),
        "amount": _num(t, "amount", required=True),
        "cost": _num(t, "cost", required=False),
        "taker_or_maker": _str(t, "takerOrMaker", required=False, out="taker_or_maker"),
    }


def _levels(side: Sequence[Any], depth: int, name: str) -> list[list[float]]:
    out: list[list[float]] = []
    for level in side[:depth]:
        if not isinstance(level, Sequence) or len(level) < 2:
            raise InvalidUpdateError(Reason.WRONG_TYPE, name)
        price = _num({"p": level[0]}, "p", required=True, out=name)
        amount = _num({"a": level[1]}, "a", required=True, out=name)
        out.append([price, amount])
    return out


def orderbook(
    exchange: str, symbol: str, book: Mapping[str, Any], depth: int, received_at_us: int
) -> Record:
    """A ccxt order book of ``symbol`` -> top-``depth`` ``ticklake.orderbook`` snapshot."""
    nonce = book.get("nonce")
    return {
        "exchange": exchange,
        "symbol": symbol,
        "timestamp": _int(book.get("timestamp"), "timestamp"),
        "received_at": received_at_us,
        "nonce": None if nonce is None else _int(nonce, "nonce"),
        "bids": _levels(book.get("bids") or [], depth, "bids"),
        "asks": _levels(book.get("asks") or [], depth, "asks"),
    }


_OHLCV = ("open", "high", "low", "close", "volume")


def ohlcv(
    exchange: str, symbol: str, timeframe: str, candle: Sequence[Any], received_at_us: int
) -> Record:
    """A ccxt candle ``[ts, o, h, l, c, v]`` -> ``ticklake.ohlcv`` record."""
    if len(candle) < 6:
        raise InvalidUpdateError(Reason.MISSING, "ohlcv")
    record: Record = {
        "exchange": exchange,
        "symbol": symbol,
        "timeframe": timeframe,
        "timestamp": _int(candle[0], "timestamp"),
        "received_at": received_at_us,
    }
    for name, value in zip(_OHLCV, candle[1:6], strict=True):
        record[name] = _num({name: value}, name, required=True)
    return record


_TICKER = (
    ("bid", "bid"),
    ("ask", "ask"),
    ("bidVolume", "bid_volume"),
    ("askVolume", "ask_volume"),
    ("last", "last"),
    ("open", "open"),
    ("high", "high"),
    ("low", "low"),
    ("close", "close"),
    ("baseVolume", "base_volume"),
    ("quoteVolume", "quote_volume"),
)


def ticker(exchange: str, t: Mapping[str, Any], received_at_us: int) -> Record:
    """A ccxt ticker -> ``ticklake.ticker`` record (``last`` is required)."""
    record: Record = {
        "exchange": exchange,
        "symbol": _str(t, "symbol", required=True),
        "timestamp": _int(t.get("timestamp"), "timestamp"),
        "received_at": received_at_us,
    }
    for src, dst in _TICKER:
        record[dst] = _num(t, src, required=dst == "last", out=dst)
    return record
