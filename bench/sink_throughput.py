"""Sink throughput: a bare aiokafka consumer vs ``ticklake sink`` on the same topic.

1. load N trades (default 2,000,000) for 500 symbols into a fresh 6-partition topic;
2. (a) drain it with a bare AIOKafkaConsumer that does nothing else (the ceiling
   for a Python consumer);
3. (b) run ``ticklake sink`` (a subprocess, one process) until every partition's
   state object says everything is stored in the S3 bucket;
4. print rows/s for both, the ratio, files written and the sink's peak RSS.

Needs KAFKA_BOOTSTRAP_SERVERS, S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY (``source .services/env``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psutil
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from worker.config import StorageConfig
from worker.records import DataType, encode, message_key
from worker.storage.s3 import S3Store

REPO = Path(__file__).resolve().parent.parent
BASE_MS = 1_764_000_000_000


def trade(i: int, symbols: int) -> tuple[bytes, bytes]:
    sym = f"S{i % symbols:03d}/USDT"
    rec = {
        "exchange": "binance",
        "symbol": sym,
        "id": str(i),
        "timestamp": BASE_MS + i,
        "received_at": (BASE_MS + i) * 1000 + 250,
        "side": "buy" if i % 2 else "sell",
        "price": 100.0 + (i % 1000) / 100,
        "amount": 0.001 * (1 + i % 50),
        "cost": (100.0 + (i % 1000) / 100) * 0.001 * (1 + i % 50),
        "taker_or_maker": "taker",
        "collector_id": "bench",
    }
    return message_key("binance", sym), encode(DataType.TRADES, rec)


async def load(
    bootstrap: str, topic: str, n: int, symbols: int, compression: str
) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 6, 1)])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        max_batch_size=512 * 1024,
        acks=1,
        compression_type=None if compression == "none" else compression,
    )
    await producer.start()
    ends: dict[int, int] = {}
    started = time.perf_counter()
    try:
        for chunk in range(0, n, 20_000):
            futs = [
                await producer.send(topic, v, key=k)
                for k, v in (trade(i, symbols) for i in range(chunk, min(n, chunk + 20_000)))
            ]
            for md in await asyncio.gather(*futs):
                ends[md.partition] = max(ends.get(md.partition, 0), md.offset + 1)
    finally:
        await producer.stop()
    print(f"loaded {n:,} trades for {symbols} symbols in {time.perf_counter() - started:.1f} s")
    return ends


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await consumer.topics()  # fetches metadata
        parts = consumer.partitions_for_topic(topic) or range(6)
        tps = [TopicPartition(topic, p) for p in parts]
        return {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def bare_consumer(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    """Wall and CPU seconds for a group member that only counts messages to drain the topic."""
    started, cpu0 = time.perf_counter(), time.process_time()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            seen += sum(len(msgs) for msgs in batch.values())
    finally:
        await consumer.stop()
    return time.perf_counter() - started, time.process_time() - cpu0


def sink_config(workdir: Path, topic: str, bucket: str, group: str, args: Any) -> Path:
    cfg = {
        "log": {"level": args.log_level, "format": "json"},
        "http": {"host": "127.0.0.1", "port": 0},
        "kafka": {
            "bootstrap_servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "topics": {"trades": topic},
        },
        "storage": {"url": f"s3://{bucket}", "endpoint_url": os.environ["S3_ENDPOINT_URL"]},
        "sink": {
            "group_id": group,
            "data_types": ["trades"],
            "max_age_s": args.max_age_s,
            "idle_flush_s": args.idle_flush_s,
            "encode_processes": args.encode_processes,
            "max_buffered_bytes": args.max_buffered_mib * 1024 * 1024,
        },
    }
    for kv in args.set:  # KEY (of sink) or SECTION.KEY
        key, value = kv.split("=", 1)
        section, _, name = key.rpartition(".")
        cfg[section or "sink"][name] = yaml.safe_load(value)
    path = workdir / "sink.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


async def stored(
    store: S3Store, group: str, topic: str, ends: dict[int, int], done: set[int]
) -> bool:
    """Every partition's state object says all is stored (``done``: those already seen so)."""
    for part, end in ends.items():
        if part in done:
            continue
        try:
            state = orjson.loads((await store.get(f"_state/{group}/{topic}/{part}.json")).data)
        except Exception:
            return False
        if (state.get("next_offset") or 0) < end:
            return False
        done.add(part)
    return True


async def run_sink(topic: str, ends: dict[int, int], args: Any) -> tuple[float, int, int, float]:
    """Seconds until everything is stored, files written, peak RSS (bytes), CPU seconds."""
    bucket, group = f"bench-{uuid.uuid4().hex[:10]}", f"bench-sink-{uuid.uuid4().hex[:8]}"
    store = S3Store(StorageConfig(url=f"s3://{bucket}", endpoint_url=os.environ["S3_ENDPOINT_URL"]))
    await store.start()
    await store.client.create_bucket(Bucket=bucket)
    workdir = Path(tempfile.mkdtemp(prefix="ticklake-bench-"))
    print(f"sink config and log: {workdir}")
    services = _services()
    services_cpu = _cpu_of(services)
    config = sink_config(workdir, topic, bucket, group, args)
    log = (workdir / "sink.log").open("wb")
    started = time.perf_counter()
    proc = subprocess.Popen(  # noqa: ASYNC220  # started once; we poll it, never wait on it
        [str(REPO / ".venv/bin/ticklake"), "sink", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    peak, ps, next_check = 0, psutil.Process(proc.pid), 0.0
    peak_split: list[int] = []
    done: set[int] = set()
    timeline: list[str] = []
    last_cpu: list[float] = []
    try:
        while True:
            # The sink and its encoder processes together.
            procs = [ps, *ps.children(recursive=True)]
            if args.timeline and len(timeline) * 0.5 <= time.perf_counter() - started:
                cpus = [_cpu_of([ps]), _cpu_of(procs[1:]), _cpu_of(services)]
                if last_cpu:
                    use = [(a - b) * 200 for a, b in zip(cpus, last_cpu, strict=True)]
                    timeline.append(
                        f"{len(timeline) * 0.5:5.1f}s " + " ".join(f"{u:4.0f}%" for u in use)
                    )
                else:
                    timeline.append("")
                last_cpu = cpus
            rss = [p.memory_info().rss for p in procs]
            if sum(rss) > peak:
                peak, peak_split = sum(rss), rss
            if proc.poll() is not None:
                raise RuntimeError(f"sink exited with {proc.returncode}; see {workdir}/sink.log")
            if time.perf_counter() >= next_check:
                next_check = time.perf_counter() + 0.5
                if await stored(store, group, topic, ends, done):
                    break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        if timeline:
            print("CPU per 0.5 s: sink process, its encoders, broker + S3 server")
            print("\n".join(timeline[1:]))
        print(
            "peak RSS by process (sink first), MiB: "
            + ", ".join(f"{r / 2**20:.0f}" for r in peak_split)
        )
        cpu = _cpu_seconds(ps)
        services_cpu = _cpu_of(services) - services_cpu
        print(f"CPU seconds of the broker and the S3 server meanwhile: {services_cpu:.1f}")
        keys = await store.list()
        files = [k for k in keys if k.endswith(".parquet")]
    finally:
        proc.terminate()
        proc.wait(60)
        await _drop_bucket(store, bucket)
        await store.close()
    return elapsed, len(files), peak, cpu


async def _drop_bucket(store: S3Store, bucket: str) -> None:
    """Leave no bucket behind: SeaweedFS keeps volumes (and some CPU) per bucket."""
    keys = await store.list()
    for i in range(0, len(keys), 1000):
        objects = [{"Key": k} for k in keys[i : i + 1000]]
        await store.client.delete_objects(Bucket=bucket, Delete={"Objects": objects})
    await store.client.delete_bucket(Bucket=bucket)


def _services() -> list[psutil.Process]:
    """The Kafka broker and the S3 server, when they run on this machine."""
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if p.info["name"] == "weed" or (p.info["name"] == "java" and "kafka" in cmd):
            found.append(p)
    return found


def _cpu_of(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def _cpu_seconds(ps: psutil.Process) -> float:
    """CPU seconds of the sink and its encoder processes."""
    parts = []
    for p in [ps, *ps.children(recursive=True)]:
        t = p.cpu_times()
        parts.append(t.user + t.system)
    print("CPU seconds by process (sink first): " + ", ".join(f"{c:.1f}" for c in parts))
    return sum(parts)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--compression", default="lz4", choices=["gzip", "lz4", "zstd", "none"])
    # The production default: files are as big as memory allows. The backlog's
    # last buffers land once their partition is idle, not max_age_s later.
    ap.add_argument("--max-age-s", type=float, default=60.0)
    ap.add_argument("--idle-flush-s", type=float, default=2.0)
    ap.add_argument("--max-buffered-mib", type=int, default=320)
    ap.add_argument("--log-level", default="warning")
    ap.add_argument("--timeline", action="store_true", help="print CPU use every 0.5 s")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting: KEY of sink, or SECTION.KEY (storage.fast_put=false)",
    )
    ap.add_argument("--topic", help="reuse this already loaded topic")
    ap.add_argument("--encode-processes", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="(a)+(b) pairs; the median ratio counts")
    args = ap.parse_args()
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    if args.topic:  # reuse a topic loaded by an earlier run
        topic, ends = args.topic, await end_offsets(bootstrap, args.topic)
    else:
        topic = f"bench-trades-{uuid.uuid4().hex[:8]}"
        ends = await load(bootstrap, topic, args.records, args.symbols, args.compression)
        print(f"topic: {topic} (pass --topic {topic} to reuse it)")
    n = sum(ends.values())
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cpus, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )
    # The CPU speed of a shared VM drifts by a third between minutes: each
    # round measures (a) and (b) back to back, and the median ratio counts.
    ratios, peaks = [], []
    for round_ in range(1, args.rounds + 1):
        bare_s, bare_cpu = await bare_consumer(bootstrap, topic, n)
        sink_s, files, peak, sink_cpu = await run_sink(topic, ends, args)
        bare_rate, sink_rate = n / bare_s, n / sink_s
        ratios.append(sink_rate / bare_rate)
        peaks.append(peak)
        print(f"round {round_}/{args.rounds}:")
        print(
            f"  (a) bare aiokafka consumer: {n:,} rows in {bare_s:.1f} s = {bare_rate:,.0f} rows/s"
        )
        print(
            f"  (b) ticklake sink (max_age_s={args.max_age_s}, idle_flush_s={args.idle_flush_s}): "
            f"{n:,} rows stored in "
            f"{sink_s:.1f} s = {sink_rate:,.0f} rows/s"
        )
        print(f"  ratio (b)/(a): {ratios[-1]:.2f}")
        print(
            f"  CPU seconds: bare consumer {bare_cpu:.1f}, sink (all its processes) "
            f"{sink_cpu:.1f} = {sink_cpu / n * 1e6:.1f} us per row"
        )
        print(f"  load average: {os.getloadavg()[0]:.1f}")
        print(f"  files written: {files:,}; sink peak RSS: {peak / 2**20:,.0f} MiB")
    print(
        f"median ratio over {args.rounds} rounds: {statistics.median(ratios):.2f} "
        f"(all: {', '.join(f'{r:.2f}' for r in ratios)}); "
        f"worst peak RSS: {max(peaks) / 2**20:,.0f} MiB"
    )


if __name__ == "__main__":
    asyncio.run(main())
