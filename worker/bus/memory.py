"""The in-process bus: Kafka's shape without Kafka.

Used by ``ticklake run`` (collectors and sink in one process), the tests and
the benchmarks. One partition (0) per topic, offsets from 0, committed
offsets per group. It is both a publisher (``publish``) and, through
:meth:`MemoryBus.source`, a :class:`~worker.bus.source.Source` with manual
commits. A group has a single member. Messages every group has committed
are trimmed, so a long ``ticklake run`` does not grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from worker.bus.source import Batch, Message, RebalanceListener, TopicPartition, chunk_of
from worker.records import InvalidReason

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class MemoryMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)


@dataclass(slots=True)
class _Log:
    base: int = 0  # offset of messages[0]
    messages: list[MemoryMessage] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.base + len(self.messages)


class MemoryBus:
    """Topics of one partition each, in memory."""

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}
        self._committed: dict[str, dict[TopicPartition, int]] = {}
        self._changed = asyncio.Event()

    async def publish(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> None:
        """Append one message (the collectors' ``Publisher`` interface)."""
        log = self._logs.setdefault(topic, _Log())
        log.messages.append(MemoryMessage(topic, 0, log.end, key, value, headers or []))
        self._changed.set()

    def messages(self, topic: str) -> list[MemoryMessage]:
        """Every message still held for ``topic`` (tests)."""
        return list(self._logs.get(topic, _Log()).messages)

    def end_offset(self, topic: str) -> int:
        return self._logs.get(topic, _Log()).end

    def source(self, group_id: str, topics: Sequence[str]) -> MemorySource:
        """A consumer of ``topics`` in ``group_id``."""
        return MemorySource(self, group_id, list(topics))

    def _read(self, tp: TopicPartition, position: int, limit: int) -> list[MemoryMessage]:
        log = self._logs.get(tp.topic)
        if log is None:
            return []
        start = max(position, log.base) - log.base
        return log.messages[start : start + limit]

    def _commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self._committed.setdefault(group, {}).update(offsets)
        for tp in offsets:
            self._trim(tp)

    def _trim(self, tp: TopicPartition) -> None:
        log = self._logs.get(tp.topic)
        if log is None:
            return
        done = min((c.get(tp, 0) for c in self._committed.values()), default=0)
        if done > log.base:
            del log.messages[: done - log.base]
            log.base = done

    async def _wait(self, timeout_s: float) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)


class MemorySource:
    """A :class:`~worker.bus.source.Source` over a :class:`MemoryBus`."""

    def __init__(self, bus: MemoryBus, group_id: str, topics: list[str]) -> None:
        self._bus, self._group = bus, group_id
        self._tps = {TopicPartition(t, 0) for t in topics}
        self._position: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._listener: RebalanceListener | None = None
        self.joined = False

    async def start(self, listener: RebalanceListener) -> None:
        self._listener = listener
        for tp in self._tps:
            self._position[tp] = self._bus._committed.get(self._group, {}).get(tp, 0)
        self.joined = True
        await listener.on_assigned(set(self._tps))

    async def stop(self) -> None:
        if self._listener is not None and self.joined:
            self.joined = False
            await self._listener.on_revoked(set(self._tps))

    async def getmany(self, timeout_s: float, max_records: int) -> Batch:
        batch = self._poll(max_records)
        if not batch and timeout_s > 0:
            await self._bus._wait(timeout_s)
            batch = self._poll(max_records)
        return {tp: [chunk_of(msgs)] for tp, msgs in batch.items()}

    def _poll(self, max_records: int) -> dict[TopicPartition, list[MemoryMessage]]:
        out: dict[TopicPartition, list[MemoryMessage]] = {}
        for tp in sorted(self._tps - self._paused):
            msgs = self._bus._read(tp, self._position[tp], max_records)
            if msgs:
                out[tp] = msgs
                self._position[tp] = msgs[-1].offset + 1
                max_records -= len(msgs)
            if max_records <= 0:
                break
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._position[tp] = offset

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self._paused.update(partitions)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self._paused.difference_update(partitions)

    def assignment(self) -> set[TopicPartition]:
        return set(self._tps) if self.joined else set()

    def highwater(self, tp: TopicPartition) -> int | None:
        return self._bus.end_offset(tp.topic)

    async def committed(self, tp: TopicPartition) -> int | None:
        return self._bus._committed.get(self._group, {}).get(tp)

    async def beginning(self, tp: TopicPartition) -> int:
        return self._bus._logs.get(tp.topic, _Log()).base

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._bus._commit(self._group, offsets)


class MemoryDeadLetters:
    """Dead letters to a topic of a :class:`MemoryBus`."""

    def __init__(self, bus: MemoryBus, topic: str) -> None:
        self._bus, self.topic = bus, topic

    async def send(self, msg: Message, reason: InvalidReason, detail: str) -> None:
        from worker.bus.dead_letter import dead_letter_headers
        from worker.metrics import SINK_DEAD_LETTERS

        await self._bus.publish(
            self.topic, msg.key, msg.value, dead_letter_headers(msg, reason, detail)
        )
        SINK_DEAD_LETTERS.labels(reason.value).inc()

    async def flush(self) -> None:
        return None
