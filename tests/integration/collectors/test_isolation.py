"""One broken exchange or symbol never stops the others; the HTTP endpoints answer."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp

from tests.integration.collectors.conftest import Harness, read_topic
from worker.collectors.app import run_collect
from worker.records import DataType


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_dead_exchange_and_unknown_symbol_do_not_stop_the_rest(harness: Harness) -> None:
    settings = harness.settings({"trades": True, "ticker": True})
    good = settings.collector.exchanges[0]
    good = good.model_copy(update={"symbols": [*good.symbols, "NOPE/USDT"]})
    dead_urls: dict[str, Any] = {
        "api": {"public": "http://127.0.0.1:1/api/v3", "ws": {"spot": "ws://127.0.0.1:1/stream/ws"}}
    }
    dead = good.model_copy(update={"id": "binanceus", "urls": dead_urls})
    port = free_port()
    settings = settings.model_copy(
        update={
            "collector": settings.collector.model_copy(update={"exchanges": [dead, good]}),
            "http": settings.http.model_copy(update={"port": port}),
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_collect(settings, stop))
    try:
        await asyncio.sleep(3)
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 200
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
        assert (
            'ticklake_collector_records_published_total{data_type="trades",exchange="binance"}'
            in text
        )
        assert "ticklake_collector_seconds_since_last_message" in text
        assert "ticklake_collector_queue_depth_records" in text
        await harness.settle(1.0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

    trades = [r for _, r in await read_topic(harness.bootstrap, harness.topics[DataType.TRADES])]
    assert {r["symbol"] for r in trades} == set(harness.emulator.symbols)
    assert len(await read_topic(harness.bootstrap, harness.topics[DataType.TICKER])) > 0
