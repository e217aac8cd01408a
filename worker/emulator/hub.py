"""Websocket connections, their subscriptions, fan-out and injected faults.

The hub knows which connection listens to which Binance stream name
(``btcusdt@trade``, ``btcusdt@depth@100ms``, ``btcusdt@kline_1m``,
``btcusdt@ticker`` ...), sends combined-stream frames
(``{"stream": name, "data": {...}}``) and applies the faults a test asked
for: stalls (a connection goes silent), server-side closes, duplicated and
malformed frames. It also keeps the sent log: what reached at least one
client, in contract terms, so tests can compare values exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

_ids = itertools.count(1)


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    streams: set[str] = field(default_factory=set)
    stalled_until: float = 0.0
    id: int = field(default_factory=lambda: next(_ids))

    def stalled(self) -> bool:
        return time.monotonic() < self.stalled_until


def matches(stream: str, kind: str | None) -> bool:
    """``kind`` filter: None (all), or trade / depth / kline / ticker."""
    return kind is None or kind.lower() in stream.split("@", 1)[-1].lower()


class SentLog:
    """Bounded record of what was sent, by data type, in contract terms."""

    def __init__(self, max_entries: int) -> None:
        self._log: dict[str, deque[dict[str, Any]]] = defaultdict(lambda: deque(maxlen=max_entries))

    def add(self, data_type: str, entry: dict[str, Any]) -> None:
        self._log[data_type].append(entry)

    def get(self, data_type: str) -> list[dict[str, Any]]:
        return list(self._log.get(data_type, ()))

    def clear(self) -> None:
        self._log.clear()


class Hub:
    """All live connections and the fault switches."""

    def __init__(self, sent_log_max: int = 200_000) -> None:
        self.conns: set[Connection] = set()
        self.by_stream: dict[str, set[Connection]] = defaultdict(set)
        self.sent = SentLog(sent_log_max)
        self.stats: Counter[str] = Counter()
        self.duplicate_next: Counter[str] = Counter()  # kind -> frames to send twice
        self.malformed_next: Counter[str] = Counter()  # kind -> malformed frames to inject
        self.first_subscription = asyncio.Event()

    def subscribed(self, stream: str) -> bool:
        return bool(self.by_stream.get(stream))

    def subscribe(self, conn: Connection, streams: list[str]) -> None:
        for s in streams:
            conn.streams.add(s)
            self.by_stream[s].add(conn)
        self.stats["subscriptions"] += len(streams)
        self.first_subscription.set()

    def unsubscribe(self, conn: Connection, streams: list[str] | None = None) -> None:
        for s in list(conn.streams if streams is None else streams):
            conn.streams.discard(s)
            subs = self.by_stream.get(s)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self.by_stream[s]

    async def send(self, stream: str, data: dict[str, Any], kind: str) -> int:
        """Send one frame to every live subscriber; return how many got it."""
        conns = [c for c in self.by_stream.get(stream, ()) if not c.stalled()]
        if not conns:
            return 0
        text = orjson.dumps({"stream": stream, "data": data}).decode()
        copies = 1
        if self.duplicate_next[kind] > 0:
            self.duplicate_next[kind] -= 1
            self.stats["duplicates_sent"] += 1
            copies = 2
        delivered = 0
        for conn in conns:
            delivered += await self._send_text(conn, text, copies)
        if self.malformed_next[kind] > 0:
            self.malformed_next[kind] -= 1
            await self._send_malformed(conns, stream, data)
        self.stats[f"frames_{kind}"] += 1
        return delivered

    async def _send_text(self, conn: Connection, text: str, copies: int) -> int:
        if conn.ws.closed:
            return 0
        try:
            for _ in range(copies):
                await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            return 0
        return 1

    async def _send_malformed(self, conns: list[Connection], stream: str, data: Any) -> None:
        """Two kinds: a truncated JSON frame, and a frame with a non-numeric value."""
        bad = dict(data)
        for key in ("p", "c", "q"):
            if key in bad:
                bad[key] = "not-a-number"
        if "t" in bad:
            bad["t"] = 0  # never a real trade id
        broken = orjson.dumps({"stream": stream, "data": data}).decode()[:-7]
        garbled = orjson.dumps({"stream": stream, "data": bad}).decode()
        for conn in conns:
            await self._send_text(conn, broken, 1)
            await self._send_text(conn, garbled, 1)
        self.stats["malformed_sent"] += 2

    def stall(self, seconds: float, kind: str | None) -> int:
        until = time.monotonic() + seconds
        hit = [c for c in self.conns if any(matches(s, kind) for s in c.streams)]
        for c in hit:
            c.stalled_until = until
        self.stats["stalls"] += len(hit)
        return len(hit)

    async def disconnect(self, kind: str | None) -> int:
        hit = [c for c in self.conns if any(matches(s, kind) for s in c.streams)]
        for c in hit:
            await c.ws.close(code=1011, message=b"emulator disconnect")
        self.stats["disconnects"] += len(hit)
        return len(hit)

    def snapshot_stats(self) -> dict[str, Any]:
        return {
            **self.stats,
            "connections": len(self.conns),
            "streams": sorted(self.by_stream),
        }
