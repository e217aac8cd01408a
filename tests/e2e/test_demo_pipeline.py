"""Whole processes: emulator -> ``ticklake collect`` -> Kafka -> ``ticklake sink`` -> S3,
and emulator -> ``ticklake run`` -> local lake. The lake must hold exactly the trades the
emulator delivered: same ids, same values, each once.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import S3Config, TopicFactory
from tests.sinkkit import read_lake, rows_of
from worker.config import StorageConfig
from worker.emulator import Emulator, EmulatorConfig
from worker.storage import open_store
from worker.storage.local import LocalStore

REPO = Path(__file__).resolve().parents[2]
TICKLAKE = str(REPO / ".venv" / "bin" / "ticklake")

pytestmark = pytest.mark.timeout(180)


def trade_key(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["symbol"], r["id"], r["timestamp"], r["price"], r["amount"], r["side"])


def exchange(em: Emulator) -> dict[str, Any]:
    return {
        "id": "binance",
        "symbols": em.symbols,
        "urls": em.ccxt_urls(),
        "options": {"fetchMarkets": {"types": ["spot"]}},
        "streams": {"trades": True},
    }


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    em = Emulator(EmulatorConfig(symbols=3, rate_hz=20, seed=11))
    await em.start()
    try:
        yield em
    finally:
        await em.stop()


async def spawn(args: list[str], log: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        TICKLAKE, *args, stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT, env=env
    )


async def terminate(proc: asyncio.subprocess.Process, timeout_s: float = 40) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise


async def until_subscribed(em: Emulator, timeout_s: float = 90) -> None:
    """Until a collector subscribed to the emulator's trades (ccxt imports are slow)."""
    async with asyncio.timeout(timeout_s):
        while not any(s.endswith("@trade") for s in em.hub.by_stream):
            await asyncio.sleep(0.2)


async def lake_trades(store: Any, expect: int, timeout_s: float) -> list[tuple[Any, ...]]:
    """Trades read back from the lake, polling until ``expect`` rows are there."""
    rows: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while True:
            tables = await read_lake(store)
            rows = rows_of(t for k, t in tables.items() if "/trades/" in k)
            if len(rows) >= expect:
                return [trade_key(r) for r in rows]
            await asyncio.sleep(0.5)


async def test_emulator_collect_kafka_sink_s3_exactly_once(
    emulator: Emulator,
    kafka_bootstrap: str,
    s3_config: S3Config,
    topic_factory: TopicFactory,
    unique_group: str,
    bucket: str,
    tmp_path: Path,
) -> None:
    topic = await topic_factory(3, prefix="e2e-trades")
    cfg = {
        "log": {"level": "info", "format": "json"},
        "http": {"host": "127.0.0.1", "port": 0},
        "kafka": {"bootstrap_servers": kafka_bootstrap, "topics": {"trades": topic}},
        "storage": {
            "url": f"s3://{bucket}",
            "endpoint_url": s3_config.endpoint_url,
            "region": s3_config.region,
        },
        "sink": {"group_id": unique_group, "data_types": ["trades"], "max_age_s": 1.5},
        "collector": {"collector_id": "e2e", "exchanges": [exchange(emulator)]},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3_config.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_config.secret_key,
    }
    args = ["--config", str(tmp_path / "cfg.yaml")]
    sink = await spawn(["sink", *args], tmp_path / "sink.log", env)
    collector = await spawn(["collect", *args], tmp_path / "collect.log", env)
    store = await open_store(
        StorageConfig(
            url=f"s3://{bucket}",
            endpoint_url=s3_config.endpoint_url,
            region=s3_config.region,
            access_key_id=s3_config.access_key,  # type: ignore[arg-type]
            secret_access_key=s3_config.secret_key,  # type: ignore[arg-type]
        )
    )
    try:
        await until_subscribed(emulator)
        await asyncio.sleep(6)
        await emulator.pause()
        await asyncio.sleep(2)
        assert await terminate(collector) == 0, (tmp_path / "collect.log").read_text()[-3000:]
        sent = sorted(trade_key(r) for r in emulator.hub.sent.get("trades"))
        assert len(sent) > 300
        got = await lake_trades(store, len(sent), timeout_s=60)
        assert await terminate(sink) == 0, (tmp_path / "sink.log").read_text()[-3000:]
        got = await lake_trades(store, len(sent), timeout_s=5)
    finally:
        for proc in (collector, sink):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await store.close()
    assert sorted(got) == sent  # every trade, once, with its values


async def test_ticklake_run_writes_the_sent_trades_to_a_local_lake(
    emulator: Emulator, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    cfg = {
        "log": {"level": "info", "format": "json"},
        "http": {"host": "127.0.0.1", "port": 0},
        "storage": {"url": f"file://{lake}"},
        "sink": {"max_age_s": 2},
        "collector": {"collector_id": "run", "exchanges": [exchange(emulator)]},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    run = await spawn(
        ["run", "--config", str(tmp_path / "run.yaml"), "--duration-s", "120"],
        tmp_path / "run.log",
        dict(os.environ),
    )
    await until_subscribed(emulator)
    await asyncio.sleep(4)
    await emulator.pause()  # quiet before the run stops: everything delivered is read
    await asyncio.sleep(1.5)
    assert await terminate(run) == 0, (tmp_path / "run.log").read_text()[-3000:]

    sent = sorted(trade_key(r) for r in emulator.hub.sent.get("trades"))
    store = LocalStore(lake)
    got = await lake_trades(store, len(sent), timeout_s=5)
    assert len(sent) > 150
    assert sorted(got) == sent
