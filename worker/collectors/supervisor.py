"""One supervisor per stream (STYLE 5): reconnects, backoff, staleness watchdog.

The supervisor runs ``stream.step()`` forever. Each failure is classified
(network, checksum, stale, exchange, error), counted, logged, and followed by
a capped, jittered backoff that resets once the stream has been healthy for
``healthy_after_s``. A checksum error (order-book sequence gap) is also a book
resync. The watchdog: if no update arrived for ``stale_after_s`` the sockets
are closed and the stream redials — ccxt itself never notices a silent feed.
An exception never leaves ``run``: one stream's trouble stays its own.
"""

from __future__ import annotations

import asyncio
import time

from ccxt.base.errors import ChecksumError, ExchangeError, NetworkError

from worker import metrics
from worker.collectors.backoff import Backoff
from worker.collectors.streams.base import Stream
from worker.config import CollectorConfig
from worker.logging import get_logger
from worker.records import DataType

log = get_logger("collector.supervisor")


class StaleStreamError(Exception):
    """No update within ``stale_after_s``."""


def classify(exc: BaseException) -> str:
    """Bounded reason label for a stream failure."""
    if isinstance(exc, StaleStreamError):
        return "stale"
    if isinstance(exc, ChecksumError):
        return "checksum"
    if isinstance(exc, NetworkError):
        return "network"
    if isinstance(exc, ExchangeError):
        return "exchange"
    return "error"


class Supervisor:
    """Keeps one :class:`Stream` running."""

    def __init__(self, stream: Stream, cfg: CollectorConfig) -> None:
        self.stream = stream
        self.stale_after_s = cfg.stale_after_s
        self.backoff = Backoff(cfg.backoff_base_s, cfg.backoff_max_s, cfg.healthy_after_s)
        self._labels = (stream.exchange_id, stream.data_type.value)
        self.last_update = time.monotonic()
        self.up = False
        self.failures: dict[str, int] = {}

    async def run(self) -> None:
        """Run until cancelled; never raises anything else."""
        try:
            while True:
                try:
                    await self._step()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001  # every failure is handled the same way
                    await self._recover(exc)
        finally:
            await self.stream.close()

    async def _step(self) -> None:
        if await self.stream.step():
            if self.stream.redialled():
                metrics.COLLECTOR_RECONNECTS.labels(*self._labels, "network").inc()
                log.warning("stream_redialled", stream=self.stream.name)
            self.last_update = time.monotonic()
            self._set_up(True)
            self.backoff.observe_healthy()
            metrics.COLLECTOR_LAST_MESSAGE.labels(*self._labels).set(time.time())
        elif time.monotonic() - self.last_update > self.stale_after_s:
            raise StaleStreamError(f"no update for {self.stale_after_s}s")

    async def _recover(self, exc: Exception) -> None:
        reason = classify(exc)
        self.stream.forget_sockets()
        self.failures[reason] = self.failures.get(reason, 0) + 1
        self._set_up(False)
        metrics.COLLECTOR_RECONNECTS.labels(*self._labels, reason).inc()
        if reason == "stale":
            metrics.COLLECTOR_STALE_RESETS.labels(*self._labels).inc()
        if reason == "checksum" and self.stream.data_type is DataType.ORDERBOOK:
            metrics.COLLECTOR_BOOK_RESYNCS.labels(self.stream.exchange_id).inc()
        delay = self.backoff.next_delay()
        log.warning(
            "stream_reconnect",
            stream=self.stream.name,
            reason=reason,
            error=f"{type(exc).__name__}: {exc}"[:300],
            retry_in_s=round(delay, 3),
        )
        if reason in ("stale", "error"):
            await self.stream.reset()  # ccxt will not redial a silent or broken socket itself
        else:
            await self.stream.cancel_watch()
        await asyncio.sleep(delay)
        self.last_update = time.monotonic()  # the watchdog restarts with the new connection

    def _set_up(self, up: bool) -> None:
        if up != self.up:
            self.up = up
            metrics.COLLECTOR_STREAM_UP.labels(*self._labels).set(1 if up else 0)

    def seconds_since_update(self) -> float:
        return time.monotonic() - self.last_update
