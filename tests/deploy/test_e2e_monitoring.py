"""Whole processes: what a running collector and sink expose, and a real Prometheus alerting.

One stack per module: ``ticklake emulate`` (the Binance-protocol emulator),
``ticklake collect`` publishing to Kafka, ``ticklake sink`` writing to S3 --
each a subprocess with its own config file -- and Debian's Prometheus
scraping both with deploy/prometheus/alerts.yml loaded, evaluating every
second.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.deploy.conftest import ALERTS, REPO_ROOT
from tests.deploy.promql import metric_names, scraped_sample_names
from tests.deploy.test_alerts import alert_rules
from tests.deploy.test_dashboards import QUERIES, expand
from tests.helpers import S3Config, empty_and_delete_bucket, open_s3_client, unique_name
from worker.records import DataType

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def http_post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, procs: list[Proc]) -> T:
    """Poll ``probe`` until it returns something truthy; fail with the processes' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            proc.assert_running()
        if result := probe():
            return result
        time.sleep(0.5)
    logs = "\n".join(p.tail() for p in procs)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


@dataclass
class Proc:
    """A subprocess in its own session, logging to a file; stopped with SIGTERM."""

    name: str
    cmd: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                self.cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        return self

    def assert_running(self) -> None:
        assert self.popen is not None
        if self.popen.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.popen.returncode}\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


@dataclass
class Stack:
    emulator_url: str
    collector_url: str
    sink_url: str
    prometheus_url: str
    procs: list[Proc]

    def prom(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = http_get(f"{self.prometheus_url}{path}{query}")
        assert status == 200, body
        return json.loads(body)["data"]

    def prom_query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.prom("/api/v1/query", query=expr)["result"]
        return result

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [
            a for a in self.prom("/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == name
        ]


# --------------------------------------------------------------------------- set-up


async def _create_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        names = [f"{prefix}.{dt.value}" for dt in DataType] + [f"{prefix}.dead_letter"]
        await admin.create_topics([NewTopic(n, 2, 1) for n in names])
    finally:
        await admin.close()


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        async with asyncio.timeout(15):
            await admin.delete_topics([f"{prefix}.{dt.value}" for dt in DataType])
    finally:
        await admin.close()


async def _create_bucket(s3: S3Config, name: str) -> None:
    async with open_s3_client(s3) as client:
        await client.create_bucket(Bucket=name)


async def _delete_bucket(s3: S3Config, name: str) -> None:
    async with asyncio.timeout(20), open_s3_client(s3, max_attempts=1) as client:
        await empty_and_delete_bucket(client, name)


def _ready(url: str) -> bool:
    return http_get(f"{url}/readyz")[0] == 200


def _write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _start_emulator(tmp: Path) -> tuple[Proc, str, list[str]]:
    port = free_port()
    emulator = Proc(
        "emulator",
        [sys.executable, "-m", "worker", "emulate", "--port", str(port),
         "--symbols", "2", "--rate-hz", "20", "--seed", "5"],
        tmp / "emulator.log",
    ).start()  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def listening() -> str | None:
        text = emulator.log.read_text(encoding="utf-8") if emulator.log.exists() else ""
        for line in text.splitlines():
            if line.startswith("emulator listening") and "symbols=" in line:
                return line.split("symbols=", 1)[1].strip()
        return None

    symbols = wait_for("the emulator", listening, 30, [emulator])
    return emulator, url, symbols.split(",")


def _prometheus_config(tmp: Path, collector_port: int, sink_port: int) -> Path:
    return _write_yaml(
        tmp / "prometheus.yml",
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": "ticklake-collector",
                    "static_configs": [{"targets": [f"127.0.0.1:{collector_port}"]}],
                },
                {
                    "job_name": "ticklake-sink",
                    "static_configs": [{"targets": [f"127.0.0.1:{sink_port}"]}],
                },
            ],
        },
    )


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str,
    s3_config: S3Config,
    prometheus_bin: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("monitoring")
    prefix = unique_name("tl-mon", max_len=40)
    bucket = unique_name("tl-mon")
    asyncio.run(_create_topics(kafka_bootstrap, prefix))
    asyncio.run(_create_bucket(s3_config, bucket))
    procs: list[Proc] = []
    try:
        emulator, emulator_url, symbols = _start_emulator(tmp)
        procs.append(emulator)
        collector_port, sink_port, prom_port = free_port(), free_port(), free_port()
        kafka = {"bootstrap_servers": kafka_bootstrap, "topic_prefix": prefix, "linger_ms": 5}
        collector_cfg = _write_yaml(
            tmp / "collector.yaml",
            {
                "log": {"level": "info", "format": "json"},
                "http": {"host": "127.0.0.1", "port": collector_port},
                "kafka": kafka,
                "collector": {
                    "collector_id": "e2e-collector",
                    # Long enough that the watchdog does not redial during the stall.
                    "stale_after_s": 600,
                    "exchanges": [
                        {
                            "id": "binance",
                            "symbols": symbols,
                            "streams": {"trades": True, "orderbook": {"depth": 5}},
                            "urls": {
                                "api": {
                                    "public": f"{emulator_url}/api/v3",
                                    "ws": {
                                        "spot": emulator_url.replace("http", "ws") + "/stream/ws"
                                    },
                                }
                            },
                            "options": {"fetchMarkets": {"types": ["spot"]}},
                        }
                    ],
                },
            },
        )
        sink_cfg = _write_yaml(
            tmp / "sink.yaml",
            {
                "log": {"level": "info", "format": "json"},
                "http": {"host": "127.0.0.1", "port": sink_port},
                "kafka": kafka,
                "storage": {
                    "url": f"s3://{bucket}/lake",
                    "endpoint_url": s3_config.endpoint_url,
                    "region": s3_config.region,
                },
                "sink": {"group_id": f"{prefix}-sink", "max_age_s": 2},
            },
        )
        s3_env = {
            "AWS_ACCESS_KEY_ID": s3_config.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_config.secret_key,
        }
        worker = [sys.executable, "-m", "worker"]
        procs.append(
            Proc("collector", [*worker, "collect", "--config", str(collector_cfg)],
                 tmp / "collector.log").start()
        )  # fmt: skip
        procs.append(
            Proc("sink", [*worker, "sink", "--config", str(sink_cfg)], tmp / "sink.log",
                 env=s3_env).start()
        )  # fmt: skip
        collector_url = f"http://127.0.0.1:{collector_port}"
        sink_url = f"http://127.0.0.1:{sink_port}"
        for name, url in (("collector", collector_url), ("sink", sink_url)):
            wait_for(f"{name} /readyz", functools.partial(_ready, url), 60, procs)
        prom_cfg = _prometheus_config(tmp, collector_port, sink_port)
        procs.append(
            Proc(
                "prometheus",
                [prometheus_bin, f"--config.file={prom_cfg}",
                 f"--storage.tsdb.path={tmp / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                tmp / "prometheus.log",
            ).start()
        )  # fmt: skip
        stack = Stack(emulator_url, collector_url, sink_url, f"http://127.0.0.1:{prom_port}", procs)
        wait_for("prometheus", lambda: http_get(f"{stack.prometheus_url}/-/ready")[0] == 200,
                 30, procs)  # fmt: skip
        yield stack
    finally:
        for proc in reversed(procs):
            proc.stop()
        with contextlib.suppress(Exception):
            asyncio.run(_delete_topics(kafka_bootstrap, prefix))
        with contextlib.suppress(Exception):
            asyncio.run(_delete_bucket(s3_config, bucket))


# --------------------------------------------------------------------------- tests


def test_dashboards_and_alerts_query_metrics_the_processes_expose(stack: Stack) -> None:
    def trades_counted() -> str | None:
        _, text = http_get(f"{stack.collector_url}/metrics")
        return text if "ticklake_collector_messages_received_total{" in text else None

    collector = wait_for("collector messages", trades_counted, 60, stack.procs)
    _, sink = http_get(f"{stack.sink_url}/metrics")
    exposed = scraped_sample_names([collector, sink]) | {"up"}

    for where, expr in QUERIES:
        missing = metric_names(expand(expr)) - exposed
        assert not missing, f"dashboard panel {where} queries unexposed metrics {missing}"
    for rule in alert_rules():
        missing = metric_names(rule["expr"]) - exposed
        assert not missing, f"alert {rule['alert']} queries unexposed metrics {missing}"


def test_prometheus_raises_stale_feed_when_the_exchange_stalls(stack: Stack) -> None:
    procs = stack.procs

    def scraped() -> bool:
        up = {r["metric"]["job"]: r["value"][1] for r in stack.prom_query("up")}
        return up == {"ticklake-collector": "1", "ticklake-sink": "1"}

    wait_for("both targets up in Prometheus", scraped, 60, procs)
    trades = 'ticklake_collector_last_message_timestamp_seconds{data_type="trades"}'
    wait_for("trades in Prometheus", lambda: stack.prom_query(trades), 60, procs)
    # The rules are loaded and, with data flowing, quiet.
    rules = stack.prom("/api/v1/rules")["groups"]
    loaded = {r["name"] for g in rules for r in g["rules"]}
    assert loaded == {r["alert"] for r in alert_rules()}
    assert stack.alerts("TicklakeStaleFeed") == []
    # Prometheus starts once both answer /readyz, so no scrape should ever have failed.
    assert [r["value"][1] for r in stack.prom_query("min_over_time(up[5m])")] == ["1", "1"]
    wait_for("no TicklakeWorkerDown", lambda: stack.alerts("TicklakeWorkerDown") == [], 10, procs)

    hit = http_post_json(f"{stack.emulator_url}/_control/fault", {"kind": "stall", "seconds": 600})
    assert hit["connections"] >= 1

    def stale_trades() -> list[dict[str, Any]]:
        return [
            a
            for a in stack.alerts("TicklakeStaleFeed")
            if a["labels"].get("exchange") == "binance"
            and a["labels"].get("data_type") == "trades"
            and a["state"] in {"pending", "firing"}
        ]

    # Threshold 60 s of silence, then pending (for: 2m) -- evaluated every second.
    alerts = wait_for("TicklakeStaleFeed pending or firing", stale_trades, 150, procs)
    alert = alerts[0]
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["summary"] == "ticklake binance trades feed is stale"
    assert float(alert["value"]) > 60
    assert alert["annotations"]["runbook_url"].endswith("#ticklakestalefeed")
    # The collector itself is still scraped: only the feed is stale.
    assert stack.alerts("TicklakeWorkerDown") == []
