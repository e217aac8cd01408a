"""S3 backend (aioboto3): DigitalOcean Spaces, SeaweedFS, MinIO, AWS.

botocore's own retries are off: every call goes through
:func:`~worker.storage.base.with_retries`, driven by the ``retriable``
attribute of the error it raised. Objects above ``multipart_threshold_bytes``
go up in parts; a failed part aborts the whole upload before the error
propagates (no orphaned parts). Single-request PUTs -- every file, sidecar
and state object -- take a shorter road by default (:class:`SignedPut`).
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import aioboto3
import aiohttp
import yarl
from aiobotocore.config import AioConfig
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from botocore.httpsession import get_cert_path
from botocore.utils import percent_encode

from worker.logging import register_secret, reveal
from worker.storage.base import (
    Blob,
    ObjectNotFoundError,
    PermanentStorageError,
    PreconditionFailedError,
    RetryPolicy,
    StorageError,
    TransientStorageError,
    with_retries,
)

if TYPE_CHECKING:
    from aiobotocore.credentials import AioCredentials
    from types_aiobotocore_s3 import S3Client

    from worker.config import StorageConfig

T = TypeVar("T")
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "Throttling",
        "RequestTimeTooSkewed",
        "OperationAborted",
    }
)


def classify(operation: str, key: str, exc: BaseException) -> StorageError:
    """Map a botocore/aiohttp exception onto the storage error hierarchy."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return classify_response(operation, key, code, status)
    # Connection refused/reset, timeouts, closed connections: try again.
    return TransientStorageError(operation, key, error_text(exc))


# A URL's query (a presigned URL's X-Amz-Credential and X-Amz-Signature).
_URL_QUERY = re.compile(r"(://[^\s\"'?]*)\?[^\s\"']*")


def error_text(exc: BaseException) -> str:
    """What a transport error says, for messages and logs: never a request's content.

    botocore's parameter errors quote the parameter values (object bodies);
    URLs lose their query string (presigned signatures and credentials).
    """
    if isinstance(exc, ParamValidationError):
        return type(exc).__name__
    return _URL_QUERY.sub(r"\1?...", f"{type(exc).__name__}: {exc}")[:300]


def classify_response(operation: str, key: str, code: str, status: int) -> StorageError:
    """An S3 error response (its ``<Code>`` and HTTP status) as a storage error."""
    if code in {"PreconditionFailed", "ConditionalRequestConflict"} or status == 412:
        return PreconditionFailedError(operation, key, code)
    if code in {"NoSuchKey", "NotFound", "404"} or status == 404:
        return ObjectNotFoundError(operation, key, code)
    if code in _TRANSIENT_CODES or status >= 500 or status == 429:
        return TransientStorageError(operation, key, f"{code} ({status})")
    return PermanentStorageError(operation, key, f"{code} ({status})")


# S3's endpoint rule set declares these parameters but none of its rules reads
# them. botocore passes them anyway, so its endpoint cache, keyed on every
# parameter, misses on each new object key and walks the whole rule set again:
# ~0.5 ms of CPU per request on our benchmark machine (botocore#3528; fixed
# upstream the same way by botocore#3692, after the botocore aioboto3 15.5
# pins). tests/unit/test_storage_s3.py fails if a rule ever starts to use them.
UNUSED_ENDPOINT_PARAMS = frozenset({"Key", "Prefix", "CopySource"})


def skip_unused_endpoint_params(client: Any) -> None:
    """Leave :data:`UNUSED_ENDPOINT_PARAMS` out of ``client``'s endpoint resolution."""
    resolver = getattr(client, "_ruleset_resolver", None)
    params = getattr(resolver, "_param_definitions", None)
    if isinstance(params, dict):
        kept = {k: v for k, v in params.items() if k not in UNUSED_ENDPOINT_PARAMS}
        resolver._param_definitions = kept  # type: ignore[union-attr]  # checked above


# put_object's condition parameters, as the HTTP headers they become.
_CONDITION_HEADERS = {"IfMatch": "If-Match", "IfNoneMatch": "If-None-Match"}
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")


class _MaskedCredentials(ReadOnlyCredentials):
    """botocore's frozen credentials, with a ``repr`` that shows neither key.

    Built for each request (the credential chain may refresh); its keys are
    registered with the log masking (worker/logging.py) on the way.
    """

    __slots__ = ()

    @classmethod
    async def of(cls, credentials: AioCredentials) -> _MaskedCredentials:
        frozen = await credentials.get_frozen_credentials()
        register_secret(frozen.access_key)
        register_secret(frozen.secret_key)
        register_secret(frozen.token)
        return cls(*frozen)

    def __repr__(self) -> str:
        return "ReadOnlyCredentials(access_key='**********', secret_key='**********', token=...)"


class SignedPut:
    """PutObject as one signed aiohttp request, without botocore's request pipeline.

    A PUT through the client costs ~3 ms of CPU (event hooks, parameter
    validation, endpoint rules, user-agent rebuild, signing, response
    parsing); the signature and the HTTP exchange are ~1 ms of it. The sink
    puts two objects per file from its one event-loop thread, so at ~100
    files/s that is most of a core (docs/benchmarks.md). This keeps
    botocore's own SigV4 signer and credential chain (refreshed per request)
    and the client's resolved endpoint, path-style like the client; the body
    is signed (``x-amz-content-sha256``), so the server checks it arrived whole.
    ``storage.fast_put: false`` sends every PUT through the client instead.
    """

    def __init__(
        self, endpoint_url: str, region: str, credentials: AioCredentials, cfg: StorageConfig
    ) -> None:
        self._base = endpoint_url.rstrip("/")
        self._region = region
        self._credentials = credentials
        ssl_context: ssl.SSLContext | bool = False
        if self._base.startswith("https://"):  # the CA bundle botocore would use
            ssl_context = ssl.create_default_context(
                cafile=os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True)
            )
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64, ssl=ssl_context),
            timeout=aiohttp.ClientTimeout(
                sock_connect=cfg.connect_timeout_s, sock_read=cfg.read_timeout_s
            ),
            # HTTP(S)_PROXY, like botocore; only when set: it costs a thread hop per request.
            trust_env=any(os.environ.get(v) for v in _PROXY_VARIABLES),
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        await self._http.close()

    async def put(self, bucket: str, key: str, data: bytes, headers: dict[str, str]) -> str:
        """Store ``data`` at ``bucket/key``; its ETag. Raises :class:`StorageError`."""
        url = f"{self._base}/{percent_encode(bucket)}/{percent_encode(key, safe='/~')}"
        request = AWSRequest("PUT", url, data=data, headers=headers)
        credentials = await _MaskedCredentials.of(self._credentials)
        S3SigV4Auth(credentials, "s3", self._region).add_auth(request)
        async with self._http.put(
            yarl.URL(url, encoded=True),
            data=data,
            headers=dict(request.headers.items()),
            allow_redirects=False,  # a redirect (wrong region) is an error, as with the client
        ) as resp:
            body = await resp.read()
            if resp.status == 200:
                return resp.headers.get("ETag", "").strip('"')
        found = _ERROR_CODE.search(body)
        code = found.group(1).decode(errors="replace") if found else str(resp.status)
        raise classify_response("put", key, code, resp.status)


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``)."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3Store:
    """A :class:`~worker.storage.base.Store` over one bucket (and optional prefix)."""

    def __init__(self, cfg: StorageConfig) -> None:
        self.url = cfg.url
        self.bucket, self.prefix = split_url(cfg.url)
        self._cfg = cfg
        self._policy = RetryPolicy(cfg.max_attempts, cfg.backoff_base_s, cfg.backoff_max_s)
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None
        self._signed_put: SignedPut | None = None

    async def start(self) -> None:
        cfg = self._cfg
        session = aioboto3.Session(
            aws_access_key_id=reveal(cfg.access_key_id) if cfg.access_key_id else None,
            aws_secret_access_key=reveal(cfg.secret_access_key) if cfg.secret_access_key else None,
            region_name=cfg.region or "us-east-1",
        )
        config = AioConfig(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=cfg.connect_timeout_s,
            read_timeout=cfg.read_timeout_s,
            max_pool_connections=64,
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = session.client("s3", endpoint_url=cfg.endpoint_url, config=config)
        self._client = await self._stack.enter_async_context(client)
        skip_unused_endpoint_params(self._client)
        credentials = await session.get_credentials()  # type: ignore[misc]  # a coroutine; stubs say not
        if credentials is not None:  # from the environment chain too: mask them in logs
            await _MaskedCredentials.of(credentials)
        if cfg.fast_put and credentials is not None:  # none: anonymous, the client's way
            meta = self._client.meta
            fast = SignedPut(meta.endpoint_url, meta.region_name, credentials, cfg)
            self._stack.push_async_callback(fast.close)
            self._signed_put = fast

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None
        self._signed_put = None

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise RuntimeError("S3Store used before start()")
        return self._client

    async def _call(self, operation: str, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        async def once() -> T:
            try:
                return await fn()
            except StorageError:
                raise
            except (ClientError, BotoCoreError, OSError, TimeoutError) as exc:
                raise classify(operation, key, exc) from exc
            except Exception as exc:  # aiohttp and friends: transport trouble
                if type(exc).__module__.startswith(("aiohttp", "aiobotocore", "botocore")):
                    raise classify(operation, key, exc) from exc
                raise

        return await with_retries(operation, once, self._policy)

    async def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        full = self.prefix + key
        cond: dict[str, Any] = {}
        if if_match is not None:
            cond["IfMatch"] = if_match
        if if_none_match:
            cond["IfNoneMatch"] = "*"
        if len(data) > self._cfg.multipart_threshold_bytes and not cond:
            return await self._call("put", key, lambda: self._multipart(full, data))

        fast = self._signed_put
        if fast is not None:
            headers = {_CONDITION_HEADERS[name]: value for name, value in cond.items()}
            return await self._call("put", key, lambda: fast.put(self.bucket, full, data, headers))

        async def put_once() -> str:
            resp = await self.client.put_object(Bucket=self.bucket, Key=full, Body=data, **cond)
            return str(resp.get("ETag", "")).strip('"')

        return await self._call("put", key, put_once)

    async def _multipart(self, full: str, data: bytes) -> str:
        client, chunk = self.client, self._cfg.multipart_chunk_bytes
        upload = await client.create_multipart_upload(Bucket=self.bucket, Key=full)
        upload_id = upload["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, len(data), chunk), start=1):
                resp = await client.upload_part(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data[start : start + chunk],
                )
                parts.append({"ETag": resp["ETag"], "PartNumber": number})
            done = await client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=full,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]  # ETag/PartNumber only
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id
                )
            raise
        return str(done.get("ETag", "")).strip('"')

    async def get(self, key: str) -> Blob:
        async def get_once() -> Blob:
            resp = await self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            async with resp["Body"] as body:
                data = await body.read()
            return Blob(data, str(resp.get("ETag", "")).strip('"'))

        return await self._call("get", key, get_once)

    async def list(self, prefix: str = "") -> list[str]:
        async def list_once() -> list[str]:
            keys: list[str] = []
            paginator = self.client.get_paginator("list_objects_v2")
            pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
            async for page in pages:
                keys.extend(o["Key"][len(self.prefix) :] for o in page.get("Contents", []))
            return sorted(keys)

        return await self._call("list", prefix, list_once)

    async def delete(self, key: str) -> None:
        async def delete_once() -> None:
            await self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

        await self._call("delete", key, delete_once)
