"""OHLCV close logic: closed candles only, each exactly once."""

from __future__ import annotations

from worker.collectors.candles import CandleCloser


def c(t: int, close: float = 1.0) -> list:
    return [t, 1.0, 2.0, 0.5, close, 3.0]


def test_the_newest_candle_is_open() -> None:
    closer = CandleCloser()
    assert closer.take_closed("A", "1m", [c(0)]) == []
    assert closer.take_closed("A", "1m", [c(0, 1.1)]) == []


def test_a_later_candle_closes_the_earlier_one_once() -> None:
    closer = CandleCloser()
    closer.take_closed("A", "1m", [c(0)])
    assert closer.take_closed("A", "1m", [c(0, 1.2), c(60)]) == [c(0, 1.2)]
    assert closer.take_closed("A", "1m", [c(0, 1.2), c(60, 1.5)]) == []
    assert closer.take_closed("A", "1m", [c(0), c(60), c(120), c(180)]) == [c(60), c(120)]
    assert closer.last_published("A", "1m") == 120


def test_exchange_final_flag_closes_the_newest_candle_early() -> None:
    closer = CandleCloser()
    assert closer.take_closed("A", "1m", [c(0)], closed_open_time=0) == [c(0)]
    assert closer.take_closed("A", "1m", [c(0), c(60)], closed_open_time=0) == []
    assert closer.take_closed("A", "1m", [c(0), c(60)], closed_open_time=30) == []


def test_series_are_independent() -> None:
    closer = CandleCloser()
    assert closer.take_closed("A", "1m", [c(0), c(60)]) == [c(0)]
    assert closer.take_closed("B", "1m", [c(0), c(60)]) == [c(0)]
    assert closer.take_closed("A", "5m", [c(0), c(300)]) == [c(0)]
    assert closer.take_closed("A", "1m", []) == []
