"""One stream class per data type."""

from worker.collectors.streams.base import Stream
from worker.collectors.streams.books import OrderBookStream
from worker.collectors.streams.candles import OhlcvStream
from worker.collectors.streams.tickers import TickerStream
from worker.collectors.streams.trades import TradesStream

__all__ = ["OhlcvStream", "OrderBookStream", "Stream", "TickerStream", "TradesStream"]
