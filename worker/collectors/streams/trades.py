"""Trades: every trade once, read from ccxt's per-symbol trade cache."""

from __future__ import annotations

from collections import deque
from typing import Any

from worker import metrics
from worker.collectors import normalise
from worker.collectors.streams.base import Stream
from worker.records import DataType


class RecentIds:
    """The last ``size`` trade ids of one symbol (bounded dedupe window)."""

    def __init__(self, size: int) -> None:
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._size = size

    def seen(self, trade_id: str) -> bool:
        """True if ``trade_id`` was already added; otherwise add it."""
        if trade_id in self._ids:
            return True
        self._ids.add(trade_id)
        self._order.append(trade_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return False


class TradesStream(Stream):
    """``watch_trades_for_symbols``; a cursor per symbol into ccxt's cache.

    The cursor is the last trade object read (identity, not id): walking the
    cache backwards to it yields exactly the trades appended since. If the
    cursor fell out of the bounded cache, trades were lost inside ccxt
    (counted as a cache overrun). Replayed trades (same id) are dropped by a
    bounded per-symbol id window and counted as duplicates.
    """

    state_attr = "trades"
    data_type = DataType.TRADES

    def __init__(self, *args: Any, dedupe_ids: int = 10_000, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cursor: dict[str, Any] = {}
        self._recent = {s: RecentIds(dedupe_ids) for s in self.symbols}

    async def watch(self) -> Any:
        return await self.ex.watch_trades_for_symbols(self.symbols)

    def drain(self, symbol: str, received_at_us: int) -> None:
        new = self._new_trades(symbol)
        if not new:
            return
        self.received(len(new))
        recent = self._recent[symbol]
        for t in new:
            try:
                record = normalise.trade(self.exchange_id, t, received_at_us)
            except normalise.InvalidUpdateError as exc:
                self.invalid(exc)
                continue
            if recent.seen(record["id"]):
                self.duplicate()
                continue
            self.publish(record)

    def _new_trades(self, symbol: str) -> list[Any]:
        cache = self.ex.trades.get(symbol) if self.ex.trades else None
        if not cache:
            return []
        last = cache[-1]
        cursor = self._cursor.get(symbol)
        if last is cursor:
            return []
        self._cursor[symbol] = last
        new: list[Any] = []
        for t in reversed(cache):
            if t is cursor:
                break
            new.append(t)
        else:
            if cursor is not None:
                metrics.COLLECTOR_CACHE_OVERRUNS.labels(self.exchange_id, "trades").inc()
        new.reverse()
        return new
