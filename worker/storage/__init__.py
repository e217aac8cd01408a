"""Storage backends: S3-compatible object stores and a local folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.storage.base import (
    Blob,
    ObjectNotFoundError,
    PermanentStorageError,
    PreconditionFailedError,
    RetryPolicy,
    StorageError,
    Store,
    TransientStorageError,
    with_retries,
)
from worker.storage.local import LocalStore

if TYPE_CHECKING:
    from worker.config import StorageConfig

__all__ = [
    "Blob",
    "LocalStore",
    "ObjectNotFoundError",
    "PermanentStorageError",
    "PreconditionFailedError",
    "RetryPolicy",
    "StorageError",
    "Store",
    "TransientStorageError",
    "open_store",
    "with_retries",
]


async def open_store(cfg: StorageConfig) -> Store:
    """The store for ``cfg.url`` (``s3://bucket[/prefix]`` or ``file:///path``), started."""
    if cfg.url.startswith("file://"):
        return LocalStore(cfg.url.removeprefix("file://"))
    from worker.storage.s3 import S3Store

    store = S3Store(cfg)
    await store.start()
    return store
