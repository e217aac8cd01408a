"""The storage contract: a flat key space of immutable-ish objects.

A :class:`Store` knows nothing about Parquet or the lake layout; the sink
hands it keys and bytes. Errors carry their own retry policy (``retriable``
on the class); :func:`with_retries` is the only retry loop and reads it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

from worker.logging import get_logger
from worker.metrics import STORAGE_ERRORS, STORAGE_RETRIES

T = TypeVar("T")
log = get_logger("storage")


class StorageError(Exception):
    """A storage call failed. ``retriable`` says whether trying again may help."""

    retriable: ClassVar[bool] = False

    def __init__(self, operation: str, key: str, detail: str) -> None:
        super().__init__(f"{operation} {key}: {detail}")
        self.operation = operation
        self.key = key


class TransientStorageError(StorageError):
    """Network errors, timeouts, throttling, 5xx answers."""

    retriable = True


class PermanentStorageError(StorageError):
    """Credentials, permissions, bad requests: retrying will not help."""


class ObjectNotFoundError(PermanentStorageError):
    """The key does not exist."""


class PreconditionFailedError(PermanentStorageError):
    """A conditional write lost: someone else wrote the object first."""


@dataclass(frozen=True, slots=True)
class Blob:
    data: bytes
    etag: str


class Store(Protocol):
    """Where the lake lives. Keys are ``/``-separated, relative to the store root."""

    url: str

    async def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        """Store ``data`` under ``key`` atomically; return its ETag.

        ``if_match``: only replace an object with this ETag; ``if_none_match``:
        only create. A lost condition raises :class:`PreconditionFailedError`.
        """
        ...

    async def get(self, key: str) -> Blob:
        """Read one object; :class:`ObjectNotFoundError` if absent."""
        ...

    async def list(self, prefix: str = "") -> list[str]:
        """All keys under ``prefix``, sorted."""
        ...

    async def delete(self, key: str) -> None:
        """Remove one object (absent is fine)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped, fully jittered exponential backoff."""

    max_attempts: int = 8
    base_s: float = 0.2
    max_s: float = 10.0

    def delay_s(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_s, self.base_s * 2**attempt))


async def with_retries(operation: str, call: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """Run ``call`` until it succeeds, a non-retriable error, or attempts run out."""
    attempt = 0
    while True:
        try:
            return await call()
        except StorageError as exc:
            STORAGE_ERRORS.labels(operation, str(exc.retriable).lower()).inc()
            attempt += 1
            if not exc.retriable or attempt >= policy.max_attempts:
                raise
            delay = policy.delay_s(attempt)
            STORAGE_RETRIES.labels(operation).inc()
            log.warning(
                "storage_retry",
                operation=operation,
                attempt=attempt,
                delay_s=delay,
                error=str(exc)[:300],
            )
            await asyncio.sleep(delay)
