"""Flush triggers, one buffer per key per cycle, the low watermark."""

from __future__ import annotations

from worker.bus.source import TopicPartition
from worker.records import DataType
from worker.sink.buffer import Buffer, Partition
from worker.sink.layout import BufferKey
from worker.sink.state import PartitionState

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
