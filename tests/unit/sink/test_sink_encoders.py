"""Parsed slices live in encoder processes: bound per buffer, freed on encode or forget."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.sinkkit import message, settings, trade
from worker.bus.memory import MemoryBus, MemoryDeadLetters
from worker.bus.source import TopicPartition
from worker.records import DataType
from worker.sink.batch import held_buffers
from worker.sink.buffer import Buffer
from worker.sink.committer import Committer
from worker.sink.layout import BufferKey
from worker.storage import LocalStore

KEY = BufferKey("binance", "BTC/USDT", DataType.TRADES)
TP = TopicPartition("t", 0)


def committer(tmp_path: Path) -> Committer:
    cfg = settings(f"file://{tmp_path}", encode_processes=2)
    bus = MemoryBus()
    return Committer(
        cfg,
        store=LocalStore(tmp_path),
        source=bus.source("g", ["t"]),
        dead_letters=MemoryDeadLetters(bus, "dlq"),
        writer="w",
        on_stall=lambda _: None,
        on_release=lambda _: None,
    )


def filled(first: int, n: int, buf: Buffer | None = None) -> Buffer:
    """``buf`` (or a new buffer) with trades ``first`` .. ``first + n - 1`` appended raw."""
    buf = buf or Buffer(KEY, TP, first, b"binance:BTC/USDT")
    for i in range(first, first + n):
        value = message(DataType.TRADES, trade(i))[1]
        buf.blobs.append(value)
        buf.lengths.append(len(value))
        buf.offsets.append(i)
        buf.rows += 1
        buf.last_offset = i
    return buf


async def held_in(c: Committer, encoder: int) -> int:
    return await asyncio.wrap_future(c._pools[encoder].submit(held_buffers))


async def test_slices_stay_bound_and_are_freed(tmp_path: Path) -> None:
    c = committer(tmp_path)
    try:
        a, b = filled(0, 30), filled(100, 30)
        await c.parse_ahead(a)
        await c.parse_ahead(b)
        assert {a.encoder, b.encoder} == {0, 1}  # the least busy encoder each time
        bound = a.encoder
        await c.parse_ahead(filled(30, 30, a))  # a later slice goes where the first went
        assert a.encoder == bound
        assert await held_in(c, 0) == 1
        assert await held_in(c, 1) == 1
        # a's encode joins its two held slices with the raw rest, then frees them
        filled(60, 20, a)
        a.sealed = "max_age"
        (encoded,) = await c._encode([a])
        (file,) = encoded.files
        assert (file.rows, file.first_offset, file.last_offset) == (80, 0, 79)
        assert await held_in(c, bound) == 0
        # b's partition went: its slice is forgotten in its encoder
        c.forget([b])
        assert await held_in(c, 1 - bound) == 0
        late = filled(200, 5)
        await c.parse_ahead(late)
    finally:
        c.close()
    c.forget([late])  # after shutdown (a revoke racing it): the slices went, no error
