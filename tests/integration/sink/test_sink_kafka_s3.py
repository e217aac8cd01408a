"""The sink against real Kafka and S3: values, paths, sidecars, triggers, quarantine, DLQ."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import aiohttp
import orjson
import pyarrow.parquet as pq
import pytest

from tests.integration.sink.conftest import SinkLab
from tests.sinkkit import FACTORIES, as_lake_row, read_lake, rows_of, trade
from worker.records import DataType, encode
from worker.sink.layout import DAY_MS


async def sidecars(lab: SinkLab, prefix: str = "_metadata/") -> dict[str, Any]:
    async with lab.store() as store:
        return {k: orjson.loads((await store.get(k)).data) for k in await store.list(prefix)}


@pytest.mark.parametrize(
    "encoding",
    [
        {"encode_processes": 0},
        # Encoder processes, each buffer parsed ahead in slices of a few messages
        # that stay in the encoder that parsed them until the flush.
        {"encode_processes": 2, "parse_ahead_bytes": 1500},
    ],
    ids=["threads", "processes-parse-ahead"],
)
async def test_round_trip_every_type_with_sidecars(lab: SinkLab, encoding: dict[str, int]) -> None:
    sent = {}
    for dt in DataType:
        sent[dt] = [FACTORIES[dt](i, symbol=f"S{i % 2}/USDT") for i in range(40)]
        await lab.produce(dt, sent[dt])
    cfg = lab.settings(orderbook_depth=5, row_group_rows=8, **encoding)
    assert await lab.run(cfg) == 0

    async with lab.store() as store:
        lake = await read_lake(store)
        raw = {k: (await store.get(k)).data for k in lake}
    for dt in DataType:
        files = {k: t for k, t in lake.items() if f"/{dt.value}/" in k}
        assert len(files) == 2  # one per symbol (one partition each, one day)
        got = sorted(rows_of(files.values()), key=lambda r: (r["symbol"], r["timestamp"]))
        want = sorted(sent[dt], key=lambda r: (r["symbol"], r["timestamp"]))
        assert got == [as_lake_row(dt, r, depth=5) for r in want]
        for key, table in files.items():
            sym = "S0_USDT" if "/S0_USDT/" in key else "S1_USDT"
            assert key.startswith(f"2025/11/24/{sym}/{dt.value}/binance-2025112")
            meta = pq.read_metadata(io.BytesIO(raw[key]))
            assert meta.metadata[b"ticklake.schema"] == dt.schema_name.encode()
            assert meta.metadata[b"ticklake.schema_version"] == b"1"
            assert meta.row_group(0).column(0).compression == "SNAPPY"
            assert meta.num_row_groups == 3  # 20 rows in groups of 8
            ts = table.column("timestamp").to_pylist()
            assert ts == sorted(ts)

    metas = await sidecars(lab)
    assert len(metas) == 8
    for key, meta in metas.items():
        data = raw[meta["file"]]
        assert key.replace("_metadata/", "").split("/")[:2] == meta["file"].split("/")[3:5]
        assert meta["rows"] == 20
        assert meta["columns"] == lake[meta["file"]].num_columns
        assert meta["size_bytes"] == len(data)
        assert meta["sha256"] == hashlib.sha256(data).hexdigest()
        assert meta["schema"]["version"] == 1
        assert meta["first_event_time"].startswith("2025-11-24T16:0")
        assert meta["quality"]["score"] == 100.0
        assert meta["quality"]["passed"] is True
        lineage = meta["lineage"]
        assert lineage["topic"] == lab.topics[DataType(lineage["data_type"])]
        # Both symbols may share a partition: the range spans the file's 20 offsets at least.
        assert lineage["last_offset"] - lineage["first_offset"] >= 19
        assert lineage["collector_ids"] == ["c1"]
        assert lineage["consumer_group"] == lab.group


@pytest.mark.parametrize(
    ("sink", "n", "expect_rows", "expect_triggers"),
    [
        ({"max_rows": 10, "max_age_s": 60}, 35, [10, 10, 10, 5], {"max_rows", "shutdown"}),
        ({"max_bytes": 3000, "max_age_s": 60}, 12, None, {"max_bytes"}),
        ({"max_buffered_bytes": 4000, "max_age_s": 60}, 30, None, {"memory"}),
        ({"max_age_s": 0.3}, 5, [5], {"max_age"}),
        ({"max_age_s": 60, "idle_flush_s": 0.5}, 5, [5], {"idle"}),
    ],
    ids=["max_rows", "max_bytes", "memory", "max_age", "idle"],
)
async def test_flush_triggers(
    lab: SinkLab,
    sink: dict[str, Any],
    n: int,
    expect_rows: list[int] | None,
    expect_triggers: set[str],
) -> None:
    recs = [trade(i) for i in range(n)]
    await lab.produce(DataType.TRADES, recs)
    cfg = lab.settings(data_types=["trades"], **sink)

    async def enough_flushed() -> bool:
        if expect_triggers & {"max_age", "idle"}:  # only the clock can flush these
            return await lab.all_stored()
        return len(await sidecars(lab)) >= (3 if "max_rows" in expect_triggers else 1)

    assert await lab.run(cfg, until=enough_flushed) == 0
    metas = sorted((await sidecars(lab)).values(), key=lambda m: m["lineage"]["first_offset"])
    triggers = {m["lineage"]["trigger"] for m in metas}
    assert expect_triggers <= triggers
    if expect_rows is not None:
        assert [m["rows"] for m in metas] == expect_rows
    async with lab.store() as store:
        got = sorted(rows_of((await read_lake(store)).values()), key=lambda r: int(r["id"]))
    assert got == recs  # whatever the trigger, every record once


async def test_quarantine_keeps_bad_batches(lab: SinkLab) -> None:
    bad = [trade(i, price=-1.0) if i % 2 else trade(i) for i in range(20)]
    await lab.produce(DataType.TRADES, bad)
    assert await lab.run(lab.settings(data_types=["trades"])) == 0
    async with lab.store() as store:
        assert await read_lake(store) == {}
        quarantined = await read_lake(store, "_quarantine/")
    (key,) = quarantined
    assert key.startswith("_quarantine/2025/11/24/BTC_USDT/trades/")
    assert rows_of(quarantined.values()) == bad
    (meta,) = (await sidecars(lab, "_quarantine/_metadata/")).values()
    assert meta["destination"] == "quarantine"
    assert meta["quality"]["checks"]["validity"] == 10
    assert meta["quality"]["score"] == 50.0
    assert meta["quality"]["passed"] is False


async def test_dead_letters_with_reason(lab: SinkLab) -> None:
    good = trade(1)
    wrong_type = encode(DataType.TRADES, {**trade(2), "price": "cheap"})
    await lab.produce_raw(
        DataType.TRADES,
        [
            (b"binance:BTC/USDT", b"\x00\xffnot json"),
            (b"binance:BTC/USDT", wrong_type),
            (b"binance:ETH/USDT", encode(DataType.TRADES, trade(3))),  # key mismatch
            (b"binance:BTC/USDT", orjson.dumps({"schema": "ticklake.nope", "v": 1})),
            (b"binance:BTC/USDT", encode(DataType.TRADES, good)),
        ],
    )
    assert await lab.run(lab.settings(data_types=["trades"])) == 0
    letters = await lab.dead_letters(4)
    reasons = sorted(dict(m.headers)["ticklake.reason"].decode() for m in letters)
    assert reasons == ["key_mismatch", "not_json", "unknown_schema", "wrong_type"]
    for m in letters:
        source = dict(m.headers)["ticklake.source"].decode()
        assert source.startswith(f"{lab.topics[DataType.TRADES]}/")
    async with lab.store() as store:
        assert rows_of((await read_lake(store)).values()) == [good]


async def test_hive_layout_zstd_and_day_split(lab: SinkLab) -> None:
    recs = [trade(0), trade(1, timestamp=trade(1)["timestamp"] + DAY_MS)]
    await lab.produce(DataType.TRADES, recs)
    cfg = lab.settings(data_types=["trades"], layout="hive", compression="zstd")
    assert await lab.run(cfg) == 0
    async with lab.store() as store:
        lake = await read_lake(store)
        keys = sorted(lake)
        data = (await store.get(keys[0])).data
    assert [k.rsplit("/", 1)[0] for k in keys] == [
        "exchange=binance/data_type=trades/symbol=BTC_USDT/date=2025-11-24",
        "exchange=binance/data_type=trades/symbol=BTC_USDT/date=2025-11-25",
    ]  # a file never spans two UTC days
    assert pq.read_metadata(io.BytesIO(data)).row_group(0).column(0).compression == "ZSTD"


async def test_endpoints(lab: SinkLab) -> None:
    await lab.produce(DataType.TRADES, [trade(0)])
    cfg = lab.settings(data_types=["trades"])
    cfg = cfg.model_copy(update={"http": cfg.http.model_copy(update={"port": 19731})})
    seen: dict[str, Any] = {}

    async def probe() -> bool:
        try:
            await fetch()
        except aiohttp.ClientConnectorError:
            return False  # not listening yet
        return seen["ready"] == 200 and await lab.all_stored()

    async def fetch() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.get("http://127.0.0.1:19731/readyz") as resp:
                seen["ready"] = resp.status
            async with http.get("http://127.0.0.1:19731/metrics") as resp:
                seen["metrics"] = await resp.text()

    assert await lab.run(cfg, until=probe) == 0
    assert (
        'ticklake_sink_files_written_total{data_type="trades",destination="lake"}'
        in (seen["metrics"])
    )
    assert "ticklake_sink_consumer_lag_records" in seen["metrics"]
