"""Deterministic names, paths and the partition state's arithmetic."""

from __future__ import annotations

from datetime import date

from worker.records import DataType
from worker.sink.layout import BufferKey, Destination, day_of, file_paths, file_stem, state_path
from worker.sink.state import PartitionState

KEY = BufferKey("binance", "BTC/USDT", DataType.TRADES)
DAY = date(2025, 11, 24)


def test_file_stem_from_data_only() -> None:
    stem = file_stem("binance", 3, 42, 1_764_000_000_123)
    assert stem == "binance-20251124T160000123Z-p3-o00000000000000000042"
    assert file_stem("binance", 3, 42, 1_764_000_000_123) == stem  # a replay: the same key
    assert day_of(1_764_000_000_123) == DAY
    assert day_of(1_764_028_799_999) == DAY  # 23:59:59.999
    assert day_of(1_764_028_800_000) == date(2025, 11, 25)


def test_default_layout_and_quarantine() -> None:
    paths = file_paths(KEY, DAY, "n", "default", Destination.LAKE)
    assert paths.data == "2025/11/24/BTC_USDT/trades/n.parquet"
    assert paths.sidecar == "_metadata/BTC_USDT/trades/n.json"
    q = file_paths(KEY, DAY, "n", "default", Destination.QUARANTINE)
    assert q.data == "_quarantine/2025/11/24/BTC_USDT/trades/n.parquet"
    assert q.sidecar == "_quarantine/_metadata/BTC_USDT/trades/n.json"


def test_hive_layout() -> None:
    paths = file_paths(KEY, DAY, "n", "hive", Destination.LAKE)
    assert paths.data == (
        "exchange=binance/data_type=trades/symbol=BTC_USDT/date=2025-11-24/n.parquet"
    )


def test_state_path() -> None:
    assert state_path("g", "ticklake.trades", 2) == "_state/g/ticklake.trades/2.json"


def test_buffer_key_round_trips_through_state_key() -> None:
    assert BufferKey.from_state_key(KEY.state_key()) == KEY
    odd = BufferKey("ex|change", "B/C:D", DataType.OHLCV)  # ccxt symbols hold no "|"
    assert BufferKey.from_state_key(odd.state_key()) == odd


def test_covered_ranges_and_pruning() -> None:
    state = PartitionState(next_offset=0)
    state.record(KEY, 10, 20)
    state.record(KEY, 30, 40)
    assert state.is_covered(KEY, 10)
    assert state.is_covered(KEY, 20)
    assert not state.is_covered(KEY, 25)
    assert state.is_covered(KEY, 35)
    assert not state.is_covered(KEY._replace(symbol="ETH/USDT"), 15)
    state.advance(25)
    assert state.covered == {KEY: [(30, 40)]}
    state.advance(41)
    assert state.covered == {}
    state.advance(5)  # never backwards
    assert state.next_offset == 41


def test_state_json_round_trip() -> None:
    state = PartitionState(next_offset=7, generation=3)
    state.record(KEY, 7, 9)
    body = state.to_json(topic="t", partition=1, writer="w")
    back = PartitionState.from_json(body)
    assert (back.next_offset, back.covered, back.generation) == (7, {KEY: [(7, 9)]}, 3)
