"""Collector throughput: emulator (200 symbols, trades) -> one `ticklake collect` -> Kafka.

Measures, with the emulator and the collector as separate processes and a real broker:

* records/s normalised and acknowledged by Kafka for one collector process, with the
  emulator pushing trades as fast as the socket takes them (saturated), and
* exchange-to-Kafka latency p50/p99: broker append time (topic created with
  ``message.timestamp.type=LogAppendTime``) minus the trade's exchange time, both when
  saturated and at a paced rate (200 symbols x 10 trades/s = 2,000/s),

beside two in-process ceilings on the same frames:

* ccxt alone: JSON decode + ``binance.handle_message`` (what ccxt.pro does per frame),
* ccxt + ticklake: the same plus reading ccxt's trade cache, normalising and encoding.

Usage: ``source .services/env && .venv/bin/python bench/collector_throughput.py [--seconds 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO = Path(__file__).resolve().parents[1]
TICKLAKE = str(REPO / ".venv" / "bin" / "ticklake")
SYMBOLS = 200
PARTITIONS = 3
APPEND = "LogAppendTime"  # the broker stamps each record: exchange -> Kafka latency


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------- ceilings (in-process)


def make_frames(n: int) -> tuple[list[str], list[str]]:
    from worker.emulator.market import SymbolState, now_ms, symbol_names

    states = [
        SymbolState(b, q, 100.0, random.Random(i)) for i, (b, q) in enumerate(symbol_names(SYMBOLS))
    ]
    frames = []
    for i in range(n):
        st = states[i % SYMBOLS]
        data = st.trade_event(now_ms())
        frames.append(
            orjson.dumps({"stream": f"{st.market_id.lower()}@trade", "data": data}).decode()
        )
    return frames, [s.symbol for s in states]


async def ccxt_ceiling(frames: list[str], symbols: list[str]) -> tuple[float, float]:
    """Frames/s through ccxt alone, and through ccxt + ticklake's drain/normalise/encode."""
    import ccxt.pro

    from worker.bus.publish_queue import PublishQueue
    from worker.collectors.emit import Emitter
    from worker.collectors.exchange import read_markets_file
    from worker.collectors.streams import TradesStream
    from worker.config import KafkaConfig

    ex = ccxt.pro.binance({"options": {"tradesLimit": 1000}})
    markets = read_markets_file(Path(os.environ["BENCH_MARKETS"]))
    ex.set_markets(markets)
    client = ex.client("ws://127.0.0.1:1/stream/ws/0")
    loads = orjson.loads
    try:
        t0 = time.perf_counter()
        for text in frames:
            ex.handle_message(client, loads(text))
        ccxt_rate = len(frames) / (time.perf_counter() - t0)

        ex.trades = {}
        queue = PublishQueue(len(frames) + 1)
        stream = TradesStream(ex, "binance", symbols, Emitter(queue, KafkaConfig(), "bench"))
        t0 = time.perf_counter()
        for text in frames:
            msg = loads(text)
            ex.handle_message(client, msg)
            stream.drain(ex.safe_symbol(msg["data"]["s"], None, None, "spot"), 0)
        both_rate = len(frames) / (time.perf_counter() - t0)
        assert len(queue) == len(frames), (len(queue), len(frames))
    finally:
        await ex.close()
    return ccxt_rate, both_rate


# ----------------------------------------------------------------- the process benchmark


async def create_topic(bootstrap: str) -> str:
    name = f"bench-collector-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, PARTITIONS, 1, topic_configs={"message.timestamp.type": APPEND})]
        )
    finally:
        await admin.close()
    return name


async def wait_subscribed(port: int, n: int, timeout_s: float = 120) -> None:
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/_control/stats") as r:
                    if len((await r.json())["streams"]) >= n:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise TimeoutError("collector did not subscribe")


async def consume(bootstrap: str, topic: str, seconds: float) -> tuple[int, list[float]]:
    """Messages appended in a window of ``seconds`` and their exchange-to-Kafka latencies.

    Positions are pinned to the log end before the window and the window's messages are
    read afterwards, up to the end offsets, so a slow reader cannot undercount.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="latest")
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        start_ms = time.time() * 1000
        end_ms = start_ms + seconds * 1000
        await asyncio.sleep(seconds + 1.0)
        ends = await consumer.end_offsets(parts)
        n, lat = 0, []
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for msgs in batch.values():
                for m in msgs:
                    if start_ms <= m.timestamp < end_ms:
                        n += 1
                        lat.append(m.timestamp - orjson.loads(m.value)["timestamp"])
        return n, lat
    finally:
        await consumer.stop()


def config(path: Path, bootstrap: str, topic: str, port: int, markets: Path) -> None:
    ex = {
        "id": "binance",
        "symbols": [],
        "markets_file": str(markets),
        "urls": {
            "api": {
                "public": f"http://127.0.0.1:{port}/api/v3",
                "ws": {"spot": f"ws://127.0.0.1:{port}/stream/ws"},
            }
        },
        "streams": {"trades": True},
    }
    symbols = [m["symbol"] for m in orjson.loads(markets.read_bytes())]
    ex["symbols"] = symbols
    cfg = {
        "log": {"level": "warning", "format": "json"},
        "http": {"host": "127.0.0.1", "port": 0},
        "kafka": {"bootstrap_servers": bootstrap, "topics": {"trades": topic}, "linger_ms": 20},
        "collector": {"collector_id": "bench", "exchanges": [ex], "symbols_per_stream": 200},
    }
    path.write_text(yaml.safe_dump(cfg))


async def write_markets(port: int, out: Path) -> None:
    import ccxt.pro

    ex = ccxt.pro.binance({"options": {"fetchMarkets": {"types": ["spot"]}}})
    ex.urls["api"]["public"] = f"http://127.0.0.1:{port}/api/v3"
    try:
        markets = await ex.load_markets()
        await asyncio.to_thread(out.write_bytes, orjson.dumps(list(markets.values())))
    finally:
        await ex.close()


async def run_once(rate_hz: float, seconds: float, workdir: Path) -> dict[str, Any]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    port = free_port()
    emu = await spawn(
        ["emulate", "--port", str(port), "--symbols", str(SYMBOLS), "--rate-hz", str(rate_hz)],
        workdir / "emulator.log",
    )
    collector = None
    try:
        await wait_port(port)
        markets = workdir / "markets.json"
        await write_markets(port, markets)
        os.environ["BENCH_MARKETS"] = str(markets)
        topic = await create_topic(bootstrap)
        config(workdir / "collector.yaml", bootstrap, topic, port, markets)
        collector = await spawn(
            ["collect", "--config", str(workdir / "collector.yaml")], workdir / "collector.log"
        )
        await wait_subscribed(port, SYMBOLS)
        await asyncio.sleep(5)  # warm-up
        n, lat = await consume(bootstrap, topic, seconds)
    finally:
        for proc in (collector, emu):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) > 100 else [float("nan")] * 99
    return {"rate": n / seconds, "p50_ms": q[49], "p99_ms": q[98], "n": n}


async def spawn(args: list[str], log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        TICKLAKE, *args, stdout=asyncio.subprocess.DEVNULL, stderr=log.open("ab")
    )


async def wait_port(port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        w.close()
        await w.wait_closed()
        return
    raise TimeoutError("emulator did not start")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--frames", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        saturated = await run_once(0, args.seconds, work)
        paced = await run_once(10, args.seconds, work)
        frames, symbols = make_frames(args.frames)
        ccxt_rate, both_rate = await ccxt_ceiling(frames, symbols)
    print(
        f"collector, saturated : {saturated['rate']:>9,.0f} records/s acked by Kafka "
        f"(p50 {saturated['p50_ms']:.0f} ms, p99 {saturated['p99_ms']:.0f} ms, n={saturated['n']})"
    )
    print(
        f"collector, 2,000/s   : {paced['rate']:>9,.0f} records/s "
        f"(p50 {paced['p50_ms']:.1f} ms, p99 {paced['p99_ms']:.1f} ms exchange->Kafka)"
    )
    print(f"ccxt alone (ceiling) : {ccxt_rate:>9,.0f} frames/s (decode + handle_message, 1 core)")
    print(f"ccxt + normalise     : {both_rate:>9,.0f} frames/s (+ read, normalise, encode)")


if __name__ == "__main__":
    asyncio.run(main())
