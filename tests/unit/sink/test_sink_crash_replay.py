"""Exactly once across a crash at every point of the flush cycle (in-process, no services).

A store that "dies" on its N-th write stands in for kill -9: the first sink is
abandoned on the spot (no flush, no commit, no revoke); a second sink in the
same group then replays from the state object. For every N the lake must hold
every record exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.sinkkit import message, read_lake, rows_of, settings, trade
from worker.bus.memory import MemoryBus, MemoryDeadLetters
from worker.config import Settings
from worker.records import DataType
from worker.sink.sink import Sink
from worker.storage import LocalStore

N_RECORDS = 600


class Crash(BaseException):
    """The process is gone."""


class CrashingStore(LocalStore):
    def __init__(self, root: Path, crash_on_put: int) -> None:
        super().__init__(root)
        self.crash_on_put, self.puts = crash_on_put, 0
        self.crashed = asyncio.Event()

    async def put(self, key: str, data: bytes, **kw: Any) -> str:
        self.puts += 1
        if self.puts == self.crash_on_put:
            self.crashed.set()
            raise Crash
        return await super().put(key, data, **kw)


def symbol(i: int) -> str:
    # Skewed rates: S0 fills buffers fast, S2 slowly, so files overlap open buffers.
    return "S0/USDT" if i % 10 < 6 else "S1/USDT" if i % 10 < 9 else "S2/USDT"


async def publish_all(bus: MemoryBus, topic: str) -> dict[str, dict[str, Any]]:
    sent = {}
    for i in range(N_RECORDS):
        rec = trade(i, symbol=symbol(i))
        sent[rec["id"]] = rec
        await bus.publish(topic, *message(DataType.TRADES, rec))
    return sent


async def start(
    cfg: Settings, bus: MemoryBus, store: LocalStore
) -> tuple[Sink, asyncio.Task[None]]:
    source = bus.source(cfg.sink.group_id, [cfg.kafka.topic(DataType.TRADES)])
    sink = Sink(
        cfg, source=source, store=store, dead_letters=MemoryDeadLetters(bus, "d"), writer="w"
    )
    await source.start(sink)
    return sink, asyncio.create_task(sink.run(asyncio.Event()))


async def abandon(sink: Sink, task: asyncio.Task[None]) -> None:
    """kill -9: stop everything where it is."""
    for t in (task, *sink._flush_tasks):
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError, Crash):
            await t


@pytest.mark.parametrize("parse_ahead", [0, 1024], ids=["parse-at-flush", "parse-ahead"])
@pytest.mark.parametrize("crash_on_put", range(1, 40, 3))
async def test_exactly_once_after_crash_on_nth_write(
    tmp_path: Path, crash_on_put: int, parse_ahead: int
) -> None:
    cfg = settings(
        f"file://{tmp_path}",
        max_rows=40,
        max_age_s=30,
        data_types=["trades"],
        poll_max_records=25,
        parse_ahead_bytes=parse_ahead,
    )
    bus = MemoryBus()
    sent = await publish_all(bus, cfg.kafka.topic(DataType.TRADES))

    store = CrashingStore(tmp_path, crash_on_put)
    try:
        sink, task = await start(cfg, bus, store)
    except Crash:
        pass  # died while claiming its partition
    else:
        async with asyncio.timeout(10):
            await store.crashed.wait()
        await abandon(sink, task)

    survivor_store = LocalStore(tmp_path)
    sink2, task2 = await start(cfg, bus, survivor_store)
    async with asyncio.timeout(10):
        while sink2.parts[next(iter(sink2.parts))].position != N_RECORDS:
            await asyncio.sleep(0.02)
    task2.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task2
    await sink2.shutdown()

    rows = rows_of((await read_lake(survivor_store)).values())
    counts = Counter(r["id"] for r in rows)
    assert counts == Counter(sent.keys()), f"dupes: {[k for k, c in counts.items() if c > 1][:5]}"
    assert all(r == sent[r["id"]] for r in rows)
