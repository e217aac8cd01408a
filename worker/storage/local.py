"""``file://`` backend: the lake in a local folder, same layout as S3.

Writes go to a temporary file in the target folder, are fsynced, then renamed
over the target, so a reader (or a crash) never sees half a file. Conditional
writes are checked under a per-process lock: enough for development, not for
two processes racing on one folder.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import itertools
import os
from pathlib import Path

from worker.storage.base import (
    Blob,
    ObjectNotFoundError,
    PermanentStorageError,
    PreconditionFailedError,
)

_TMP_SUFFIX = ".tmp-ticklake"
_tmp_ids = itertools.count()


def _etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class LocalStore:
    """A :class:`~worker.storage.base.Store` over a folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.url = f"file://{self.root}"
        self._lock = asyncio.Lock()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or not key or key.endswith("/"):
            raise PermanentStorageError("path", key, "key escapes the store root or is empty")
        return path

    async def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        path = self._path(key)
        if if_match is None and not if_none_match:
            await asyncio.to_thread(_atomic_write, path, data)
            return _etag(data)
        async with self._lock:
            current = await asyncio.to_thread(_read_or_none, path)
            if if_none_match and current is not None:
                raise PreconditionFailedError("put", key, "object exists")
            if if_match is not None and (current is None or _etag(current) != if_match):
                raise PreconditionFailedError("put", key, "etag changed")
            await asyncio.to_thread(_atomic_write, path, data)
        return _etag(data)

    async def get(self, key: str) -> Blob:
        data = await asyncio.to_thread(_read_or_none, self._path(key))
        if data is None:
            raise ObjectNotFoundError("get", key, "no such key")
        return Blob(data, _etag(data))

    async def list(self, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> builtins.list[str]:
        if not self.root.exists():
            return []
        keys = []
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                if name.endswith(_TMP_SUFFIX):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def close(self) -> None:
        return None


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_tmp_ids)}{_TMP_SUFFIX}")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
