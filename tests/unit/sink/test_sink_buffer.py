"""Flush triggers, one buffer per key per cycle, the low watermark, sealing for memory."""

from __future__ import annotations

from pathlib import Path

from tests.sinkkit import settings
from worker.bus.memory import MemoryBus, MemoryDeadLetters
from worker.bus.source import TopicPartition
from worker.records import DataType
from worker.sink.buffer import Buffer, Partition
from worker.sink.layout import BufferKey
from worker.sink.sink import Sink
from worker.sink.state import PartitionState
from worker.storage import LocalStore

TP = TopicPartition("t", 0)
A = BufferKey("x", "A/B", DataType.TRADES)
B = BufferKey("x", "C/D", DataType.TRADES)


def buf(key: BufferKey, first: int, rows: int = 1, nbytes: int = 10, age: float = 0) -> Buffer:
    b = Buffer(key, TP, first, f"x:{key.symbol}".encode(), opened_at=100.0 - age)
    b.blobs = [b"{}"] * rows
    b.rows = rows
    b.last_offset = first + rows - 1
    b.approx_bytes = nbytes
    return b


def part(*bufs: Buffer) -> Partition:
    p = Partition(TP, PartitionState(next_offset=0), position=50)
    for b in bufs:
        p.open[b.msg_key] = b
    return p


def test_triggers() -> None:
    assert buf(A, 0, rows=5).trigger(100.0, 5, 10**9, 60) == "max_rows"
    assert buf(A, 0, nbytes=99).trigger(100.0, 5, 99, 60) == "max_bytes"
    assert buf(A, 0, age=61).trigger(100.0, 5, 10**9, 60) == "max_age"
    assert buf(A, 0).trigger(100.0, 5, 10**9, 60) is None


def test_idle_needs_caught_up_quiet_and_open_buffers() -> None:
    p = part(buf(A, 0))  # consumed up to 50
    p.last_record_at = 90.0
    assert p.idle(100.0, 5.0, highwater=50)  # caught up, quiet for 10 s
    assert not p.idle(100.0, 15.0, highwater=50)  # not quiet for long enough
    assert not p.idle(100.0, 5.0, highwater=51)  # lagging: paused or slow, not idle
    assert not p.idle(100.0, 5.0, highwater=None)  # nothing known about the log end
    p.open.clear()
    assert not p.idle(100.0, 5.0, highwater=50)  # nothing to flush


def test_due_takes_at_most_one_buffer_per_key() -> None:
    old = buf(A, 0, age=100)
    p = part(old, buf(B, 1))
    p.seal(old, "replay")
    newer = buf(A, 5, age=100)
    p.open[newer.msg_key] = newer
    due = p.due(100.0, 10, 10**9, 60)
    assert due == [old]  # the second buffer of A waits for the next cycle
    assert newer.sealed is None  # not even sealed: it may still take rows
    assert old.in_flight
    # The next cycle may take A's next buffer while `old` is still in flight: the
    # committer stores cycles strictly in order, so A's files are recorded in order.
    assert p.due(100.0, 10, 10**9, 60) == [newer]
    assert p.due(100.0, 10, 10**9, 60) == []  # both in flight
    p.release(old)
    assert p.buffers().__next__() is newer


def test_low_watermark() -> None:
    a, b = buf(A, 7), buf(B, 3)
    p = part(a, b)
    assert p.low_watermark() == 3
    assert p.low_watermark(stored=[b]) == 7
    assert p.low_watermark(stored=[a, b]) == 50
    assert p.low_watermark(stored=[a, b], position=40) == 40


def test_memory_seals_count_a_parse_backlog_as_the_size_it_will_parse_to(tmp_path: Path) -> None:
    """Raw bytes queued for parsing shrink once parsed: they alone never seal a buffer
    (that would cut its file short); parsed bytes and raw tails past 85 % of the cap do."""
    cfg = settings(f"file://{tmp_path}", max_buffered_bytes=1000, data_types=["trades"])
    bus = MemoryBus()
    sink = Sink(
        cfg,
        source=bus.source("g", ["t"]),
        store=LocalStore(tmp_path),
        dead_letters=MemoryDeadLetters(bus, "d"),
        writer="t",
    )
    try:
        a = buf(A, 0, nbytes=900)
        sink.parts[TP] = part(a)
        sink.buffered_bytes = 900  # 90 % of the cap ...
        sink._parsing_bytes = 600  # ... 600 of it queued raw, and parsing keeps 30 %
        sink._raw_parsed, sink._parsed_size = 10_000, 3_000
        assert sink._projected_bytes() == 900 - 420
        sink._due(100.0)
        assert a.sealed is None
        sink._parsing_bytes = 100  # the backlog was parsed; what stays is real
        assert sink._projected_bytes() == 900 - 70
        sink.buffered_bytes = 950
        sink._due(100.0)
        assert a.sealed == "memory"
        b = buf(B, 5, nbytes=900)
        sink.parts[TP] = part(b)
        sink._raw_parsed = sink._parsed_size = 0  # nothing parsed yet: no shrinking assumed
        sink._parsing_bytes = 900
        assert sink._projected_bytes() == 950
        sink._due(100.0)
        assert b.sealed == "memory"
    finally:
        sink.close()
