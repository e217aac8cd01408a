"""The delivery guarantee with whole ``ticklake sink`` processes: kill -9, rebalance, S3 outage.

After each: every produced trade is in the lake exactly once, with its values,
under the right path.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import psutil
import pytest

from tests.e2e.sink.harness import (
    Lake,
    Producer,
    assert_exactly_once,
    jitter,
    sigterm,
    wait_all_stored,
)
from tests.helpers import SERVICES_SCRIPT

pytestmark = pytest.mark.slow


async def test_sigkill_at_random_moments(lake: Lake) -> None:
    producer = Producer(lake.kafka, lake.topic)
    produce = asyncio.create_task(producer.run(total=12000, per_second=400))
    for n in range(4):
        proc = lake.start_sink(f"sink{n}")
        # Once it owns partitions and stores files, kill it somewhere in a flush cycle.
        await lake.wait_log(f"sink{n}", '"event": "flush"', timeout_s=30)
        await asyncio.sleep(jitter(0.0, 1.5))
        helpers = psutil.Process(proc.pid).children(recursive=True)  # forkserver, encoders
        assert helpers, "the sink encodes in helper processes"
        proc.kill()  # SIGKILL: no flush, no commit, no goodbye
        proc.wait(10)
        # Its helper processes go with it: no orphans holding memory.
        _, alive = psutil.wait_procs(helpers, timeout=10)
        assert alive == []
    await produce
    final = lake.start_sink("final")
    await wait_all_stored(lake, producer)
    assert await sigterm(final) == 0
    await assert_exactly_once(lake, producer)


async def test_member_joins_and_leaves_mid_stream(lake: Lake) -> None:
    producer = Producer(lake.kafka, lake.topic)
    # Long enough that the second member, however slow its start and the rebalance
    # on a loaded machine, still has records of its own to flush after joining.
    produce = asyncio.create_task(producer.run(total=6000, per_second=300))
    first = lake.start_sink("first")
    await asyncio.sleep(2.5)
    second = lake.start_sink("second")  # joins: partitions move to it
    await lake.wait_log("second", '"event": "flush"', timeout_s=45)
    await lake.wait_log("first", '"event": "partitions_revoked"', timeout_s=5)
    await asyncio.sleep(1.5)
    assert await sigterm(first) == 0  # leaves: its partitions come back to `second`
    await produce
    await wait_all_stored(lake, producer)
    assert await sigterm(second) == 0
    await assert_exactly_once(lake, producer)


async def test_s3_outage_of_20_seconds(lake: Lake) -> None:
    producer = Producer(lake.kafka, lake.topic)
    produce = asyncio.create_task(producer.run(total=5000, per_second=200))
    proc = lake.start_sink("sink")
    await lake.wait_log("sink", '"event": "flush"', timeout_s=30)  # mid-stream
    subprocess.run([str(SERVICES_SCRIPT), "stop-s3"], check=True, capture_output=True)
    try:
        await asyncio.sleep(20)
        assert proc.poll() is None, "the sink must ride out the outage"
    finally:
        subprocess.run([str(SERVICES_SCRIPT), "start-s3"], check=True, capture_output=True)
    await produce
    await wait_all_stored(lake, producer, timeout_s=120)
    assert await sigterm(proc) == 0
    await assert_exactly_once(lake, producer)
    log = (lake.workdir / "sink.log").read_text()
    assert "flush_failed_retrying" in log


async def test_ctrl_c_to_the_process_group_still_flushes(lake: Lake) -> None:
    """Ctrl-C signals the whole process group, encoder processes included: they must
    survive it, so the sink's shutdown flush stores what it buffered and exits 0."""
    lake.write_config(max_age_s=600, max_rows=100_000)  # nothing flushes before the signal
    producer = Producer(lake.kafka, lake.topic)
    await producer.run(total=1500, per_second=1500)
    proc = lake.start_sink("ctrl_c", new_session=True)
    await lake.wait_log("ctrl_c", '"event": "partition_assigned"', timeout_s=30)
    await asyncio.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)
    assert await asyncio.to_thread(proc.wait, 40) == 0
    log = (lake.workdir / "ctrl_c.log").read_text()
    assert '"trigger": "shutdown"' in log
    assert "BrokenProcessPool" not in log
    final = lake.start_sink("final")  # stores whatever the first had not consumed yet
    await lake.wait_log("final", '"event": "partition_assigned"', timeout_s=30)
    await wait_all_stored(lake, producer)
    assert await sigterm(final) == 0
    await assert_exactly_once(lake, producer)
