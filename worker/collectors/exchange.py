"""Building ccxt.pro exchange objects for the collectors.

Every stream gets its own exchange object: a stream that is torn down and
redialled (stale, checksum, network error) never disturbs the sockets, order
books or caches of another. Markets are loaded once per exchange — from
``markets_file`` when configured, so start-up needs no REST call — and
shared by all its objects.

The configured ``urls`` and ``options`` are deep-merged into the ccxt
object; that is how tests and the demo point ccxt at the local emulator.
Cache limits default to small values so nothing ccxt keeps grows with time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import ccxt.pro

from worker import metrics
from worker.collectors.normalise import Reason
from worker.config import ExchangeConfig
from worker.logging import get_logger
from worker.records import DataType

log = get_logger("collector.exchange")

# Bounded ccxt caches: we read updates as they arrive, history is not needed.
DEFAULT_OPTIONS: dict[str, Any] = {
    "tradesLimit": 1000,
    "OHLCVLimit": 20,
    "ordersLimit": 10,
    "watchOrderBookLimit": 1000,
}


def exchange_class(exchange_id: str) -> Any:
    """The ccxt.pro class for ``exchange_id`` (ValueError if unknown)."""
    cls = getattr(ccxt.pro, exchange_id, None)
    if cls is None or exchange_id not in ccxt.pro.exchanges:
        raise ValueError(f"unknown ccxt.pro exchange id {exchange_id!r}")
    return cls


def create_exchange(cfg: ExchangeConfig, data_type: DataType, markets: Any = None) -> Any:
    """A fresh, guarded ccxt.pro object for one stream."""
    cls = exchange_class(cfg.id)
    ex = cls({"enableRateLimit": True, "newUpdates": True})
    ex.options = ex.deep_extend(ex.options, DEFAULT_OPTIONS, cfg.options)
    ex.urls = ex.deep_extend(ex.urls, cfg.urls)
    if markets is not None:
        ex.set_markets(markets)
    _guard_frames(ex, cfg.id, data_type)
    return ex


async def load_markets(cfg: ExchangeConfig) -> Any:
    """Markets for ``cfg``: from ``markets_file`` if set, else one REST load."""
    if cfg.markets_file is not None:
        return read_markets_file(cfg.markets_file)
    ex = create_exchange(cfg, DataType.TRADES)
    try:
        return await ex.load_markets()
    finally:
        await ex.close()


def read_markets_file(path: Path) -> Any:
    """A JSON list of ccxt market dicts (or a dict symbol -> market)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list | dict) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON list or object of markets")
    return data


class _FrameGuard:
    """Counts frames ccxt cannot parse or handle, instead of dying on them.

    ccxt runs its message handlers inside the socket's receive callback: one
    exception there (a truncated JSON frame, a handler tripping over a bad
    value) ends the receive loop and the stream stalls without an error. The
    guard catches it, counts it as an invalid update and keeps reading.
    """

    def __init__(self, exchange_id: str, data_type: DataType) -> None:
        self._labels = (exchange_id, data_type.value, Reason.UNPARSEABLE.value)
        self._last_log = 0.0
        self.bad_frames = 0

    def wrap(self, handle: Any) -> Any:
        def guarded(data: Any) -> None:
            try:
                handle(data)
            except Exception as exc:  # noqa: BLE001  # count the frame, keep the stream alive
                self._bad(exc, data)

        return guarded

    def _bad(self, exc: Exception, data: Any) -> None:
        self.bad_frames += 1
        metrics.COLLECTOR_INVALID.labels(*self._labels).inc()
        now = time.monotonic()
        if now - self._last_log >= 1.0:
            self._last_log = now
            log.warning(
                "unparseable_frame",
                exchange=self._labels[0],
                data_type=self._labels[1],
                error=f"{type(exc).__name__}: {exc}"[:200],
                frame=str(data)[:200],
                total=self.bad_frames,
            )


def _guard_frames(ex: Any, exchange_id: str, data_type: DataType) -> None:
    guard = _FrameGuard(exchange_id, data_type)
    make_client = ex.client

    def client(url: str) -> Any:
        c = make_client(url)
        if not getattr(c, "_ticklake_guarded", False):
            # Instance-level wrap: ccxt builds its Client inside Exchange.client().
            c.handle_text_or_binary_message = guard.wrap(c.handle_text_or_binary_message)
            c._ticklake_guarded = True
        return c

    ex.client = client
    ex.ticklake_guard = guard
