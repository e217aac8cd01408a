"""Tickers: each new ticker state once."""

from __future__ import annotations

from typing import Any

from worker.collectors import normalise
from worker.collectors.streams.base import Stream
from worker.records import DataType


class TickerStream(Stream):
    """``watch_tickers`` over the symbols; a repeated timestamp is a duplicate."""

    state_attr = "tickers"
    data_type = DataType.TICKER

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last: dict[str, Any] = {}
        self._last_ts: dict[str, Any] = {}

    async def watch(self) -> Any:
        return await self.ex.watch_tickers(self.symbols)

    def drain(self, symbol: str, received_at_us: int) -> None:
        ticker = (self.ex.tickers or {}).get(symbol)
        if ticker is None or ticker is self._last.get(symbol):
            return
        self._last[symbol] = ticker
        self.received()
        if ticker.get("timestamp") == self._last_ts.get(symbol):
            self.duplicate()
            return
        try:
            record = normalise.ticker(self.exchange_id, ticker, received_at_us)
        except normalise.InvalidUpdateError as exc:
            self.invalid(exc)
            return
        self._last_ts[symbol] = record["timestamp"]
        self.publish(record)
