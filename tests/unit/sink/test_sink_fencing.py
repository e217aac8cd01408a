"""A newer owner's claim fences the previous owner's state writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.sinkkit import message, read_json, settings, trade
from worker.bus.memory import MemoryBus, MemoryDeadLetters
from worker.bus.source import TopicPartition
from worker.records import DataType
from worker.sink.claim import claim_partition
from worker.sink.sink import Sink
from worker.storage import LocalStore


async def test_previous_owner_is_fenced(tmp_path: Path) -> None:
    cfg = settings(f"file://{tmp_path}", data_types=["trades"], max_age_s=0.2)
    topic = cfg.kafka.topic(DataType.TRADES)
    tp = TopicPartition(topic, 0)
    bus, store = MemoryBus(), LocalStore(tmp_path)
    await bus.publish(topic, *message(DataType.TRADES, trade(0)))
    source = bus.source("g", [topic])
    sink = Sink(
        cfg, source=source, store=store, dead_letters=MemoryDeadLetters(bus, "d"), writer="old"
    )
    await source.start(sink)
    task = asyncio.create_task(sink.run(asyncio.Event()))
    state_key = f"_state/g/{topic}/0.json"
    async with asyncio.timeout(5):
        while (await read_json(store, state_key))["next_offset"] != 1:
            await asyncio.sleep(0.05)

    # A new owner takes the partition over (the old one's session expired, say).
    newer = await claim_partition(
        tp, store=store, source=bus.source("g", [topic]), settings=cfg, writer="new"
    )
    assert newer.state.generation == 2
    await bus.publish(topic, *message(DataType.TRADES, trade(1)))
    async with asyncio.timeout(5):
        while not sink.parts[tp].fenced:
            await asyncio.sleep(0.05)
    task.cancel()
    state = await read_json(store, state_key)
    assert state["writer"] == "new"  # the old owner did not overwrite it
    assert state["generation"] == 2
    sink.close()
