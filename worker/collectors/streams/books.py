"""Order books: a top-N snapshot per update, optionally throttled per symbol.

ccxt keeps the full book (REST snapshot + diffs). On a sequence gap ccxt
raises ChecksumError from the watch, drops the book and, on the next watch
call, resubscribes and fetches a fresh snapshot; the supervisor counts that
as a resync. A book without an exchange timestamp (a bare REST snapshot,
before its first diff) or without a nonce (waiting for its snapshot after a
resubscription) is not published.
"""

from __future__ import annotations

import time
from typing import Any

from worker.collectors import normalise
from worker.collectors.streams.base import Stream
from worker.records import DataType


class OrderBookStream(Stream):
    """``watch_order_book_for_symbols``; publishes when the nonce moved."""

    data_type = DataType.ORDERBOOK

    def __init__(self, *args: Any, depth: int = 25, throttle_ms: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.depth = depth
        self._throttle_s = throttle_ms / 1000
        self._last_nonce: dict[str, Any] = {}
        self._last_at: dict[str, float] = {}

    async def watch(self) -> Any:
        return await self.ex.watch_order_book_for_symbols(self.symbols)

    def drain(self, symbol: str, received_at_us: int) -> None:
        book = self.ex.orderbooks.get(symbol) if self.ex.orderbooks else None
        if book is None or book.get("timestamp") is None:
            return
        nonce = book.get("nonce")
        if nonce is None or nonce == self._last_nonce.get(symbol):
            return
        now = time.monotonic()
        if self._throttle_s and now - self._last_at.get(symbol, -1e18) < self._throttle_s:
            return  # a later sweep publishes the then-current book
        self._last_nonce[symbol] = nonce
        self._last_at[symbol] = now
        self.received()
        try:
            record = normalise.orderbook(self.exchange_id, symbol, book, self.depth, received_at_us)
        except normalise.InvalidUpdateError as exc:
            self.invalid(exc)
            return
        self.publish(record)
