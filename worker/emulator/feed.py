"""What the emulator sends: a random walk, or a replayed capture.

Random walk: every ``1/rate_hz`` seconds each symbol makes one tick — a
trade, and for the streams someone listens to, a depth diff, its klines and
its ticker. ``rate_hz = 0`` sends trades only, as fast as the sockets take
them (the benchmark's mode).

Replay: a JSON-lines capture of Binance combined-stream frames
(``{"stream": ..., "data": ...}``) is sent in order, paced by the recorded
event times divided by ``speed``, with event and trade times moved to now.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from worker.emulator.hub import Hub
from worker.emulator.market import Frame, SymbolState, now_ms


def trade_entry(state: SymbolState, f: Frame) -> dict[str, Any]:
    """A sent trade frame in contract terms (what the lake must hold)."""
    return {
        "symbol": state.symbol,
        "id": str(f["t"]),
        "timestamp": f["T"],
        "price": float(f["p"]),
        "amount": float(f["q"]),
        "side": "sell" if f["m"] else "buy",
    }


def book_entry(state: SymbolState, f: Frame, depth: int = 25) -> dict[str, Any]:
    return {
        "symbol": state.symbol,
        "nonce": f["u"],
        "timestamp": f["E"],
        "bids": [[p, q] for p, q in sorted(state.bids.items(), reverse=True)[:depth]],
        "asks": [[p, q] for p, q in sorted(state.asks.items())[:depth]],
    }


_OHLCV = ("open", "high", "low", "close", "volume")


def kline_entry(state: SymbolState, f: Frame) -> dict[str, Any]:
    k = f["k"]
    return {
        "symbol": state.symbol,
        "timeframe": k["i"],
        "timestamp": k["t"],
        **{
            n: float(k[c])
            for n, c in zip(("open", "high", "low", "close", "volume"), "ohlcv", strict=True)
        },
    }


class Feed:
    """Drives the frames of all symbols through the hub."""

    def __init__(self, hub: Hub, symbols: list[SymbolState]) -> None:
        self.hub = hub
        self.symbols = {s.market_id: s for s in symbols}

    async def random_walk(self, rate_hz: float) -> None:
        """Run forever (until cancelled)."""
        if rate_hz <= 0:
            await self._flood()
            return
        period = 1.0 / rate_hz
        next_at = time.monotonic()
        while True:
            intervals = self._kline_intervals()
            for state in self.symbols.values():
                await self.tick(state, intervals.get(state.market_id.lower(), set()))
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - period)  # no catch-up bursts

    def _kline_intervals(self) -> dict[str, set[str]]:
        """Subscribed kline intervals per lower-case market id (one pass over the streams)."""
        out: dict[str, set[str]] = {}
        for name in self.hub.by_stream:
            low, _, channel = name.partition("@")
            if channel.startswith("kline_"):
                out.setdefault(low, set()).add(channel.removeprefix("kline_"))
        return out

    async def tick(self, state: SymbolState, intervals: set[str]) -> None:
        ms = now_ms()
        await self.send_trade(state, state.trade_event(ms))
        low = state.market_id.lower()
        for name in (f"{low}@depth@100ms", f"{low}@depth"):
            if self.hub.subscribed(name):
                await self.send_depth(state, name, state.depth_event(ms))
        for frame in state.kline_events(intervals, ms):
            await self.send_kline(state, frame)
        for name, mini in ((f"{low}@ticker", False), (f"{low}@miniTicker", True)):
            if self.hub.subscribed(name):
                await self.send_ticker(state, name, state.ticker_event(ms, mini))

    async def send_trade(self, state: SymbolState, f: Frame) -> None:
        if await self.hub.send(f"{state.market_id.lower()}@trade", f, "trade"):
            self.hub.sent.add("trades", trade_entry(state, f))

    async def send_depth(self, state: SymbolState, name: str, f: Frame) -> None:
        if await self.hub.send(name, f, "depth"):
            self.hub.sent.add("orderbook", book_entry(state, f))

    async def send_kline(self, state: SymbolState, f: Frame) -> None:
        name = f"{state.market_id.lower()}@kline_{f['k']['i']}"
        if await self.hub.send(name, f, "kline") and f["k"]["x"]:
            self.hub.sent.add("ohlcv", kline_entry(state, f))

    async def send_ticker(self, state: SymbolState, name: str, f: Frame) -> None:
        if await self.hub.send(name, f, "ticker"):
            entry = {"symbol": state.symbol, "timestamp": f["E"], "last": float(f["c"])}
            self.hub.sent.add("ticker", entry)

    async def _flood(self) -> None:
        states = list(self.symbols.values())
        while True:
            for state in states:
                await self.send_trade(state, state.trade_event(now_ms()))
            await asyncio.sleep(0)

    async def replay(self, frames: list[dict[str, Any]], speed: float) -> None:
        """Send a capture once, paced by its event times."""
        if not frames:
            return
        first_e = frames[0]["data"]["E"]
        start_wall, offset = time.monotonic(), now_ms() - first_e
        for frame in frames:
            data = dict(frame["data"])
            due = start_wall + (data["E"] - first_e) / 1000 / speed
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self._replay_one(frame["stream"], data, offset)

    async def _replay_one(self, stream: str, data: Frame, offset: int) -> None:
        state = self.symbols[data["s"]]
        data["E"] += offset
        event = data["e"]
        if event == "trade":
            data["T"] += offset
            await self.send_trade(state, data)
        elif event == "depthUpdate":
            state.apply_depth(data)
            await self.send_depth(state, stream, data)
        elif event == "kline":
            await self.send_kline(state, data)
        else:
            await self.send_ticker(state, stream, data)


def load_capture(path: Path) -> list[dict[str, Any]]:
    """Frames of a JSON-lines capture, in file order."""
    lines = path.read_bytes().splitlines()
    return [orjson.loads(line) for line in lines if line.strip()]


def capture_market_ids(frames: Iterable[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for f in frames:
        seen.setdefault(f["data"]["s"], None)
    return list(seen)


def first_update_ids(frames: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Per market id, the first depth diff's ``U`` (the replayed book starts there)."""
    out: dict[str, int] = {}
    for f in frames:
        d = f["data"]
        if d.get("e") == "depthUpdate":
            out.setdefault(d["s"], int(d["U"]))
    return out
