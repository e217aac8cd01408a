"""Running ``ticklake sink`` processes against the real Kafka and S3 for chaos tests."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaProducer

from tests.helpers import S3Config
from tests.sinkkit import read_json, read_lake, rows_of, trade
from worker.config import StorageConfig
from worker.records import DataType, encode, lake_symbol, message_key
from worker.storage.s3 import S3Store

REPO = Path(__file__).resolve().parents[3]
TICKLAKE = REPO / ".venv" / "bin" / "ticklake"


@dataclass
class Lake:
    """One test's topic, group, bucket and sink config file."""

    topic: str
    dlq: str
    group: str
    bucket: str
    s3: S3Config
    kafka: str
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def write_config(self, **sink: Any) -> Path:
        cfg = {
            "log": {"level": "info", "format": "json"},
            "http": {"host": "127.0.0.1", "port": 0},
            "kafka": {
                "bootstrap_servers": self.kafka,
                "topics": {"trades": self.topic},
                "dead_letter_topic": self.dlq,
            },
            "storage": {
                "url": f"s3://{self.bucket}",
                "endpoint_url": self.s3.endpoint_url,
                "region": self.s3.region,
                "max_attempts": 3,
                "backoff_base_s": 0.1,
                "backoff_max_s": 1.0,
                "connect_timeout_s": 2.0,
                "read_timeout_s": 5.0,
            },
            "sink": {
                "group_id": self.group,
                "data_types": ["trades"],
                "max_age_s": 1.5,
                "max_rows": 150,
                "session_timeout_ms": 6_000,
                "heartbeat_interval_ms": 1_000,
                "shutdown_deadline_s": 30,
                "revoke_deadline_s": 15,
                "retry_backoff_max_s": 2.0,
                **sink,
            },
        }
        path = self.workdir / "sink.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def start_sink(self, name: str, *, new_session: bool = False) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
        }
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [str(TICKLAKE), "sink", "--config", str(self.workdir / "sink.yaml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=new_session,  # its own process group, like a terminal job
        )
        self.procs.append(proc)
        return proc

    async def wait_log(self, name: str, needle: str, timeout_s: float) -> None:
        """Until ``needle`` appears in the log of sink process ``name``."""
        path = self.workdir / f"{name}.log"
        async with asyncio.timeout(timeout_s):
            while needle not in path.read_text(errors="replace"):
                await asyncio.sleep(0.1)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def store(self) -> S3Store:
        return S3Store(
            StorageConfig(
                url=f"s3://{self.bucket}",
                endpoint_url=self.s3.endpoint_url,
                region=self.s3.region,
                access_key_id=self.s3.access_key,  # type: ignore[arg-type]
                secret_access_key=self.s3.secret_key,  # type: ignore[arg-type]
            )
        )


async def sigterm(proc: subprocess.Popen[bytes], timeout_s: float = 40) -> int:
    proc.send_signal(signal.SIGTERM)
    for _ in range(int(timeout_s * 10)):
        if proc.poll() is not None:
            return proc.returncode
        await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("sink did not stop within its deadline")


class Producer:
    """Produces unique trades for ``symbols`` symbols at a steady pace; remembers them."""

    def __init__(self, kafka: str, topic: str, symbols: int = 12) -> None:
        self.kafka, self.topic, self.symbols = kafka, topic, symbols
        self.sent: dict[str, dict[str, Any]] = {}
        self.end_offsets: dict[int, int] = {}

    async def run(self, total: int, per_second: float) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.kafka, acks="all", linger_ms=5)
        await producer.start()
        try:
            for i in range(total):
                # Skewed: S0 fills max_rows buffers while quieter symbols wait for max_age,
                # so stored files routinely overlap open buffers (covered ranges in use).
                sym = 0 if i % 2 == 0 else 1 + (i // 2) % (self.symbols - 1)
                rec = trade(i, symbol=f"S{sym}/USDT")
                fut = await producer.send(
                    self.topic,
                    encode(DataType.TRADES, rec),
                    key=message_key("binance", rec["symbol"]),
                )
                self.sent[rec["id"]] = rec
                fut.add_done_callback(self._track)
                if i % 50 == 49:
                    await asyncio.sleep(50 / per_second)
            await producer.flush()
        finally:
            await producer.stop()

    def _track(self, fut: asyncio.Future[Any]) -> None:
        md = fut.result()
        self.end_offsets[md.partition] = max(self.end_offsets.get(md.partition, 0), md.offset + 1)


async def wait_all_stored(lake: Lake, producer: Producer, timeout_s: float = 90) -> None:
    """Until every partition's state object has next_offset at the end of the partition."""
    store = lake.store()
    await store.start()
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                done = 0
                for part, end in producer.end_offsets.items():
                    try:
                        state = await read_json(
                            store, f"_state/{lake.group}/{lake.topic}/{part}.json"
                        )
                    except Exception:  # not written yet
                        continue
                    done += (state.get("next_offset") or 0) >= end
                if done == len(producer.end_offsets):
                    return
                await asyncio.sleep(0.5)
    finally:
        await store.close()


async def assert_exactly_once(lake: Lake, producer: Producer) -> None:
    """Every produced trade is in the lake once, with its values, in the right place."""
    store = lake.store()
    await store.start()
    try:
        files = await read_lake(store)
        quarantined = await read_lake(store, "_quarantine/")
    finally:
        await store.close()
    assert not quarantined
    counts: Counter[str] = Counter()
    for key, table in files.items():
        for row in rows_of([table]):
            counts[row["id"]] += 1
            assert row == producer.sent[row["id"]], key
            assert f"/{lake_symbol(row['symbol'])}/trades/" in key
            assert key.startswith("2025/11/24/")
    dupes = {k: c for k, c in counts.items() if c > 1}
    missing = set(producer.sent) - set(counts)
    assert not dupes, f"{len(dupes)} duplicated, e.g. {list(dupes.items())[:5]}"
    assert not missing, f"{len(missing)} missing, e.g. {sorted(missing)[:5]}"


def jitter(lo: float, hi: float) -> float:
    return random.uniform(lo, hi)


def python() -> str:
    return sys.executable
