"""The whole sink over the in-process bus and a local folder (no services)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.sinkkit import FACTORIES, as_lake_row, message, read_json, read_lake, rows_of, settings
from worker.bus.memory import MemoryBus, MemoryDeadLetters
from worker.records import DataType
from worker.sink.app import serve
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
