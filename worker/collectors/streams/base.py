"""What every collector stream shares: one ccxt watch, drained into records.

A stream is one (exchange, data type) pair over all its configured symbols,
using ccxt's ``*_for_symbols`` watch. The watch call only tells us *that*
something arrived; records are read from ccxt's own per-symbol state (trade
caches, order books, candle series, tickers) by ``drain``.

Why not just use what the watch returns: a multi-symbol watch races one
future per symbol and returns the first to resolve. Another symbol's updates
that arrive in the same tick resolve a future nobody waits for any more, and
stay unseen until that symbol trades again. So after each wake-up the stream
drains the symbols ``touched`` names (state-like streams name them all: one
cheap comparison each) and, every ``sweep_interval_s`` (also while the
socket is quiet), sweeps every symbol.

The pending watch is kept as a task across sweeps, so a sweep never cancels
(and leaks) a ccxt future; :meth:`reset` cancels it and closes the sockets.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

from worker import metrics
from worker.collectors.emit import Emitter
from worker.collectors.normalise import InvalidUpdateError
from worker.logging import get_logger
from worker.records import DataType, Record

log = get_logger("collector.stream")


def now_us() -> int:
    return time.time_ns() // 1000


class Stream(ABC):
    """One ccxt watch loop for an exchange's symbols and one data type."""

    data_type: ClassVar[DataType]

    def __init__(
        self,
        ex: Any,
        exchange_id: str,
        symbols: list[str],
        emitter: Emitter,
        sweep_interval_s: float = 0.5,
    ) -> None:
        self.ex = ex
        self.exchange_id = exchange_id
        self.symbols = symbols
        self.emitter = emitter
        self.sweep_interval_s = sweep_interval_s
        self._watch: asyncio.Future[Any] | None = None
        self._last_sweep = time.monotonic()
        self._last_invalid_log = 0.0
        self.published = 0

    @property
    def name(self) -> str:
        return f"{self.exchange_id}/{self.data_type.value}"

    async def step(self) -> bool:
        """Wait up to one sweep interval; return True if ccxt delivered an update."""
        if self._watch is None:
            self._watch = asyncio.ensure_future(self.watch())
        done, _ = await asyncio.wait({self._watch}, timeout=self.sweep_interval_s)
        received = bool(done)
        if received:
            task, self._watch = self._watch, None
            result = task.result()  # raises what ccxt raised
            stamp = now_us()
            for symbol in self.touched(result):
                self.drain(symbol, stamp)
        if time.monotonic() - self._last_sweep >= self.sweep_interval_s:
            self.sweep()
        return received

    def sweep(self) -> None:
        """Drain every symbol (catches updates a raced watch did not return)."""
        self._last_sweep = time.monotonic()
        stamp = now_us()
        for symbol in self.symbols:
            self.drain(symbol, stamp)

    async def reset(self) -> None:
        """Drop the pending watch and close the sockets; the next step redials."""
        await self.cancel_watch()
        await self.ex.close_ws_clients()

    async def close(self) -> None:
        await self.cancel_watch()
        await self.ex.close()

    async def cancel_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None and not watch.done():
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        elif watch is not None and not watch.cancelled():
            watch.exception()  # retrieved: no "never retrieved" warning

    @abstractmethod
    async def watch(self) -> Any:
        """One ccxt watch call over all symbols."""

    @abstractmethod
    def touched(self, result: Any) -> Iterable[str]:
        """Symbols the watch result says were updated."""

    @abstractmethod
    def drain(self, symbol: str, received_at_us: int) -> None:
        """Publish whatever is new for ``symbol`` in ccxt's state."""

    def received(self, n: int = 1) -> None:
        metrics.COLLECTOR_MESSAGES.labels(self.exchange_id, self.data_type.value).inc(n)

    def publish(self, record: Record) -> None:
        self.published += 1
        self.emitter.emit(self.data_type, record)

    def invalid(self, exc: InvalidUpdateError) -> None:
        """Count (and, at most once a second, log) an update normalisation refused."""
        labels = (self.exchange_id, self.data_type.value, exc.reason.value)
        metrics.COLLECTOR_INVALID.labels(*labels).inc()
        now = time.monotonic()
        if now - self._last_invalid_log >= 1.0:
            self._last_invalid_log = now
            reason = exc.reason.value
            log.warning("invalid_update", stream=self.name, reason=reason, field=exc.field)

    def duplicate(self) -> None:
        metrics.COLLECTOR_DUPLICATES.labels(self.exchange_id, self.data_type.value).inc()
