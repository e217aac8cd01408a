"""Helpers shared by the integration and end-to-end tests.

The fixtures themselves live in ``tests/conftest.py``; this module holds what a
test may also want to call directly (a second S3 client with other credentials,
unique names, restarting a local service).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aioboto3
from aiobotocore.config import AioConfig

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES_SCRIPT = REPO_ROOT / "scripts" / "services"


@dataclass(frozen=True, slots=True)
class S3Config:
    """Where the S3 server for the tests is and how to sign requests for it."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


class TopicFactory(Protocol):
    """``await topic_factory(partitions=1, *, prefix=None, configs=None) -> topic name``."""

    async def __call__(
        self,
        partitions: int = 1,
        *,
        prefix: str | None = None,
        configs: Mapping[str, str] | None = None,
    ) -> str: ...


def slug(text: str, max_len: int = 24) -> str:
    """Lower-case ``text`` reduced to ``[a-z0-9-]`` (valid in topic, group and bucket names)."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:max_len].strip("-") or "x"


def unique_name(prefix: str, max_len: int = 63) -> str:
    """``<slug(prefix)>-<12 random hex chars>``, at most ``max_len`` characters.

    The default limit fits S3 bucket names (3-63 chars of ``[a-z0-9-]``), Kafka
    topic names and consumer-group ids.
    """
    suffix = uuid.uuid4().hex[:12]
    head = slug(prefix, max_len=max_len - len(suffix) - 1)
    return f"{head}-{suffix}"


@asynccontextmanager
async def open_s3_client(
    config: S3Config,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    max_attempts: int = 3,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
) -> AsyncIterator[S3Client]:
    """An aioboto3 S3 client for ``config`` (path-style addressing, short timeouts).

    ``access_key``/``secret_key`` override the credentials (e.g. to prove that a
    wrong secret is refused); ``max_attempts=1`` turns botocore's retries off.
    """
    session = aioboto3.Session()
    client_config = AioConfig(
        s3={"addressing_style": "path"},
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    async with session.client(
        "s3",
        endpoint_url=config.endpoint_url,
        aws_access_key_id=access_key if access_key is not None else config.access_key,
        aws_secret_access_key=secret_key if secret_key is not None else config.secret_key,
        region_name=config.region,
        config=client_config,
    ) as client:
        yield client


async def empty_and_delete_bucket(client: S3Client, bucket: str) -> None:
    """Delete every object (and unfinished multipart upload) in ``bucket``, then the bucket."""
    paginator = client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket):
        keys: list[ObjectIdentifierTypeDef] = [
            {"Key": obj["Key"]} for obj in page.get("Contents", []) if "Key" in obj
        ]
        if keys:
            await client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    uploads = await client.list_multipart_uploads(Bucket=bucket)
    for upload in uploads.get("Uploads", []):
        if "Key" in upload and "UploadId" in upload:
            await client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
    await client.delete_bucket(Bucket=bucket)


def client_error_code(exc: BaseException) -> tuple[str, int]:
    """``(error code, HTTP status)`` of a botocore ``ClientError``."""
    response: dict[str, Any] = getattr(exc, "response", {})
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return code, status


def local_services_running() -> bool:
    """True when the services in the environment are the ones ``scripts/services`` started.

    Tests that stop or restart a service (``stop-s3``/``start-s3``, ``stop-kafka``/
    ``start-kafka``) need this; with testcontainers or a remote service they should skip.
    """
    env_file = REPO_ROOT / ".services" / "env"
    if not env_file.is_file():
        return False
    exported = dict(
        line.removeprefix("export ").split("=", 1)
        for line in env_file.read_text().splitlines()
        if line.startswith("export ") and "=" in line
    )
    return all(
        os.environ.get(name) == exported.get(name)
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "S3_ENDPOINT_URL")
    )


def run_services(*args: str, timeout: float = 180.0) -> str:
    """Run ``scripts/services ARGS`` (e.g. ``"stop-s3"``) and return its output.

    Blocking: call it with ``await asyncio.to_thread(run_services, "stop-s3")`` or
    use :func:`arun_services` from async tests. Raises ``RuntimeError`` with the
    output when the command fails.
    """
    proc = subprocess.run(
        [str(SERVICES_SCRIPT), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/services {' '.join(args)} failed:\n{output}")
    return output


async def arun_services(*args: str, timeout: float = 180.0) -> str:
    """:func:`run_services` without blocking the event loop."""
    return await asyncio.to_thread(run_services, *args, timeout=timeout)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]],
    *,
    timeout: float = 10.0,
    interval: float = 0.1,
    message: str = "condition",
) -> None:
    """Poll the async ``predicate`` until it returns True; ``TimeoutError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not reached within {timeout}s")
        await asyncio.sleep(interval)
