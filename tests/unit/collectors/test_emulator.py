"""The emulator's market model: Binance frames that ccxt's book and candle logic accept."""

from __future__ import annotations

import random

from worker.emulator.hub import matches
from worker.emulator.market import SymbolState, symbol_names


def state() -> SymbolState:
    return SymbolState("BTC", "USDT", 100.0, random.Random(1))


def test_depth_diffs_chain_and_rebuild_the_book() -> None:
    s = state()
    snap = s.depth_snapshot(1000)
    book = {
        "b": {float(p): float(q) for p, q in snap["bids"]},
        "a": {float(p): float(q) for p, q in snap["asks"]},
    }
    last = snap["lastUpdateId"]
    for _ in range(50):
        s.trade_event(1)
        f = s.depth_event(1)
        assert f["U"] == last + 1
        assert f["u"] >= f["U"]
        last = f["u"]
        for side in ("b", "a"):
            for p, q in f[side]:
                if float(q) == 0:
                    book[side].pop(float(p))
                else:
                    book[side][float(p)] = float(q)
    assert book["b"] == s.bids
    assert book["a"] == s.asks
    assert max(s.bids) < min(s.asks)


def test_a_gap_skips_update_ids() -> None:
    s = state()
    first = s.depth_event(1)
    s.pending_gap = 5
    second = s.depth_event(1)
    assert second["U"] == first["u"] + 6


def test_klines_roll_over_with_a_final_frame() -> None:
    s = state()
    s.trade_event(1_000)
    frames = s.kline_events({"1s"}, 1_000)
    assert [f["k"]["x"] for f in frames] == [False]
    s.trade_event(1_500)
    frames = s.kline_events({"1s"}, 2_100)
    assert [(f["k"]["t"], f["k"]["x"]) for f in frames] == [(1_000, True), (2_000, False)]


def test_trade_frames_look_like_binance() -> None:
    f = state().trade_event(123)
    assert set(f) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
    assert f["e"] == "trade"
    assert f["s"] == "BTCUSDT"
    assert isinstance(f["p"], str)


def test_symbol_names_and_stream_filters() -> None:
    names = symbol_names(12)
    assert names[0] == ("BTC", "USDT")
    assert names[-1] == ("C002", "USDT")
    assert len(set(names)) == 12
    assert matches("btcusdt@depth@100ms", "depth")
    assert matches("btcusdt@miniTicker", "ticker")
    assert not matches("btcusdt@trade", "kline")
    assert matches("btcusdt@trade", None)
