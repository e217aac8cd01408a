"""Faults injected by the emulator: the streams recover, count it, and lose nothing delivered."""

from __future__ import annotations

import asyncio

from tests.integration.collectors.conftest import Harness, metric, read_topic
from tests.integration.collectors.test_data_types import trade_key
from worker.records import DataType

TRADES = {"exchange": "binance", "data_type": "trades"}


async def _trades_match(harness: Harness) -> list[dict]:
    sent = harness.sent("trades")
    got = await read_topic(harness.bootstrap, harness.topics[DataType.TRADES], expect=len(sent))
    assert sorted(trade_key(r) for _, r in got) == sorted(trade_key(r) for r in sent)
    return [r for _, r in got]


async def test_reconnects_after_server_side_close(harness: Harness) -> None:
    before = metric("ticklake_collector_reconnects_total", **TRADES, reason="network")
    await harness.start({"trades": True})
    await harness.streaming("trade")
    await asyncio.sleep(1.0)
    hit = await harness.emulator.apply_fault({"kind": "disconnect", "stream": "trade"})
    assert hit["connections"] == 1
    await asyncio.sleep(2)
    await harness.settle()
    await harness.stop()

    assert metric("ticklake_collector_reconnects_total", **TRADES, reason="network") > before
    assert harness.emulator.hub.stats["connections_total"] >= 2
    got = await _trades_match(harness)
    last_ts = max(r["timestamp"] for r in got)
    assert last_ts > 0


async def test_watchdog_redials_a_silent_stream(harness: Harness) -> None:
    before = metric("ticklake_collector_stale_resets_total", **TRADES)
    await harness.start({"trades": True}, stale_after_s=1.0)
    await harness.streaming("trade")
    await asyncio.sleep(1.0)
    await harness.emulator.apply_fault({"kind": "stall", "stream": "trade", "seconds": 30})
    await asyncio.sleep(3)
    sent_before = len(harness.sent("trades"))
    await asyncio.sleep(1.5)
    assert len(harness.sent("trades")) > sent_before, "no fresh connection after the stall"
    await harness.settle()
    await harness.stop()

    assert metric("ticklake_collector_stale_resets_total", **TRADES) > before
    await _trades_match(harness)


async def test_sequence_gap_triggers_a_book_resync(harness: Harness) -> None:
    before = metric("ticklake_collector_book_resyncs_total", exchange="binance")
    await harness.start({"trades": False, "orderbook": {"depth": 5}})
    await harness.streaming("depth")
    await asyncio.sleep(1.0)
    snapshots = harness.emulator.hub.stats["depth_snapshots"]
    await harness.emulator.apply_fault({"kind": "gap", "symbol": harness.emulator.symbols[0]})
    await asyncio.sleep(2.5)
    await harness.settle()
    await harness.stop()

    assert metric("ticklake_collector_book_resyncs_total", exchange="binance") > before
    assert harness.emulator.hub.stats["depth_snapshots"] > snapshots  # fresh REST snapshot
    sent = {(r["symbol"], r["nonce"]): r for r in harness.sent("orderbook")}
    got = await read_topic(harness.bootstrap, harness.topics[DataType.ORDERBOOK])
    for _, r in got:  # every published book, before and after the gap, is the true book
        truth = sent[(r["symbol"], r["nonce"])]
        assert [[lv["price"], lv["amount"]] for lv in r["bids"]] == truth["bids"][:5]
    gap_symbol = harness.emulator.symbols[0]
    last_nonce = max(n for (s, n) in sent if s == gap_symbol)
    assert any(r["symbol"] == gap_symbol and r["nonce"] == last_nonce for _, r in got)


async def test_malformed_and_duplicate_frames_are_counted_not_fatal(harness: Harness) -> None:
    dup_before = metric("ticklake_collector_duplicate_updates_total", **TRADES)
    bad_before = sum(
        metric("ticklake_collector_invalid_updates_total", **TRADES, reason=r)
        for r in ("unparseable", "not_finite", "wrong_type", "missing_field")
    )
    reconnects = metric("ticklake_collector_reconnects_total", **TRADES, reason="stale")
    await harness.start({"trades": True}, stale_after_s=2.0)
    await harness.streaming("trade")
    await asyncio.sleep(0.5)
    await harness.emulator.apply_fault({"kind": "duplicate", "stream": "trade", "count": 3})
    await harness.emulator.apply_fault({"kind": "malformed", "stream": "trade", "count": 2})
    await asyncio.sleep(2.5)
    await harness.settle()
    await harness.stop()

    assert harness.emulator.hub.stats["duplicates_sent"] == 3
    assert harness.emulator.hub.stats["malformed_sent"] == 4
    assert metric("ticklake_collector_duplicate_updates_total", **TRADES) - dup_before == 3
    bad_after = sum(
        metric("ticklake_collector_invalid_updates_total", **TRADES, reason=r)
        for r in ("unparseable", "not_finite", "wrong_type", "missing_field")
    )
    assert bad_after - bad_before == 4
    # the stream never stalled: no watchdog reset was needed
    assert metric("ticklake_collector_reconnects_total", **TRADES, reason="stale") == reconnects
    await _trades_match(harness)
