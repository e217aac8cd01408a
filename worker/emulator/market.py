"""Emulated markets: one random-walk symbol, rendered as Binance spot frames.

A :class:`SymbolState` owns one symbol's price, trade ids, order book (with
Binance update ids) and open klines. Each ``*_event`` method advances the
state and returns the ``data`` part of a Binance combined-stream frame,
exactly as Binance spot sends it (strings for prices and quantities, ``E``
and ``T`` in ms).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

Frame = dict[str, Any]

BASES = ("BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "LTC", "DOT", "AVAX")

INTERVAL_S = {
    "1s": 1,
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "4h": 14400,
    "1d": 86400,
}

BOOK_LEVELS = 20
TICK = 0.01


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def symbol_names(n: int) -> list[tuple[str, str]]:
    """``n`` (base, quote) pairs: well-known bases first, then C001, C002, ..."""
    bases = list(BASES[:n]) + [f"C{i:03d}" for i in range(1, max(0, n - len(BASES)) + 1)]
    return [(b, "USDT") for b in bases]


def fmt(x: float) -> str:
    return f"{x:.8f}"


@dataclass
class Kline:
    interval: str
    open_time: int
    o: float
    h: float
    low: float
    c: float
    v: float = 0.0
    q: float = 0.0
    n: int = 0
    first_id: int = 0
    last_id: int = 0

    def add(self, price: float, qty: float, trade_id: int) -> None:
        self.h, self.low, self.c = max(self.h, price), min(self.low, price), price
        self.v += qty
        self.q += qty * price
        self.n += 1
        self.first_id = self.first_id or trade_id
        self.last_id = trade_id

    def frame(self, market_id: str, event_ms: int, final: bool) -> Frame:
        close_time = self.open_time + INTERVAL_S[self.interval] * 1000 - 1
        k = {
            "t": self.open_time,
            "T": close_time,
            "s": market_id,
            "i": self.interval,
            "f": self.first_id,
            "L": self.last_id,
            "o": fmt(self.o),
            "c": fmt(self.c),
            "h": fmt(self.h),
            "l": fmt(self.low),
            "v": fmt(self.v),
            "n": self.n,
            "x": final,
            "q": fmt(self.q),
            "V": fmt(self.v / 2),
            "Q": fmt(self.q / 2),
            "B": "0",
        }
        return {"e": "kline", "E": event_ms, "s": market_id, "k": k}


@dataclass
class SymbolState:
    """One emulated symbol (deterministic for a given seed)."""

    base: str
    quote: str
    price: float
    rng: random.Random
    trade_id: int = 0
    update_id: int = 1000
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    klines: dict[str, Kline] = field(default_factory=dict)
    open_24h: float = 0.0
    high_24h: float = 0.0
    low_24h: float = 0.0
    volume: float = 0.0
    quote_volume: float = 0.0
    pending_gap: int = 0

    def __post_init__(self) -> None:
        self.open_24h = self.high_24h = self.low_24h = self.price
        self.bids, self.asks = self._book_around(self.price)

    @property
    def market_id(self) -> str:
        return f"{self.base}{self.quote}"

    @property
    def symbol(self) -> str:
        return f"{self.base}/{self.quote}"

    def trade_event(self, event_ms: int) -> Frame:
        """Next trade (random walk step) and its effect on klines and 24h stats."""
        self.price = max(TICK, round(self.price * (1 + self.rng.gauss(0, 0.0005)), 2))
        qty = round(self.rng.uniform(0.001, 2.0), 6)
        self.trade_id += 1
        self.high_24h, self.low_24h = max(self.high_24h, self.price), min(self.low_24h, self.price)
        self.volume += qty
        self.quote_volume += qty * self.price
        for kline in self.klines.values():
            kline.add(self.price, qty, self.trade_id)
        return {
            "e": "trade",
            "E": event_ms,
            "s": self.market_id,
            "t": self.trade_id,
            "p": fmt(self.price),
            "q": fmt(qty),
            "T": event_ms,
            "m": self.rng.random() < 0.5,
            "M": True,
        }

    def depth_event(self, event_ms: int) -> Frame:
        """Diff from the previous book to a fresh book around the current price."""
        bids, asks = self._book_around(self.price)
        b = _diff(self.bids, bids)
        a = _diff(self.asks, asks)
        self.bids, self.asks = bids, asks
        first = self.update_id + 1 + self.pending_gap
        self.pending_gap = 0
        self.update_id = first + self.rng.randint(0, 3)
        m = self.market_id
        return {
            "e": "depthUpdate",
            "E": event_ms,
            "s": m,
            "U": first,
            "u": self.update_id,
            "b": b,
            "a": a,
        }

    def apply_depth(self, frame: Frame) -> None:
        """Apply a (replayed) depth diff to the book."""
        for side, key in ((self.bids, "b"), (self.asks, "a")):
            for p, q in frame.get(key, []):
                if float(q) == 0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = float(q)
        self.update_id = int(frame["u"])

    def depth_snapshot(self, limit: int) -> Frame:
        """The REST ``/api/v3/depth`` answer."""
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return {
            "lastUpdateId": self.update_id,
            "bids": [[fmt(p), fmt(q)] for p, q in bids],
            "asks": [[fmt(p), fmt(q)] for p, q in asks],
        }

    def kline_events(self, intervals: set[str], event_ms: int) -> list[Frame]:
        """Current kline per interval; a rolled-over candle is sent once more as final."""
        out: list[Frame] = []
        for interval in intervals:
            start = event_ms // (INTERVAL_S[interval] * 1000) * INTERVAL_S[interval] * 1000
            kline = self.klines.get(interval)
            if kline is not None and kline.open_time != start:
                out.append(kline.frame(self.market_id, event_ms, final=True))
                kline = None
            if kline is None:
                kline = Kline(interval, start, self.price, self.price, self.price, self.price)
                self.klines[interval] = kline
            out.append(kline.frame(self.market_id, event_ms, final=False))
        return out

    def ticker_event(self, event_ms: int, mini: bool) -> Frame:
        best_bid = max(self.bids) if self.bids else self.price
        best_ask = min(self.asks) if self.asks else self.price
        common = {
            "E": event_ms,
            "s": self.market_id,
            "c": fmt(self.price),
            "o": fmt(self.open_24h),
            "h": fmt(self.high_24h),
            "l": fmt(self.low_24h),
            "v": fmt(self.volume),
            "q": fmt(self.quote_volume),
        }
        if mini:
            return {"e": "24hrMiniTicker", **common}
        change = self.price - self.open_24h
        return {
            "e": "24hrTicker",
            **common,
            "p": fmt(change),
            "P": f"{100 * change / self.open_24h:.3f}",
            "w": fmt(self.quote_volume / self.volume if self.volume else self.price),
            "x": fmt(self.open_24h),
            "Q": "0.00100000",
            "b": fmt(best_bid),
            "B": fmt(self.bids.get(best_bid, 0.0)),
            "a": fmt(best_ask),
            "A": fmt(self.asks.get(best_ask, 0.0)),
            "O": event_ms - 86_400_000,
            "C": event_ms,
            "F": 1,
            "L": self.trade_id,
            "n": self.trade_id,
        }

    def _book_around(self, mid: float) -> tuple[dict[float, float], dict[float, float]]:
        spread = max(TICK, round(mid * 0.0001, 2))
        bids = {
            round(mid - spread * (i + 1), 2): round(self.rng.uniform(0.1, 5), 4)
            for i in range(BOOK_LEVELS)
        }
        asks = {
            round(mid + spread * (i + 1), 2): round(self.rng.uniform(0.1, 5), 4)
            for i in range(BOOK_LEVELS)
        }
        return {p: q for p, q in bids.items() if p > 0}, asks


def _diff(old: dict[float, float], new: dict[float, float]) -> list[list[str]]:
    changes = [[fmt(p), fmt(q)] for p, q in new.items() if old.get(p) != q]
    changes += [[fmt(p), fmt(0.0)] for p in old if p not in new]
    return changes
