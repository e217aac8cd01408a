"""Open batches, per Kafka partition and buffer key, and their triggers.

Every record of one buffer key comes from one partition (the message key is
``<exchange>:<symbol>``), in offset order, so a buffer is always a
contiguous run of its key's records: ``[first_offset, last_offset]`` covers
all of that key's records in between. Sealing a buffer (for a flush, or
because a replayed record is already stored) keeps that property: later
records of the key start a new buffer.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from worker.bus.source import Message, TopicPartition
from worker.sink.layout import BufferKey
from worker.sink.parse import Raw, Rejected
from worker.sink.state import PartitionState

Trigger = Literal[
    "max_rows", "max_bytes", "max_age", "idle", "revoke", "shutdown", "memory", "replay"
]


@dataclass(slots=True)
class Slice:
    """Messages of a buffer parsed ahead of its flush (worker/sink/batch.py:parse_slice).

    The rows stay in the encoder process that parsed them; the sink knows their size.
    """

    nbytes: int  # the lake rows (and offsets) as Arrow, held by the buffer's encoder
    rejected: list[tuple[Message, Rejected]]  # the messages the parser refused


_numbers = itertools.count()


@dataclass(slots=True, eq=False)
class Buffer:
    """The messages of one key, in offset order: parsed slices, then a raw tail."""

    key: BufferKey
    tp: TopicPartition
    first_offset: int
    msg_key: bytes  # the Kafka key of every message here
    opened_at: float = field(default_factory=time.monotonic)
    number: int = field(default_factory=lambda: next(_numbers))  # unique in this process
    encoder: int = -1  # the encoder that holds its parsed slices (-1: none chosen yet)
    # The raw tail: runs of messages, each run newline-joined into one bytes
    # (a few large objects instead of one small object per message), the
    # length of each message (-1: None) and its offset.
    blobs: list[bytes] = field(default_factory=list)
    lengths: array[int] = field(default_factory=lambda: array("q"))
    offsets: array[int] = field(default_factory=lambda: array("q"))
    slices: list[asyncio.Future[Slice]] = field(default_factory=list)  # before the tail
    last_offset: int = -1
    rows: int = 0  # messages in the buffer
    approx_bytes: int = 0  # their raw size (max_bytes)
    tail_bytes: int = 0  # raw size of the tail
    parsed_bytes: int = 0  # size of the parsed slices (or, once encoded, of its files)
    sealed: Trigger | None = None  # set: takes no more messages, flushes next cycle
    in_flight: bool = False  # taken by a flush cycle that has not finished
    dropped: bool = False  # its partition was revoked: no longer counted

    def add(self, blob: bytes, lengths: Iterable[int], offsets: Sequence[int], size: int) -> None:
        """Append messages to the raw tail: ``blob`` holds them newline-joined."""
        self.blobs.append(blob)
        self.lengths.extend(lengths)
        self.offsets.extend(offsets)
        self.last_offset = offsets[-1]
        self.rows += len(offsets)
        self.approx_bytes += size
        self.tail_bytes += size

    def tail(self) -> tuple[Raw, array[int]]:
        """The raw tail (as :class:`Raw`) and its offsets."""
        return Raw(b"\n".join(self.blobs), self.lengths), self.offsets

    def take_tail(self) -> tuple[Raw, array[int]]:
        """:meth:`tail`, and the buffer's tail is empty after."""
        taken = self.tail()
        self.blobs, self.lengths, self.offsets = [], array("q"), array("q")
        return taken

    @property
    def held_bytes(self) -> int:
        """Memory the buffer holds now (what the global cap counts)."""
        return self.tail_bytes + self.parsed_bytes

    def trigger(
        self, now: float, max_rows: int, max_bytes: int, max_age_s: float
    ) -> Trigger | None:
        if self.sealed is not None:
            return self.sealed
        if self.rows >= max_rows:
            return "max_rows"
        if self.approx_bytes >= max_bytes:
            return "max_bytes"
        if now - self.opened_at >= max_age_s:
            return "max_age"
        return None


@dataclass(slots=True, eq=False)
class Partition:
    """What the sink holds for one assigned partition."""

    tp: TopicPartition
    state: PartitionState
    etag: str | None = None  # of our last state write (conditional writes)
    position: int | None = None  # last consumed offset + 1
    last_record_at: float = field(default_factory=time.monotonic)  # when one last came
    open: dict[bytes, Buffer] = field(default_factory=dict)  # by Kafka message key
    sealed: list[Buffer] = field(default_factory=list)  # not taking rows; flushing or due
    fenced: bool = False  # a newer owner wrote our state: stop writing
    flushed_keys: set[BufferKey] = field(default_factory=set)  # since assignment
    replaying: bool = False  # skipped a stored record since assignment (logged once)
    fresh: bool = False  # no state object existed when claimed: no files either

    def buffers(self) -> Iterator[Buffer]:
        yield from self.sealed
        yield from self.open.values()

    def seal(self, buf: Buffer, trigger: Trigger) -> None:
        if buf.sealed is None:
            buf.sealed = trigger
            del self.open[buf.msg_key]
            self.sealed.append(buf)

    def release(self, buf: Buffer) -> None:
        """Forget a buffer whose file is stored and recorded in the state object."""
        self.sealed.remove(buf)

    def low_watermark(
        self, stored: Iterable[Buffer] = (), position: int | None = None
    ) -> int | None:
        """C: the first offset not yet safely stored (see state.py).

        ``stored``: buffers whose files are now stored (they no longer hold C
        back); ``position``: the consumed position to use (default: current).
        """
        done = {id(b) for b in stored}
        firsts = [b.first_offset for b in self.buffers() if id(b) not in done]
        pos = self.position if position is None else position
        if pos is None:
            pos = self.state.next_offset
        if pos is None:
            return min(firsts) if firsts else None
        return min([*firsts, pos])

    def due(
        self, now: float, max_rows: int, max_bytes: int, max_age_s: float, limit: int = 1 << 30
    ) -> list[Buffer]:
        """Up to ``limit`` buffers to flush now: at most ONE per key (see the flush invariant)."""
        picked: dict[BufferKey, Buffer] = {}
        for buf in list(self.buffers()):
            if len(picked) >= limit:
                break
            if buf.in_flight or buf.key in picked:
                continue
            trigger = buf.trigger(now, max_rows, max_bytes, max_age_s)
            if trigger is not None:
                self.seal(buf, trigger)
                picked[buf.key] = buf
        for buf in picked.values():
            buf.in_flight = True
        return list(picked.values())

    def idle(self, now: float, idle_s: float, highwater: int | None) -> bool:
        """Caught up (nothing left to fetch) and nothing new for ``idle_s``."""
        if not self.open or highwater is None or self.position is None:
            return False
        return self.position >= highwater and now - self.last_record_at >= idle_s

    def all_for_flush(self, trigger: Trigger) -> list[Buffer]:
        """Every buffer (one per key) for a revoke or shutdown flush."""
        for buf in list(self.open.values()):
            self.seal(buf, trigger)
        picked: dict[BufferKey, Buffer] = {}
        for buf in self.sealed:
            picked.setdefault(buf.key, buf)
        for buf in picked.values():
            buf.in_flight = True
        return list(picked.values())
