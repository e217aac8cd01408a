"""Which OHLCV candles are closed, and which of those are not yet published.

Exchanges push the current candle again and again while it is open. A candle
is closed once a later candle of the same series has appeared, or when the
exchange says so (Binance's kline ``x: true``). Each closed candle must be
published exactly once, so the last published open time is kept per
(symbol, timeframe); the map is bounded by the configured series.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Candle = Sequence[Any]


class CandleCloser:
    """Tracks the last published open time per (symbol, timeframe)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], int] = {}

    def last_published(self, symbol: str, timeframe: str) -> int | None:
        return self._last.get((symbol, timeframe))

    def take_closed(
        self,
        symbol: str,
        timeframe: str,
        candles: Sequence[Candle],
        closed_open_time: int | None = None,
    ) -> list[Candle]:
        """Closed, unpublished candles of ``candles`` (sorted by open time), oldest first.

        ``closed_open_time`` is the open time of a candle the exchange
        marked final; it closes the newest candle early.
        """
        if not candles:
            return []
        last = self._last.get((symbol, timeframe))
        newest = candles[-1]
        closed = list(candles[:-1])
        if closed_open_time is not None and newest[0] == closed_open_time:
            closed.append(newest)
        out = [c for c in closed if isinstance(c[0], int) and (last is None or c[0] > last)]
        if out:
            self._last[(symbol, timeframe)] = out[-1][0]
        return out
