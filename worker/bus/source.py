"""The consumer side of the bus: what the sink reads from.

A :class:`Source` is a consumer-group member with manual commits: it hands
out batches of messages per partition (column-wise :class:`Chunk` s), tells
a :class:`RebalanceListener` when partitions come and go, and commits only what the sink asks it to.
Two implementations: Kafka (:mod:`worker.bus.kafka_source`) and the
in-process bus (:mod:`worker.bus.memory`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol


class TopicPartition(NamedTuple):
    """Equal (and hash-equal) to aiokafka's ``TopicPartition``: both are plain tuples."""

    topic: str
    partition: int


class Message(Protocol):
    """One consumed message (aiokafka's ``ConsumerRecord`` fits as is)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


# One key's messages within a chunk: offsets and values, in offset order.
KeyRun = tuple[list[int], list[bytes | None]]


class Chunk(NamedTuple):
    """Consecutive messages of one partition, grouped by Kafka key.

    ``runs`` maps each key to its messages in offset order (a key's order is
    all the sink needs: its buffers are per key). The sink's hot path
    appends whole runs; nothing builds an object per message (see
    :mod:`worker.bus.kafka_fetch`).
    """

    last_offset: int  # of the last message (the position moves past it)
    messages: int  # how many
    runs: dict[bytes | None, KeyRun]


def chunk_of(msgs: Sequence[Message]) -> Chunk:
    """Messages (of one partition, in offset order) as one :class:`Chunk`."""
    runs: dict[bytes | None, KeyRun] = {}
    for m in msgs:
        run = runs.get(m.key)
        if run is None:
            run = runs[m.key] = ([], [])
        run[0].append(m.offset)
        run[1].append(m.value)
    return Chunk(msgs[-1].offset if msgs else -1, len(msgs), runs)


Batch = Mapping[TopicPartition, Sequence[Chunk]]


class RebalanceListener(Protocol):
    """Called inside the group protocol: the rebalance waits for these to return."""

    async def on_revoked(self, partitions: set[TopicPartition]) -> None: ...
    async def on_assigned(self, partitions: set[TopicPartition]) -> None: ...


class Source(Protocol):
    """A consumer-group member with manual offset commits."""

    @property
    def joined(self) -> bool:
        """True once the member has joined its group (``/readyz``)."""
        ...

    async def start(self, listener: RebalanceListener) -> None: ...
    async def stop(self) -> None: ...
    async def getmany(self, timeout_s: float, max_records: int) -> Batch:
        """About ``max_records`` messages (at most) from unpaused assigned partitions."""
        ...

    def seek(self, tp: TopicPartition, offset: int) -> None: ...
    def pause(self, partitions: Iterable[TopicPartition]) -> None: ...
    def resume(self, partitions: Iterable[TopicPartition]) -> None: ...
    def assignment(self) -> set[TopicPartition]: ...
    def highwater(self, tp: TopicPartition) -> int | None:
        """Offset of the next message the broker will append (last fetch), if known."""
        ...

    async def committed(self, tp: TopicPartition) -> int | None: ...
    async def beginning(self, tp: TopicPartition) -> int:
        """The oldest offset still in the log."""
        ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit "next offset to read" per partition; raises :class:`CommitError`."""
        ...


class CommitError(Exception):
    """The group refused the commit (rebalance in progress, member fenced)."""
