"""What every collector stream shares: one ccxt watch, drained into records.

A stream is one (exchange, data type) pair over all its configured symbols,
using ccxt's ``*_for_symbols`` watch. The watch call only tells us *that*
something arrived; records are read from ccxt's own per-symbol state (trade
caches, order books, candle series, tickers) by ``drain``.

Why not just use what the watch returns: a multi-symbol watch races one
future per symbol and returns the first to resolve. ccxt handles a burst of
frames in one go, so the other symbols of the burst resolve futures nobody
waits for any more: their updates stay unseen until that symbol trades
again (measured: one symbol per 100 ms burst of 200). So the stream swaps
ccxt's per-symbol state dict (``ex.trades``, ``ex.tickers``, ``ex.ohlcvs``;
ccxt assigns ``state[symbol] = ...`` on every update) for a
:class:`TrackingDict` that records which symbols were written, and drains
exactly those on each wake-up and every ``sweep_interval_s`` (the watch is
given that long before the stream looks anyway, also while the socket is
quiet). Streams without such a dict (order books) drain every symbol.

The pending watch is kept as a task across sweeps, so a sweep never cancels
(and leaks) a ccxt future; :meth:`reset` cancels it and closes the sockets.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from worker import metrics
from worker.collectors.emit import Emitter
from worker.collectors.normalise import InvalidUpdateError
from worker.logging import get_logger
from worker.records import DataType, Record

log = get_logger("collector.stream")


def now_us() -> int:
    return time.time_ns() // 1000


class TrackingDict(dict[str, Any]):
    """A dict that remembers which keys were assigned since the last :meth:`take`."""

    def __init__(self, initial: dict[str, Any]) -> None:
        super().__init__(initial)
        self._dirty: set[str] = set(initial)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._dirty.add(key)

    def take(self) -> set[str]:
        dirty, self._dirty = self._dirty, set()
        return dirty


class Stream(ABC):
    """One ccxt watch loop for an exchange's symbols and one data type."""

    data_type: ClassVar[DataType]
    # ccxt attribute holding per-symbol state, assigned on every update (or None).
    state_attr: ClassVar[str | None] = None

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
        self._known = set(symbols)
        self._messages = metrics.COLLECTOR_MESSAGES.labels(exchange_id, self.data_type.value)
        self._tracking: TrackingDict | None = None
        self._sockets: tuple[int, ...] | None = None
        self.updated_symbols()  # install the tracking dict before the first frame
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
            task.result()  # raises what ccxt raised
            self.sweep()
        elif time.monotonic() - self._last_sweep >= self.sweep_interval_s:
            self.sweep()
        return received

    def sweep(self) -> None:
        """Drain every symbol ccxt updated since the last sweep."""
        self._last_sweep = time.monotonic()
        stamp = now_us()
        for symbol in self.updated_symbols():
            self.drain(symbol, stamp)

    def updated_symbols(self) -> list[str]:
        """Symbols written since the last call (all of them without a tracking dict)."""
        if self.state_attr is None:
            return self.symbols
        state = getattr(self.ex, self.state_attr, None)
        if state is not self._tracking or self._tracking is None:
            # First call, or ccxt replaced the dict (clean_ws_data): track anew.
            self._tracking = TrackingDict(state or {})
            setattr(self.ex, self.state_attr, self._tracking)
            return self.symbols
        return [s for s in self._tracking.take() if s in self._known]

    def redialled(self) -> bool:
        """True if ccxt replaced a socket since the last call (a close no watch saw).

        ccxt rejects only the futures pending at a server-side close; if the
        close falls between two watch calls, the next call silently redials.
        """
        sockets = tuple(id(c) for c in (self.ex.clients or {}).values())
        before, self._sockets = self._sockets, sockets
        return before is not None and bool(before) and sockets != before

    def forget_sockets(self) -> None:
        """After a handled failure: the next socket is expected, not a silent redial."""
        self._sockets = None

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
    def drain(self, symbol: str, received_at_us: int) -> None:
        """Publish whatever is new for ``symbol`` in ccxt's state."""

    def received(self, n: int = 1) -> None:
        self._messages.inc(n)

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
