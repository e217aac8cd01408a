"""OHLCV: only closed candles, each exactly once (see collectors.candles)."""

from __future__ import annotations

from typing import Any

from worker.collectors import normalise
from worker.collectors.candles import CandleCloser
from worker.collectors.streams.base import Stream
from worker.records import DataType


class OhlcvStream(Stream):
    """``watch_ohlcv_for_symbols`` over every (symbol, timeframe) pair."""

    state_attr = "ohlcvs"
    data_type = DataType.OHLCV

    def __init__(self, *args: Any, timeframes: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeframes = timeframes
        self.closer = CandleCloser()
        # (symbol, timeframe) -> open time the exchange marked final (bounded by config).
        self._final: dict[tuple[str, str], int] = {}
        self._hook_final_klines()

    async def watch(self) -> Any:
        pairs = [[s, tf] for s in self.symbols for tf in self.timeframes]
        return await self.ex.watch_ohlcv_for_symbols(pairs)

    def drain(self, symbol: str, received_at_us: int) -> None:
        self.received()
        series = (self.ex.ohlcvs or {}).get(symbol) or {}
        for tf in self.timeframes:
            candles = series.get(tf)
            if not candles:
                continue
            hint = self._final.get((symbol, tf))
            for candle in self.closer.take_closed(symbol, tf, list(candles), hint):
                try:
                    record = normalise.ohlcv(self.exchange_id, symbol, tf, candle, received_at_us)
                except normalise.InvalidUpdateError as exc:
                    self.invalid(exc)
                    continue
                self.publish(record)

    def _hook_final_klines(self) -> None:
        """Binance marks a kline final (``x: true``); ccxt drops the flag, so read it here."""
        handle = getattr(self.ex, "handle_ohlcv", None)
        if handle is None or not self.exchange_id.startswith("binance"):
            return
        ex = self.ex

        def handle_ohlcv(client: Any, message: Any) -> None:
            handle(client, message)
            k = message.get("k") if isinstance(message, dict) else None
            if isinstance(k, dict) and k.get("x") is True and isinstance(k.get("t"), int):
                market_type = "spot" if ex.is_spot_url(client) else "contract"
                symbol = ex.safe_symbol(k.get("s"), None, None, market_type)
                self._final[(symbol, ex.find_timeframe(k.get("i")))] = k["t"]

        ex.handle_ohlcv = handle_ohlcv
