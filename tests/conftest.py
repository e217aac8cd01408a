"""Shared fixtures: a real Kafka broker and a real S3 server for the tests.

Where the services come from, in this order:

1. the environment: ``KAFKA_BOOTSTRAP_SERVERS`` and ``S3_ENDPOINT_URL`` (+ ``AWS_ACCESS_KEY_ID``,
   ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``), e.g. after
   ``scripts/services up && source .services/env``;
2. testcontainers (Kafka in KRaft mode, MinIO), when a Docker engine answers;
3. otherwise the tests that need them are skipped -- or fail, with ``REQUIRE_SERVICES=1``
   (CI sets it: a CI run must never pass by skipping).

Tests under ``tests/integration`` and ``tests/e2e`` get the ``integration`` marker
(and those under ``tests/e2e`` also ``e2e``) automatically.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.helpers import (
    S3Config,
    TopicFactory,
    empty_and_delete_bucket,
    open_s3_client,
    unique_name,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

TESTS_DIR = Path(__file__).resolve().parent
INTEGRATION_DIRS = (TESTS_DIR / "integration", TESTS_DIR / "e2e")

# testcontainers' KafkaContainer drives Confluent's image scripts: keep a confluentinc/cp-kafka
# image (7.x = Kafka 3.x; it is only the fallback for laptops with Docker).
DEFAULT_KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
DEFAULT_MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"

HINT = (
    "start them with `scripts/services up && source .services/env`, "
    "or run a Docker engine for testcontainers"
)


# --------------------------------------------------------------------------- markers


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        if any(path.is_relative_to(folder) for folder in INTEGRATION_DIRS):
            item.add_marker(pytest.mark.integration)
        if path.is_relative_to(TESTS_DIR / "e2e"):
            item.add_marker(pytest.mark.e2e)


# --------------------------------------------------------------------------- discovery


def services_required() -> bool:
    """``REQUIRE_SERVICES=1``: a missing service fails the tests instead of skipping them."""
    return os.environ.get("REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes", "on"}


def _unavailable(what: str, why: str) -> NoReturn:
    message = f"{what} is not available ({why}); {HINT}"
    if services_required():
        pytest.fail(f"{message} [REQUIRE_SERVICES=1]", pytrace=False)
    pytest.skip(message)


def _tcp_reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@functools.cache
def docker_available() -> bool:
    """Whether a Docker engine answers (then testcontainers can start the services)."""
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port[,host:port...]`` of a Kafka broker (KRaft)."""
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if servers:
        host, _, port = servers.split(",")[0].strip().rpartition(":")
        if not _tcp_reachable(host.strip("[]") or "127.0.0.1", int(port or 9092)):
            _unavailable("Kafka", f"KAFKA_BOOTSTRAP_SERVERS={servers} does not accept connections")
        yield servers
        return
    if not docker_available():
        _unavailable("Kafka", "KAFKA_BOOTSTRAP_SERVERS is not set and no Docker engine answers")
    from testcontainers.community.kafka import KafkaContainer

    image = os.environ.get("TICKLAKE_KAFKA_IMAGE", DEFAULT_KAFKA_IMAGE)
    container = KafkaContainer(image=image).with_kraft()
    container.start(timeout=120)
    try:
        yield str(container.get_bootstrap_server())
    finally:
        container.stop()


@pytest.fixture(scope="session")
def s3_config() -> Iterator[S3Config]:
    """Endpoint and credentials of an S3 server that checks SigV4 signatures."""
    endpoint = os.environ.get("S3_ENDPOINT_URL", "").strip()
    region = (
        os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    ).strip()
    if endpoint:
        access_key = os.environ.get("AWS_ACCESS_KEY_ID", "")
        secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if not (access_key and secret_key):
            _unavailable(
                "S3", "S3_ENDPOINT_URL is set but AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not"
            )
        url = urlsplit(endpoint)
        port = url.port or (443 if url.scheme == "https" else 80)
        if not _tcp_reachable(url.hostname or "127.0.0.1", port):
            _unavailable("S3", f"S3_ENDPOINT_URL={endpoint} does not accept connections")
        yield S3Config(endpoint, access_key, secret_key, region)
        return
    if not docker_available():
        _unavailable("S3", "S3_ENDPOINT_URL is not set and no Docker engine answers")
    from testcontainers.community.minio import MinioContainer

    image = os.environ.get("TICKLAKE_MINIO_IMAGE", DEFAULT_MINIO_IMAGE)
    container = MinioContainer(image=image, access_key="testkey", secret_key="testsecret")
    container.start()
    try:
        conf = container.get_config()
        yield S3Config(f"http://{conf['endpoint']}", conf["access_key"], conf["secret_key"], region)
    finally:
        container.stop()


# --------------------------------------------------------------------------- per-test helpers


async def _wait_topic_ready(admin: AIOKafkaAdminClient, topic: str, partitions: int) -> None:
    """Until the metadata shows every partition of ``topic`` with a leader."""
    async with asyncio.timeout(15):
        while True:
            described = await admin.describe_topics([topic])
            parts = (
                described[0]["partitions"] if described and not described[0]["error_code"] else []
            )
            if len(parts) == partitions and all(
                p["error_code"] == 0 and p["leader"] >= 0 for p in parts
            ):
                return
            await asyncio.sleep(0.05)


@pytest.fixture
async def topic_factory(
    kafka_bootstrap: str, request: pytest.FixtureRequest
) -> AsyncIterator[TopicFactory]:
    """Creates unique topics (``N`` partitions, replication 1); deletes them at teardown."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=15000)
    await admin.start()
    created: list[str] = []

    async def create(
        partitions: int = 1,
        *,
        prefix: str | None = None,
        configs: Mapping[str, str] | None = None,
    ) -> str:
        name = unique_name(prefix or f"t-{request.node.name}", max_len=120)
        response = await admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=dict(configs or {}))]
        )
        errors = [e for e in response.to_object()["topic_errors"] if e["error_code"] != 0]
        if errors:
            raise RuntimeError(f"could not create topic {name}: {errors}")
        created.append(name)
        await _wait_topic_ready(admin, name, partitions)
        return name

    try:
        yield create
    finally:
        if created:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await admin.delete_topics(created)
        await admin.close()


@pytest.fixture
def unique_group(request: pytest.FixtureRequest) -> str:
    """A consumer-group id no other test uses."""
    return unique_name(f"g-{request.node.name}", max_len=120)


@pytest.fixture
async def s3_client(s3_config: S3Config) -> AsyncIterator[S3Client]:
    """An aioboto3 S3 client (path-style, signed with ``s3_config``'s credentials)."""
    async with open_s3_client(s3_config) as client:
        yield client


@pytest.fixture
async def bucket(s3_config: S3Config, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Name of a fresh, empty bucket; emptied and deleted (best effort) at teardown."""
    name = unique_name(f"tl-{request.node.name}")
    async with open_s3_client(s3_config) as client:
        await client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        # A fresh client: the test may have broken or closed its own, or stopped S3.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(20), open_s3_client(s3_config, max_attempts=1) as client:
                await empty_and_delete_bucket(client, name)
