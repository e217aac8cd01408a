"""Hostile input through the whole sink (in-process bus, local folder): it never stops.

Good messages are in the lake exactly once; each bad one is dead-lettered
once with its reason; no object key leaves the layout; a poisoned row (an
encoder bug) or a key the store refuses is isolated, and the rest is stored.
The fuzz seed is printed: ``FUZZ_SEED=<n> pytest ...`` replays a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from tests.sinkkit import BASE_MS, message, read_json, read_lake, rows_of, settings, trade
from worker.bus.memory import MemoryBus, MemoryDeadLetters
from worker.config import Settings
from worker.records import DataType, decode, encode
from worker.sink import batch
from worker.sink.layout import LayoutError, day_of, file_paths, file_stem, safe
from worker.sink.sink import Sink
from worker.storage import LocalStore, PermanentStorageError

DLQ = "dlq"
# Every key the sink may write, in the default layout.
LAYOUT_KEY = re.compile(
    r"(_quarantine/)?(\d{4}/\d{2}/\d{2}/[A-Za-z0-9_-]+/(trades|orderbook|ohlcv|ticker)/"
    r"[a-z0-9]+-\d{8}T\d{9}Z-p\d+-o\d{20}\.parquet"
    r"|_metadata/[A-Za-z0-9_-]+/(trades|orderbook|ohlcv|ticker)/"
    r"[a-z0-9]+-\d{8}T\d{9}Z-p\d+-o\d{20}\.json)"
    r"|_state/g/[a-z.]+/\d+\.json|_state/g/_probe\.json"
)


async def run_sink(cfg: Settings, bus: MemoryBus, store: Any, n_messages: int) -> Sink:
    """Consume every message, then shut down cleanly; fails if the sink stops on its own."""
    source = bus.source(cfg.sink.group_id, [cfg.kafka.topic(DataType.TRADES)])
    sink = Sink(
        cfg, source=source, store=store, dead_letters=MemoryDeadLetters(bus, DLQ), writer="w"
    )
    await source.start(sink)
    task = asyncio.create_task(sink.run(asyncio.Event()))
    try:
        async with asyncio.timeout(30):
            while next(iter(sink.parts.values())).position != n_messages:
                assert not task.done(), f"the sink stopped: {task.exception()!r}"
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await sink.shutdown()
    sink.close()
    return sink


def hostile(i: int, rng: random.Random) -> tuple[bytes | None, bytes | None, str | None]:
    """(key, value, expected dead-letter reason or None for a good message)."""
    rec = trade(i, symbol=rng.choice(["BTC/USDT", "ETH/USDT", "BTC/USDT:USDT"]))
    key, value = message(DataType.TRADES, rec)
    kind = rng.randrange(24)
    bad: dict[int, tuple[bytes | None, bytes | None, str]] = {
        0: (key, b"\xff" + rng.randbytes(rng.randrange(1, 60)), "not_json"),
        1: (key, value[: rng.randrange(1, len(value) - 1)], "not_json"),
        2: (key, b"[1, 2]", "not_object"),
        3: (key, encode(DataType.TRADES, {**rec, "price": "1.5"}), "wrong_type"),
        4: (key, value.replace(b'"price":', b'"price":NaN,"x":'), "not_json"),
        5: (key, encode(DataType.TRADES, {**rec, "timestamp": 253402300800000}), "ts"),
        6: (key, encode(DataType.TRADES, {**rec, "timestamp": 2**63}), "ts"),
        7: (key, encode(DataType.TRADES, {**rec, "timestamp": -1000}), "ts"),
        8: (key, encode(DataType.TRADES, {**rec, "received_at": 2**64 - 1}), "ts"),
        9: (b"bin/ance:BTC/USDT", encode(DataType.TRADES, {**rec, "exchange": "bin/ance"}), "ex"),
        10: (
            b"../../../../escape:BTC/USDT",
            encode(DataType.TRADES, {**rec, "exchange": "../../../../escape"}),
            "ex",
        ),
        11: (
            "binance:BTC/ÜSDT".encode(),
            encode(DataType.TRADES, {**rec, "symbol": "BTC/ÜSDT"}),
            "invalid_symbol",
        ),
        12: (key, encode(DataType.TRADES, {**rec, "symbol": "ETH/BTC"}), "key_mismatch"),
        13: (key, value.replace(b'"v":1', b'"v":2'), "unsupported_version"),
        14: (b"no-colon", value, "key_mismatch"),
        15: (key, None, "not_json"),
    }
    if kind in bad:
        k, v, reason = bad[kind]
        reason = {"ts": "timestamp_out_of_range", "ex": "invalid_exchange"}.get(reason, reason)
        return k, v, reason
    return key, value, None


@pytest.mark.parametrize("parse_ahead", [0, 2048], ids=["parse-at-flush", "parse-ahead"])
async def test_fuzz_the_sink_never_stops_and_nothing_escapes(
    tmp_path: Path, parse_ahead: int
) -> None:
    seed = int(os.environ.get("FUZZ_SEED", random.randrange(1 << 30)))
    print(f"FUZZ_SEED={seed}")  # replay a failure with this
    rng = random.Random(seed)
    cfg = settings(
        f"file://{tmp_path}",
        max_rows=97,
        data_types=["trades"],
        poll_max_records=50,
        parse_ahead_bytes=parse_ahead,
    )
    bus = MemoryBus()
    topic = cfg.kafka.topic(DataType.TRADES)
    good: dict[str, bytes] = {}
    expected_dead: dict[int, str] = {}
    for i in range(3000):
        key, value, reason = hostile(i, rng)
        if reason is None:
            good[str(i)] = value or b""
        else:
            expected_dead[i] = reason
        await bus.publish(topic, key, value)

    store = LocalStore(tmp_path)
    await run_sink(cfg, bus, store, 3000)

    rows = rows_of((await read_lake(store)).values())
    assert Counter(r["id"] for r in rows) == Counter(good.keys()), f"seed {seed}"
    for r in rows:  # values, not just ids
        assert r["price"] == decode(good[r["id"]])[1]["price"]
    dead = bus.messages(DLQ)
    sources = Counter(dict(m.headers)["ticklake.source"].decode() for m in dead)
    assert all(c == 1 for c in sources.values()), f"seed {seed}: a dead letter sent twice"
    got = {
        int(dict(m.headers)["ticklake.source"].decode().rsplit("/", 1)[1]): dict(m.headers)[
            "ticklake.reason"
        ].decode()
        for m in dead
    }
    assert got == expected_dead, f"seed {seed}"
    keys = await store.list()
    outside = [k for k in keys if not LAYOUT_KEY.fullmatch(k)]
    assert not outside, f"seed {seed}: keys outside the layout: {outside[:5]}"
    assert not list(tmp_path.parent.glob("escape*"))


async def test_an_encoder_bug_on_one_row_poisons_that_row_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sort = batch.sort_by_event_time

    def buggy_sort(table: pa.Table) -> pa.Table:
        if "666" in table.column("id").to_pylist():
            raise RuntimeError("a bug that only row 666 triggers")
        return real_sort(table)

    monkeypatch.setattr(batch, "sort_by_event_time", buggy_sort)
    cfg = settings(f"file://{tmp_path}", max_rows=500, data_types=["trades"])
    bus = MemoryBus()
    sent = {str(i): trade(i) for i in range(1000)}
    for rec in sent.values():
        await bus.publish(cfg.kafka.topic(DataType.TRADES), *message(DataType.TRADES, rec))
    store = LocalStore(tmp_path)
    await run_sink(cfg, bus, store, 1000)

    rows = rows_of((await read_lake(store)).values())
    assert sorted(r["id"] for r in rows) == sorted(k for k in sent if k != "666")
    assert all(r == sent[r["id"]] for r in rows)
    (dead,) = bus.messages(DLQ)
    headers = dict(dead.headers)
    assert headers["ticklake.reason"] == b"poison"
    assert headers["ticklake.source"] == b"ticklake.trades/0/666"
    assert b"RuntimeError" in headers["ticklake.detail"]
    # The dead letter is the record itself, decodable as the contract says.
    assert decode(dead.value)[1] == sent["666"]


class RefusingStore(LocalStore):
    """A store that refuses (permanently) every key containing one of ``refused``."""

    def __init__(self, root: Path, refused: tuple[str, ...]) -> None:
        super().__init__(root)
        self.refused = refused

    async def put(self, key: str, data: bytes, **kw: Any) -> str:
        if key.startswith(self.refused):
            raise PermanentStorageError("put", key, "400 InvalidRequest")
        return await super().put(key, data, **kw)


@pytest.mark.parametrize("also_quarantine", [False, True])
async def test_a_refused_key_is_quarantined_or_dead_lettered_and_the_rest_stored(
    tmp_path: Path, also_quarantine: bool
) -> None:
    cfg = settings(f"file://{tmp_path}", max_rows=100_000, data_types=["trades"])
    bus = MemoryBus()
    recs = [trade(i, symbol="BTC/USDT" if i % 2 else "ETH/USDT") for i in range(400)]
    for rec in recs:
        await bus.publish(cfg.kafka.topic(DataType.TRADES), *message(DataType.TRADES, rec))
    refused = ("2025/11/24/ETH_USDT/", "_quarantine/") if also_quarantine else ("2025/11/24/ETH_",)
    store = RefusingStore(tmp_path, refused)
    await run_sink(cfg, bus, store, 400)

    plain = LocalStore(tmp_path)
    lake = rows_of((await read_lake(plain)).values())
    assert sorted(r["id"] for r in lake) == sorted(
        r["id"] for r in recs if r["id"] != "" and int(r["id"]) % 2
    )
    quarantined = await read_lake(plain, "_quarantine")
    dead = bus.messages(DLQ)
    eth = sorted(r["id"] for r in recs if int(r["id"]) % 2 == 0)
    if also_quarantine:
        assert quarantined == {}
        assert sorted(decode(m.value)[1]["id"] for m in dead) == eth
        assert {dict(m.headers)["ticklake.reason"] for m in dead} == {b"poison"}
    else:
        assert dead == []
        ((key, table),) = quarantined.items()
        assert sorted(rows_of([table]), key=lambda r: int(r["id"])) == [
            r for r in recs if int(r["id"]) % 2 == 0
        ]
        (sidecar_key,) = await plain.list("_quarantine/_metadata")
        sidecar = await read_json(plain, sidecar_key)
        assert sidecar["destination"] == "quarantine"
        assert sidecar["poison"]["stage"] == "storage"
        assert sidecar["file"] == key


async def test_a_store_that_refuses_everything_stops_the_sink(tmp_path: Path) -> None:
    cfg = settings(f"file://{tmp_path}", max_rows=50, data_types=["trades"])
    bus = MemoryBus()
    for i in range(100):
        await bus.publish(cfg.kafka.topic(DataType.TRADES), *message(DataType.TRADES, trade(i)))
    store = RefusingStore(tmp_path, ("2025/", "_state/g/_probe"))
    with pytest.raises(PermanentStorageError, match="400 InvalidRequest"):
        await run_sink(cfg, bus, store, 100)
    assert bus.messages(DLQ) == []  # not poison: nothing dead-lettered


def test_layout_refuses_unsafe_components_and_floors_days() -> None:
    for bad in ("bin/ance", "..", ".hidden", "a\x00b", "a\\b", ""):
        with pytest.raises(LayoutError):
            safe(bad)
    assert day_of(-1000).isoformat() == "1969-12-31"
    assert file_stem("binance", 0, 5, -1000) == "binance-19691231T235959000Z-p0-o" + "5".zfill(20)
    days = batch.day_numbers(pa.chunked_array([pa.array([-1000, 0, BASE_MS], pa.int64())]))
    assert days.to_pylist() == [-1, 0, BASE_MS // 86_400_000]
    from worker.sink.layout import BufferKey, Destination

    key = BufferKey("bin/ance", "BTC/USDT", DataType.TRADES)
    with pytest.raises(LayoutError):
        file_paths(key, day_of(0), "x", "default", Destination.LAKE)


def test_as_message_round_trips_through_decode() -> None:
    rec = trade(3)
    from worker.records import SPECS

    table = pa.Table.from_pylist(
        [decode(encode(DataType.TRADES, rec))[1]], SPECS[DataType.TRADES].arrow_schema
    )
    assert orjson.loads(batch.as_message(SPECS[DataType.TRADES], table)) == {
        "schema": "ticklake.trades",
        "v": 1,
        **rec,
    }


@pytest.mark.parametrize("crash_on_put", range(2, 30, 3))
async def test_after_kill_9_only_dead_letters_the_state_had_not_passed_are_sent_again(
    tmp_path: Path, crash_on_put: int
) -> None:
    """The documented window (docs/architecture.md): a dead letter is re-sent after a
    crash only if its offset was at or above the state's C when the process died."""
    from tests.unit.sink.test_sink_crash_replay import Crash, CrashingStore, abandon, start

    cfg = settings(f"file://{tmp_path}", max_rows=40, max_age_s=30, data_types=["trades"])
    bus = MemoryBus()
    topic = cfg.kafka.topic(DataType.TRADES)
    bad = set(range(5, 400, 13))
    for i in range(400):
        key, value = message(DataType.TRADES, trade(i))
        await bus.publish(topic, key, b"not json" if i in bad else value)
    store = CrashingStore(tmp_path, crash_on_put)
    try:
        sink, task = await start(cfg, bus, store)
    except Crash:
        pass
    else:
        async with asyncio.timeout(10):
            await store.crashed.wait()
        await abandon(sink, task)
    state_key = f"_state/g/{topic}/0.json"
    plain = LocalStore(tmp_path)
    c_at_crash = (
        (await read_json(plain, state_key)).get("next_offset") or 0
        if (tmp_path / state_key).exists()
        else 0
    )
    first_run = len(bus.messages("d"))
    sink2, task2 = await start(cfg, bus, plain)
    async with asyncio.timeout(10):
        while sink2.parts[next(iter(sink2.parts))].position != 400:
            await asyncio.sleep(0.02)
    task2.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task2
    await sink2.shutdown()
    sources = Counter(
        int(dict(m.headers)["ticklake.source"].decode().rsplit("/", 1)[1])
        for m in bus.messages("d")
    )
    assert set(sources) == bad  # every bad message dead-lettered
    again = {o for o, n in sources.items() if n > 1}
    assert all(n <= 2 for n in sources.values())
    assert all(o >= c_at_crash for o in again), (c_at_crash, sorted(again), first_run)
    rows = rows_of((await read_lake(plain)).values())
    assert sorted(int(r["id"]) for r in rows) == sorted(set(range(400)) - bad)
