"""Taking over a partition: load its state object, fence the previous owner, seek."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from worker.bus.source import Source, TopicPartition
from worker.config import Settings
from worker.logging import get_logger
from worker.sink.buffer import Partition
from worker.sink.layout import state_path
from worker.sink.state import PartitionState
from worker.storage import ObjectNotFoundError, PreconditionFailedError, StorageError, Store

T = TypeVar("T")

log = get_logger("sink.claim")
_CLAIM_ATTEMPTS = 5


async def claim_partition(
    tp: TopicPartition, *, store: Store, source: Source, settings: Settings, writer: str
) -> Partition:
    """Load ``tp``'s state, write it back with ``generation + 1``, seek to C.

    The caller pauses ``tp`` while this runs; records the consumer returns
    for it before the claim is done are dropped, and the seek here re-reads
    them.

    The claim write is conditional on the ETag just read, so two owners
    cannot both believe they hold the partition; every later state write of
    the previous owner (If-Match on its own last ETag) then fails and fences
    it. The start offset is max(state C, Kafka's committed offset): the
    state object is authoritative, Kafka's commit can only lag behind it.
    """
    key = state_path(settings.sink.group_id, tp.topic, tp.partition)
    for _ in range(_CLAIM_ATTEMPTS):
        state, etag = await _persist(lambda: _load(store, key), "load")
        loaded_etag = etag
        committed = await source.committed(tp)
        starts = [o for o in (state.next_offset, committed) if o is not None]
        state.advance(max(starts) if starts else await source.beginning(tp))
        state.generation += 1
        body = state.to_json(topic=tp.topic, partition=tp.partition, writer=writer)
        try:
            etag = await _persist(
                functools.partial(
                    _put, store, key, body, etag, settings.storage.conditional_writes
                ),
                "claim",
            )
        except PreconditionFailedError:
            log.warning("claim_raced", topic=tp.topic, partition=tp.partition)
            continue
        fresh = loaded_etag is None
        part = Partition(tp, state, etag=etag, position=state.next_offset, fresh=fresh)
        # Always seek: records fetched before the claim finished were dropped.
        source.seek(tp, state.next_offset or 0)
        log.info(
            "partition_assigned",
            topic=tp.topic,
            partition=tp.partition,
            next_offset=state.next_offset,
            generation=state.generation,
            covered_keys=len(state.covered),
        )
        return part
    raise PreconditionFailedError("claim", key, "state object keeps changing under us")


async def _persist(call: Callable[[], Awaitable[T]], what: str) -> T:
    """Retry retriable storage errors until they stop (the partition stays paused)."""
    attempt = 0
    while True:
        try:
            return await call()
        except StorageError as exc:
            if not exc.retriable:
                raise
            attempt += 1
            delay = random.uniform(0, min(10.0, 0.5 * 2**attempt))
            log.warning(
                "claim_retry",
                what=what,
                attempt=attempt,
                delay_s=round(delay, 2),
                error=str(exc)[:200],
            )
            await asyncio.sleep(delay)


async def _load(store: Store, key: str) -> tuple[PartitionState, str | None]:
    try:
        blob = await store.get(key)
    except ObjectNotFoundError:
        return PartitionState(), None
    return PartitionState.from_json(blob.data), blob.etag


async def _put(store: Store, key: str, body: bytes, etag: str | None, conditional: bool) -> str:
    if not conditional:
        return await store.put(key, body)
    if etag is None:
        return await store.put(key, body, if_none_match=True)
    return await store.put(key, body, if_match=etag)
