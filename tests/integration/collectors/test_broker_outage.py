"""A 60 s Kafka outage at demo rates loses nothing: records wait in the queue and are re-sent."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.helpers import arun_services, local_services_running
from tests.integration.collectors.conftest import Harness, metric, read_topic
from tests.integration.collectors.test_data_types import trade_key
from worker.records import DataType

OUTAGE_S = 60.0


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_sixty_second_broker_outage_loses_nothing(harness: Harness) -> None:
    if not local_services_running():
        pytest.skip("needs the Kafka started by scripts/services (stop-kafka/start-kafka)")
    await harness.start({"trades": True}, queue_max_records=100_000)
    await harness.streaming("trade")
    await asyncio.sleep(2)
    await arun_services("stop-kafka")
    down_at = time.monotonic()
    try:
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        queued = metric("ticklake_collector_queue_depth_records")
    finally:
        await arun_services("start-kafka")
    assert queued > OUTAGE_S * 20, "records should wait in the queue during the outage"
    sent_n = len(harness.sent("trades"))
    for _ in range(120):  # until the backlog is acknowledged
        if metric("ticklake_collector_queue_depth_records") == 0:
            break
        await asyncio.sleep(1)
    await harness.settle()
    assert await harness.stop() == 0

    sent = {trade_key(r) for r in harness.sent("trades")}
    got = [
        trade_key(r)
        for _, r in await read_topic(
            harness.bootstrap, harness.topics[DataType.TRADES], expect=len(sent), idle_s=5.0
        )
    ]
    assert sent_n > OUTAGE_S * 30
    assert sent - set(got) == set(), f"{len(sent - set(got))} trades lost"
    assert set(got) == sent
    # Re-sends after a failure the broker had in fact committed may duplicate (at-least-once).
    assert len(got) - len(set(got)) <= len(got) * 0.05
