"""The whole sink over the in-process bus and a local folder (no services)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.sinkkit import FACTORIES, as_lake_row, message, read_json, read_lake, rows_of, settings
from worker.bus.memory import MemoryBus, MemoryDeadLetters
from worker.records import DataType
from worker.sink.app import serve
from worker.sink.batch import held_buffers
from worker.storage import LocalStore


async def run_sink(bus: MemoryBus, store: LocalStore, cfg, until) -> int:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    topics = [cfg.kafka.topic(dt) for dt in cfg.sink.data_types]
    source = bus.source(cfg.sink.group_id, topics)
    task = asyncio.create_task(
        serve(
            cfg, source=source, store=store, dead_letters=MemoryDeadLetters(bus, "dlq"), stop=stop
        )
    )
    async with asyncio.timeout(20):
        while not await until():
            await asyncio.sleep(0.05)
    stop.set()
    return await task


@pytest.mark.parametrize("dt", list(DataType))
async def test_round_trip_each_type(tmp_path: Path, dt: DataType) -> None:
    bus, store = MemoryBus(), LocalStore(tmp_path)
    cfg = settings(f"file://{tmp_path}")
    recs = [FACTORIES[dt](i) for i in range(50)]
    for rec in recs:
        await bus.publish(cfg.kafka.topic(dt), *message(dt, rec))

    async def done() -> bool:
        return len(await read_lake(store)) > 0

    assert await run_sink(bus, store, cfg, done) == 0
    lake = await read_lake(store)
    got = rows_of(lake.values())
    assert got == [as_lake_row(dt, r) for r in recs]
    (key,) = lake
    assert key.startswith(f"2025/11/24/BTC_USDT/{dt.value}/binance-20251124T160000000Z-p0-o")
    state = await read_json(store, f"_state/g/{cfg.kafka.topic(dt)}/0.json")
    assert state["next_offset"] == 50


@pytest.mark.parametrize("dt", list(DataType))
async def test_parse_ahead_slices_keep_every_row_in_order(tmp_path: Path, dt: DataType) -> None:
    """Buffers parsed in many small slices while they fill, garbage in between:
    the file holds exactly the valid records in order, each bad message is a
    dead letter naming its own offset."""
    bus, store = MemoryBus(), LocalStore(tmp_path)
    cfg = settings(f"file://{tmp_path}", parse_ahead_bytes=700, max_age_s=1.0)
    held_before = held_buffers()
    topic = cfg.kafka.topic(dt)
    recs, bad_offsets = [], []
    for i in range(120):
        if i % 17 == 5:  # not JSON, then the wrong type for a number
            bad_offsets.append(bus.end_offset(topic))
            await bus.publish(topic, message(dt, FACTORIES[dt](i))[0], b"{not json")
        rec = FACTORIES[dt](i)
        recs.append(rec)
        await bus.publish(topic, *message(dt, rec))

    async def done() -> bool:
        return len(await read_lake(store)) > 0

    assert await run_sink(bus, store, cfg, done) == 0
    lake = await read_lake(store)
    assert len(lake) == 1
    assert rows_of(lake.values()) == [as_lake_row(dt, r) for r in recs]
    dead = bus.messages("dlq")
    sources = [dict(m.headers)["ticklake.source"].decode() for m in dead]
    assert sources == [f"{topic}/0/{o}" for o in bad_offsets]
    assert all(m.value == b"{not json" for m in dead)
    state = await read_json(store, f"_state/g/{topic}/0.json")
    assert state["next_offset"] == bus.end_offset(topic)
    # Every slice parsed was encoded and dropped by its encoder (threads here: the
    # held slices are this process's, other tests' crashed sinks may have left some).
    assert held_buffers() == held_before
