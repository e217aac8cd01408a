"""Each named quality check, with an input that fails it; the score; exact-duplicate removal."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sinkkit import BASE_MS, book, candle, ticker, trade
from worker.records import SPECS, DataType
from worker.sink.format import to_table
from worker.sink.quality import check_batch


def check(dt: DataType, rows: list[dict[str, Any]], **kw: Any) -> Any:
    spec = SPECS[dt]
    recs = [dict(r) for r in rows]
    if dt is DataType.ORDERBOOK:
        for r in recs:
            for side in ("bids", "asks"):
                r[side] = [{"price": p, "amount": a} for p, a in r[side]]
    opts = {"now_ms": BASE_MS + 10**7, "max_future_skew_s": 5.0, "threshold": 95.0, **kw}
    return check_batch(spec, to_table(spec, recs, 25), **opts)


def test_clean_batch_scores_100() -> None:
    for dt, make in (
        (DataType.TRADES, trade),
        (DataType.OHLCV, candle),
        (DataType.TICKER, ticker),
        (DataType.ORDERBOOK, book),
    ):
        table, report = check(dt, [make(i) for i in range(20)])
        assert report.score == 100.0, (dt, report.checks)
        assert report.passed
        assert table.num_rows == 20
        assert set(report.checks) == {
            "completeness",
            "duplicates",
            "validity",
            "ordering",
            "clock_skew",
            "continuity",
        }


def test_completeness() -> None:
    rows = [trade(i) for i in range(10)]
    rows[3]["price"] = None
    rows[4]["side"] = None
    _, report = check(DataType.TRADES, rows)
    assert report.checks["completeness"] == 2
    assert report.score == 80.0
    assert not report.passed


def test_exact_duplicates_are_removed_identity_duplicates_counted() -> None:
    rows = [trade(i) for i in range(10)]
    rows.append({**rows[2], "received_at": rows[2]["received_at"] + 5})  # same trade, seen twice
    rows.append({**rows[3], "price": 1.0})  # same id, different price: a conflict
    table, report = check(DataType.TRADES, rows)
    assert report.exact_duplicates_removed == 1
    assert table.num_rows == 11
    assert report.checks["duplicates"] == 1
    assert report.rows_in == 12
    assert report.rows_out == 11


def test_book_duplicates_by_timestamp_and_nonce() -> None:
    rows = [book(i) for i in range(5)] + [book(2)]
    table, report = check(DataType.ORDERBOOK, rows)
    assert report.exact_duplicates_removed == 1
    assert table.num_rows == 5
    _, report = check(DataType.ORDERBOOK, [book(1), book(1, bids=[[99.0, 1.0]])])
    assert report.checks["duplicates"] == 1


def test_candle_duplicates_by_timeframe_and_open_time() -> None:
    _, report = check(DataType.OHLCV, [candle(1), candle(1, close=100.5)])
    assert report.checks["duplicates"] == 1


@pytest.mark.parametrize(
    ("dt", "bad"),
    [
        (DataType.TRADES, trade(1, price=0.0)),
        (DataType.TRADES, trade(1, amount=-2.0)),
        (DataType.OHLCV, candle(1, low=103.0)),  # low above open/close
        (DataType.OHLCV, candle(1, high=100.5)),  # high below close
        (DataType.OHLCV, candle(1, volume=-1.0)),
        (DataType.TICKER, ticker(1, bid=200.0)),  # bid above ask
        (DataType.ORDERBOOK, book(1, bids=[[99.0, 1.0], [99.5, 1.0]])),  # bids not descending
        (DataType.ORDERBOOK, book(1, asks=[[101.0, 1.0], [100.9, 1.0]])),  # asks not ascending
        (DataType.ORDERBOOK, book(1, bids=[[101.0, 1.0]], asks=[[100.0, 1.0]])),  # crossed
        (DataType.ORDERBOOK, book(1, bids=[[99.0, 0.0]])),  # zero amount
    ],
)
def test_validity(dt: DataType, bad: dict[str, Any]) -> None:
    make = {
        DataType.TRADES: trade,
        DataType.OHLCV: candle,
        DataType.TICKER: ticker,
        DataType.ORDERBOOK: book,
    }[dt]
    rows = [make(i) for i in range(2, 12)]
    _, report = check(dt, [*rows[:5], bad, *rows[5:]])
    assert report.checks["validity"] == 1, report.checks


def test_ordering_and_clock_skew() -> None:
    rows = [trade(i) for i in range(10)]
    rows[5]["timestamp"] = BASE_MS - 1000  # earlier than the row before it
    rows[9]["timestamp"] = BASE_MS + 10**7 + 6_000  # 6 s in the future (5 s allowed)
    _, report = check(DataType.TRADES, rows)
    assert report.checks["ordering"] == 1
    assert report.checks["clock_skew"] == 1


def test_continuity_trade_ids_and_candles() -> None:
    rows = [trade(i) for i in (1, 2, 3, 7, 8, 20)]
    _, report = check(DataType.TRADES, rows)
    assert report.checks["continuity"] == 2  # 3 -> 7 and 8 -> 20
    assert report.score == 100.0  # reported, weight 0 by default
    _, report = check(DataType.TRADES, rows, weights={"continuity": 1.0})
    assert report.score < 95
    assert not report.passed
    _, report = check(DataType.OHLCV, [candle(i) for i in (0, 1, 2, 5, 6)])
    assert report.checks["continuity"] == 1


def test_non_numeric_trade_ids_have_no_continuity() -> None:
    _, report = check(DataType.TRADES, [trade(i, id=f"x{i}") for i in range(5)])
    assert report.checks["continuity"] == 0


def test_score_floor_is_zero() -> None:
    _, report = check(DataType.TRADES, [trade(i, price=-1.0, side=None) for i in range(5)])
    assert report.score == 0.0
