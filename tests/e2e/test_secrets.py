"""No secret and no payload in any log line or /metrics output (issue 11, point 4).

Whole ``ticklake`` processes, in JSON and console log formats, with one known
secret in their configuration, against the real broker and S3 server:

* storage: the wrong secret key (S3 refuses the signature), a dead endpoint;
* Kafka: a SASL password against the plaintext broker, an unreachable broker;
* configuration: invalid files that hold the secret (a YAML error on its
  line, a value the model refuses);
* payload: a message refused as ``wrong_type`` is dead-lettered; its value
  must not appear in the log (the dead letter's header keeps it).

Every line of stderr/stdout and every /metrics scrape is searched for the secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from tests.helpers import S3Config, TopicFactory
from tests.sinkkit import trade
from worker.records import DataType, encode, message_key

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TICKLAKE = REPO / ".venv" / "bin" / "ticklake"
SECRET = "Zq8-known-secret-7Yw41"  # the one value that must never be printed
PAYLOAD = "PAYLOADMARK-93c1"  # inside a refused message's value
FORMATS = ("json", "console")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:  # local
        return str(resp.read().decode())


async def run_sink(
    config: dict[str, Any], workdir: Path, name: str, run_s: float
) -> tuple[str, str]:
    """Run ``ticklake sink`` for ``run_s`` (or until it exits); its output and a scrape."""
    port = free_port()
    config = {**config, "http": {"host": "127.0.0.1", "port": port}}
    config["sink"] = {**config["sink"], "group_id": f"{config['sink']['group_id']}-{name}"}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    out = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [str(TICKLAKE), "sink", "--config", str(path)], stdout=out, stderr=subprocess.STDOUT
    )
    metrics = ""
    try:
        for _ in range(int(run_s * 10)):
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
            with contextlib.suppress(OSError):
                metrics = scrape(port)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            for _ in range(400):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        out.close()
    return (workdir / f"{name}.log").read_text(errors="replace"), metrics


def base_config(
    kafka: str, s3: S3Config, topic: str, dlq: str, bucket: str, fmt: str
) -> dict[str, Any]:
    return {
        "log": {"level": "debug", "format": fmt},
        "kafka": {
            "bootstrap_servers": kafka,
            "topics": {"trades": topic},
            "dead_letter_topic": dlq,
            "request_timeout_ms": 5_000,
        },
        "storage": {
            "url": f"s3://{bucket}",
            "endpoint_url": s3.endpoint_url,
            "region": s3.region,
            "access_key_id": s3.access_key,
            "secret_access_key": s3.secret_key,
            "max_attempts": 2,
            "backoff_base_s": 0.1,
            "backoff_max_s": 0.5,
            "connect_timeout_s": 1.0,
            "read_timeout_s": 3.0,
        },
        "sink": {
            "group_id": f"g-secrets-{fmt}-{os.getpid()}",
            "data_types": ["trades"],
            "max_age_s": 1.0,
            "encode_processes": 0,
            "session_timeout_ms": 6_000,
            "heartbeat_interval_ms": 1_000,
            "shutdown_deadline_s": 10,
            "retry_backoff_max_s": 1.0,
        },
    }


def with_(config: dict[str, Any], section: str, **values: Any) -> dict[str, Any]:
    return {**config, section: {**config[section], **values}}


async def produce(kafka: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        good = trade(1)
        await producer.send_and_wait(
            topic, encode(DataType.TRADES, good), key=message_key("binance", good["symbol"])
        )
        bad = json.dumps({**json.loads(encode(DataType.TRADES, trade(2))), "price": PAYLOAD})
        await producer.send_and_wait(topic, bad.encode(), key=message_key("binance", "BTC/USDT"))
    finally:
        await producer.stop()


def assert_clean(text: str, where: str) -> None:
    assert SECRET not in text, f"the secret is in {where}"
    assert PAYLOAD not in text, f"a refused message's payload is in {where}"


@pytest.mark.parametrize("fmt", FORMATS)
async def test_failures_put_no_secret_in_logs_or_metrics(
    fmt: str,
    kafka_bootstrap: str,
    s3_config: S3Config,
    topic_factory: TopicFactory,
    bucket: str,
    tmp_path: Path,
) -> None:
    topic, dlq = await topic_factory(1), await topic_factory(1, prefix="dlq")
    await produce(kafka_bootstrap, topic)
    base = base_config(kafka_bootstrap, s3_config, topic, dlq, bucket, fmt)
    dead = f"127.0.0.1:{free_port()}"
    sasl = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}
    scenarios = {
        # a refused message, dead-lettered: the payload must not be logged
        "dead_letter": with_(base, "kafka", sasl_password=SECRET),
        "wrong_secret": with_(base, "storage", secret_access_key=SECRET),
        "dead_endpoint": with_(
            base, "storage", secret_access_key=SECRET, endpoint_url=f"http://{dead}"
        ),
        "sasl_on_plaintext": with_(base, "kafka", sasl_username="u", sasl_password=SECRET, **sasl),
        "no_broker": with_(
            with_(base, "kafka", bootstrap_servers=dead), "storage", secret_access_key=SECRET
        ),
    }
    # The dead-letter scenario keeps the right S3 key: its secret is the (unused) SASL one.
    results = await asyncio.gather(
        *(run_sink(cfg, tmp_path, name, 15.0) for name, cfg in scenarios.items())
    )
    for name, (log, metrics) in zip(scenarios, results, strict=True):
        assert log.strip(), f"{name}: no output at all"
        assert_clean(log, f"the {name} log ({fmt})")
        assert_clean(metrics, f"the {name} /metrics ({fmt})")
    logs = dict(zip(scenarios, (r[0] for r in results), strict=True))
    # The failures were provoked, and logged (the test is not vacuous).
    assert "dead_letter" in logs["dead_letter"]
    assert "wrong_type" in logs["dead_letter"]
    assert "SignatureDoesNotMatch" in logs["wrong_secret"] or "403" in logs["wrong_secret"]
    assert "broker_unreachable" in logs["no_broker"]
    assert results[0][1], "no /metrics scrape succeeded"


@pytest.mark.parametrize(
    "text",
    [
        'storage:\n  secret_access_key: "{s}\n',
        "storage:\n  secret_access_key: !{s}\n",
        "kafka:\n  sasl_password: {s}\n  security_protocol: NOPE\n",
        "storage:\n  secret_access_key: {s}\n  url: http://{s}@x\n",
    ],
)
def test_invalid_configurations_print_no_secret(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text.format(s=SECRET))
    for command in ("check-config", "sink"):
        out = subprocess.run(
            [str(TICKLAKE), command, "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 2, out.stderr
        assert "configuration error" in out.stderr
        assert SECRET not in out.stdout + out.stderr
