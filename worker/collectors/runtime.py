"""All configured streams of a collector process, each under its supervisor.

Used by ``ticklake collect`` (Kafka) and ``ticklake run`` (in-process bus):
both hand it a :class:`PublishQueue` and drain that queue their own way.
Each exchange starts independently (markets loaded with retries), so one
exchange that cannot start never holds up the others.
"""

from __future__ import annotations

import asyncio
from typing import Any

from worker import metrics
from worker.collectors.backoff import Backoff
from worker.collectors.emit import Emitter
from worker.collectors.exchange import create_exchange, load_markets
from worker.collectors.streams import (
    OhlcvStream,
    OrderBookStream,
    Stream,
    TickerStream,
    TradesStream,
)
from worker.collectors.supervisor import Supervisor
from worker.config import CollectorConfig, ExchangeConfig, KafkaConfig
from worker.logging import get_logger
from worker.records import DataType

log = get_logger("collector.runtime")


def known_symbols(ex_cfg: ExchangeConfig, markets: Any) -> list[str]:
    """The configured symbols that ``markets`` lists (the others are logged)."""
    listed = set(markets) if isinstance(markets, dict) else {m.get("symbol") for m in markets}
    unknown = [s for s in ex_cfg.symbols if s not in listed]
    if unknown:
        log.error("unknown_symbols_skipped", exchange=ex_cfg.id, symbols=unknown)
    return [s for s in ex_cfg.symbols if s in listed]


class CollectorRuntime:
    """Starts, watches and stops every stream."""

    def __init__(self, cfg: CollectorConfig, emitter: Emitter) -> None:
        self.cfg = cfg
        self.emitter = emitter
        self.supervisors: list[Supervisor] = []
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def for_queue(cls, cfg: CollectorConfig, kafka: KafkaConfig, queue: Any) -> CollectorRuntime:
        return cls(cfg, Emitter(queue, kafka, cfg.collector_id))

    def start(self) -> None:
        """Start every exchange (in the background) and the staleness gauges."""
        for ex_cfg in self.cfg.exchanges:
            self._spawn(self._run_exchange(ex_cfg), f"exchange:{ex_cfg.id}")
        self._spawn(self._gauges(), "gauges")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def any_up(self) -> bool:
        return any(s.up for s in self.supervisors)

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def _run_exchange(self, ex_cfg: ExchangeConfig) -> None:
        markets = await self._markets(ex_cfg)
        sups = [Supervisor(s, self.cfg) for s in self.build_streams(ex_cfg, markets)]
        self.supervisors.extend(sups)
        log.info("exchange_started", exchange=ex_cfg.id, streams=[s.stream.name for s in sups])
        await asyncio.gather(*(s.run() for s in sups))

    async def _markets(self, ex_cfg: ExchangeConfig) -> Any:
        backoff = Backoff(self.cfg.backoff_base_s, self.cfg.backoff_max_s, 1.0)
        while True:
            try:
                return await load_markets(ex_cfg)
            except Exception as exc:  # noqa: BLE001  # retried: the exchange may be down
                delay = backoff.next_delay()
                log.error(  # noqa: TRY400  # the reason is enough; no traceback per retry
                    "markets_load_failed",
                    exchange=ex_cfg.id,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    retry_in_s=round(delay, 2),
                )
                await asyncio.sleep(delay)

    def build_streams(self, ex_cfg: ExchangeConfig, markets: Any) -> list[Stream]:
        """One stream per data type and group of ``symbols_per_stream`` symbols.

        A symbol the exchange does not list is left out (logged): in a
        multi-symbol watch it would fail every other symbol of its group.
        """
        symbols = known_symbols(ex_cfg, markets)
        n = self.cfg.symbols_per_stream
        groups = [symbols[i : i + n] for i in range(0, len(symbols), n)]
        return [s for g in groups for s in self._streams_for(ex_cfg, markets, g)]

    def _streams_for(
        self, ex_cfg: ExchangeConfig, markets: Any, symbols: list[str]
    ) -> list[Stream]:
        st = ex_cfg.streams

        def make(dt: DataType) -> tuple[Any, str, list[str], Emitter]:
            return create_exchange(ex_cfg, dt, markets), ex_cfg.id, symbols, self.emitter

        common: dict[str, Any] = {"sweep_interval_s": self.cfg.sweep_interval_s}
        out: list[Stream] = []
        if st.trades:
            dedupe = self.cfg.trade_dedupe_ids
            out.append(TradesStream(*make(DataType.TRADES), dedupe_ids=dedupe, **common))
        if st.orderbook is not None:
            ob = st.orderbook
            out.append(
                OrderBookStream(
                    *make(DataType.ORDERBOOK), depth=ob.depth, throttle_ms=ob.throttle_ms, **common
                )
            )
        if st.ohlcv is not None:
            tfs = st.ohlcv.timeframes
            out.append(OhlcvStream(*make(DataType.OHLCV), timeframes=tfs, **common))
        if st.ticker:
            out.append(TickerStream(*make(DataType.TICKER), **common))
        return out

    async def _gauges(self) -> None:
        while True:
            for sup in self.supervisors:
                labels = (sup.stream.exchange_id, sup.stream.data_type.value)
                metrics.COLLECTOR_SECONDS_SINCE.labels(*labels).set(sup.seconds_since_update())
            await asyncio.sleep(1.0)
