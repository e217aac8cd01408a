"""Hostile producer against the real sink, real Kafka and real S3.

The same generator as tests/unit/sink/test_sink_hostile.py (bad JSON, wrong
types, NaN, extreme and negative times, path characters and unicode in keys,
key/value disagreement, unknown versions), through
the Kafka consumer, the encoder processes and S3. ``FUZZ_SEED=<n>`` replays.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter

from tests.integration.sink.conftest import SinkLab
from tests.sinkkit import read_lake, rows_of
from tests.unit.sink.test_sink_hostile import hostile
from worker.records import DataType, decode

N = 2000


async def test_fuzz_through_kafka_and_s3(lab: SinkLab) -> None:
    seed = int(os.environ.get("FUZZ_SEED", random.randrange(1 << 30)))
    print(f"FUZZ_SEED={seed}")  # replay a failure with this
    rng = random.Random(seed)
    msgs: list[tuple[bytes | None, bytes]] = []
    good: dict[str, bytes] = {}
    expected: Counter[str] = Counter()
    for i in range(N):
        key, value, reason = hostile(i, rng)
        if reason is None:
            good[str(i)] = value or b""
        else:
            expected[reason] += 1
        msgs.append((key, value))  # type: ignore[arg-type]  # None values are part of the fuzz
    await lab.produce_raw(DataType.TRADES, msgs)

    cfg = lab.settings(data_types=["trades"], encode_processes=2, parse_ahead_bytes=4096)
    assert await lab.run(cfg, timeout_s=120) == 0, f"seed {seed}: the sink stopped"

    async with lab.store() as store:
        rows = rows_of((await read_lake(store)).values())
        keys = await store.list()
    assert Counter(r["id"] for r in rows) == Counter(good.keys()), f"seed {seed}"
    assert all(r["price"] == decode(good[r["id"]])[1]["price"] for r in rows)
    letters = await lab.dead_letters(sum(expected.values()))
    headers = [dict(m.headers) for m in letters]
    sources = Counter(h["ticklake.source"] for h in headers)
    assert max(sources.values()) == 1, f"seed {seed}: a dead letter sent twice"
    assert Counter(h["ticklake.reason"].decode() for h in headers) == expected, f"seed {seed}"
    layout = re.compile(
        r"(_quarantine/)?\d{4}/\d{2}/\d{2}/[A-Za-z0-9_-]+/trades/[a-z0-9]+-\d{8}T\d{9}Z-p\d+-o\d{20}"
        r"\.parquet|_metadata/[A-Za-z0-9_-]+/trades/[a-z0-9]+-\d{8}T\d{9}Z-p\d+-o\d{20}\.json"
        rf"|_state/{re.escape(lab.group)}/{re.escape(lab.topics[DataType.TRADES])}/\d+\.json"
    )
    outside = [k for k in keys if not layout.fullmatch(k)]
    assert not outside, f"seed {seed}: keys outside the layout: {outside[:5]}"
