"""The lake's root as a pyarrow filesystem: S3-compatible stores or a local folder.

Reads go through pyarrow's C++ S3 client (DuckDB's ``httpfs`` extension is
not needed), configured from the same :class:`~worker.config.StorageConfig`
the sink writes with: endpoint, region, credentials (or the standard AWS
chain when unset), timeouts, attempts. Keys are relative to the lake root
(``s3://bucket/prefix`` or the folder), as in :mod:`worker.storage`.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from worker.config import StorageConfig
from worker.lake.errors import LakeAccessError, LakeError, LakeNotFoundError
from worker.storage.s3 import split_url

_ACCESS = re.compile(
    r"ACCESS_DENIED|SIGNATURE_DOES_NOT_MATCH|INVALID_ACCESS_KEY|InvalidAccessKeyId|"
    r"AccessDenied|SignatureDoesNotMatch|Forbidden|403"
)
_NO_BUCKET = re.compile(r"NO_SUCH_BUCKET|NoSuchBucket|bucket does not exist", re.IGNORECASE)
_UNREACHABLE = re.compile(r"Couldn't connect|connection|timed? ?out|resolve", re.IGNORECASE)


def normalise_url(url: str) -> str:
    """``s3://…`` and ``file://…`` as they are; a plain path as ``file://<absolute path>``."""
    if url.startswith(("s3://", "file://")):
        return url
    if "://" in url:
        raise LakeError(
            f"unsupported lake URL {url!r}: use s3://bucket[/prefix], file:// or a path"
        )
    return f"file://{Path(url).expanduser().resolve()}"


def storage_error(exc: BaseException, what: str, url: str) -> LakeError:
    """A pyarrow/OS error from the store as a :class:`LakeError` with a plain message."""
    text = str(exc)
    if _NO_BUCKET.search(text):
        return LakeNotFoundError(f"{url}: the bucket does not exist ({what})")
    if _ACCESS.search(text):
        return LakeAccessError(
            f"{url}: access denied while {what}: check storage.access_key_id / "
            "secret_access_key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and region"
        )
    if isinstance(exc, FileNotFoundError):
        return LakeNotFoundError(f"{url}: not found while {what}")
    if _UNREACHABLE.search(text):
        return LakeAccessError(f"{url}: the store is unreachable while {what}: {text[:200]}")
    return LakeError(f"{url}: storage error while {what}: {text[:300]}")


def open_filesystem(cfg: StorageConfig) -> pafs.FileSystem:
    """The lake root as a filesystem (keys relative to it); checks that it exists."""
    if cfg.url.startswith("file://"):
        root = Path(cfg.url.removeprefix("file://")).resolve()
        if not root.is_dir():
            raise LakeNotFoundError(f"{cfg.url}: no such folder")
        return pafs.SubTreeFileSystem(str(root), pafs.LocalFileSystem())
    bucket, prefix = split_url(cfg.url)
    s3 = _s3(cfg)
    try:
        info = s3.get_file_info(bucket)
    except OSError as exc:
        raise storage_error(exc, "opening the bucket", cfg.url) from None
    if info.type == pafs.FileType.NotFound:
        raise LakeNotFoundError(f"{cfg.url}: the bucket {bucket!r} does not exist")
    return pafs.SubTreeFileSystem(f"{bucket}/{prefix}".rstrip("/"), s3)


def _s3(cfg: StorageConfig) -> pafs.S3FileSystem:
    kwargs: dict[str, object] = {
        "region": cfg.region or "us-east-1",
        "connect_timeout": cfg.connect_timeout_s,
        "request_timeout": cfg.read_timeout_s,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=cfg.max_attempts),
    }
    if cfg.endpoint_url:
        parts = urlsplit(cfg.endpoint_url)
        kwargs["endpoint_override"] = parts.netloc + parts.path.rstrip("/")
        kwargs["scheme"] = parts.scheme or "https"
    if cfg.access_key_id and cfg.secret_access_key:
        kwargs["access_key"] = cfg.access_key_id.get_secret_value()
        kwargs["secret_key"] = cfg.secret_access_key.get_secret_value()
    return pafs.S3FileSystem(**kwargs)
