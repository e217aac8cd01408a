"""The storage backends against a real S3 server and a local folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import S3Config
from worker.config import StorageConfig
from worker.storage import (
    Blob,
    LocalStore,
    ObjectNotFoundError,
    PermanentStorageError,
    PreconditionFailedError,
    TransientStorageError,
)
from worker.storage.s3 import S3Store


def s3_store(s3: S3Config, bucket: str, **kw: object) -> S3Store:
    return S3Store(
        StorageConfig(
            url=f"s3://{bucket}/some/prefix",
            endpoint_url=s3.endpoint_url,
            region=s3.region,
            access_key_id=s3.access_key,  # type: ignore[arg-type]
            secret_access_key=s3.secret_key,  # type: ignore[arg-type]
            max_attempts=2,
            backoff_base_s=0.01,
            **kw,  # type: ignore[arg-type]
        )
    )


@pytest.fixture(params=[True, False], ids=["signed-put", "client-put"])
def fast_put(request: pytest.FixtureRequest) -> bool:
    """Single PUTs as one signed aiohttp request (the default), or through the botocore client."""
    return bool(request.param)


async def test_s3_put_get_list_delete_and_conditions(
    s3_config: S3Config, bucket: str, fast_put: bool
) -> None:
    store = s3_store(s3_config, bucket, fast_put=fast_put)
    await store.start()
    try:
        etag = await store.put("a/b.json", b"1", if_none_match=True)
        with pytest.raises(PreconditionFailedError):
            await store.put("a/b.json", b"2", if_none_match=True)
        with pytest.raises(PreconditionFailedError):
            await store.put("a/b.json", b"2", if_match="0" * 32)
        etag2 = await store.put("a/b.json", b"2", if_match=etag)
        assert (await store.get("a/b.json")).data == b"2"
        assert (await store.get("a/b.json")).etag == etag2
        await store.put("a/c.json", b"3")
        assert await store.list("a/") == ["a/b.json", "a/c.json"]  # relative to the prefix
        await store.delete("a/b.json")
        await store.delete("a/missing.json")  # absent is fine
        with pytest.raises(ObjectNotFoundError):
            await store.get("a/b.json")
        client_keys = await store.client.list_objects_v2(Bucket=bucket)
        assert {o["Key"] for o in client_keys["Contents"]} == {"some/prefix/a/c.json"}
    finally:
        await store.close()


async def test_s3_keys_that_need_escaping_round_trip(
    s3_config: S3Config, bucket: str, fast_put: bool
) -> None:
    """Hive paths (``=``), spaces, ``+``, ``%``, ``~`` and non-ASCII: signed and stored as named."""
    store = s3_store(s3_config, bucket, fast_put=fast_put)
    await store.start()
    keys = [
        "exchange=binance/data_type=trades/symbol=BTC_USDT/date=2025-11-24/a.parquet",
        "odd/a b+c~d%e&f;g,h@i$j'k(l)!m*.json",
        "unicode/Zürich-€.json",
    ]
    try:
        for i, key in enumerate(keys):
            etag = await store.put(key, f"body {i}".encode())
            assert (await store.get(key)) == Blob(f"body {i}".encode(), etag)
        assert await store.list() == sorted(keys)
        listed = await store.client.list_objects_v2(Bucket=bucket)
        assert sorted(o["Key"] for o in listed["Contents"]) == sorted(
            f"some/prefix/{k}" for k in keys
        )
    finally:
        await store.close()


async def test_s3_multipart_above_threshold(s3_config: S3Config, bucket: str) -> None:
    store = s3_store(
        s3_config, bucket, multipart_threshold_bytes=5 * 2**20, multipart_chunk_bytes=5 * 2**20
    )
    await store.start()
    try:
        data = os.urandom(12 * 2**20)
        await store.put("big.bin", data)
        assert (await store.get("big.bin")).data == data
        # A failed part aborts the whole upload: nothing half-written stays behind.
        uploads = await store.client.list_multipart_uploads(Bucket=bucket)
        assert not uploads.get("Uploads")
    finally:
        await store.close()


async def test_s3_errors_carry_their_retry_policy(
    s3_config: S3Config, bucket: str, fast_put: bool
) -> None:
    bad = S3Store(
        StorageConfig(
            url=f"s3://{bucket}",
            endpoint_url=s3_config.endpoint_url,
            access_key_id="testkey",  # type: ignore[arg-type]
            secret_access_key="wrong-secret",  # type: ignore[arg-type]
            max_attempts=2,
            backoff_base_s=0.01,
            fast_put=fast_put,
        )
    )
    await bad.start()
    try:
        with pytest.raises(PermanentStorageError, match=r"SignatureDoesNotMatch|AccessDenied"):
            await bad.put("x", b"1")
    finally:
        await bad.close()
    down = S3Store(
        StorageConfig(
            url=f"s3://{bucket}",
            endpoint_url="http://127.0.0.1:9",
            max_attempts=2,
            backoff_base_s=0.01,
            connect_timeout_s=0.5,
            fast_put=fast_put,
        )
    )
    await down.start()
    try:
        with pytest.raises(TransientStorageError):
            await down.put("x", b"1")
    finally:
        await down.close()


async def test_local_store_same_contract(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    etag = await store.put("2025/x.parquet", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailedError):
        await store.put("2025/x.parquet", b"2", if_none_match=True)
    await store.put("2025/x.parquet", b"2", if_match=etag)
    assert (await store.get("2025/x.parquet")).data == b"2"
    assert await store.list() == ["2025/x.parquet"]
    assert not [p for p in tmp_path.rglob("*") if "tmp-ticklake" in p.name]  # renamed into place
    with pytest.raises(PermanentStorageError):
        await store.put("../escape", b"x")
    await store.delete("2025/x.parquet")
    with pytest.raises(ObjectNotFoundError):
        await store.get("2025/x.parquet")
