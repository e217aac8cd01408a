"""The sink: consume, buffer, parse ahead; hand due buffers to the committer.

The hot path (:meth:`Sink._ingest`) appends each key's run of raw messages
to its buffer, nothing parsed; every ``parse_ahead_bytes`` of raw tail goes
to an encoder process to become Arrow (docs/architecture.md, *Flush
triggers and memory*). Flush cycles run as background tasks while
consumption goes on; the committer stores them one at a time, in order
(see committer.py for the invariant).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections.abc import Sequence

from worker import metrics as m
from worker.bus.dead_letter import DeadLetters
from worker.bus.memory import MemoryMessage as RawMessage
from worker.bus.source import Batch, Chunk, Message, Source, TopicPartition
from worker.config import Settings
from worker.logging import get_logger
from worker.records import InvalidReason, InvalidRecordError, valid_exchange, valid_symbol
from worker.sink.buffer import Buffer, Partition, Slice, Trigger
from worker.sink.claim import claim_partition
from worker.sink.committer import Committer
from worker.sink.layout import BufferKey
from worker.storage import Store

log = get_logger("sink")
_SCAN_INTERVAL_S = 0.25
_GAUGE_INTERVAL_S = 1.0
# One cycle storing while the next ones encode (see Committer.flush for the order).
_MAX_CYCLES_IN_FLIGHT = 3
# Buffers per cycle: small cycles pipeline (one stores while the next encodes);
# the rest of what is due goes in the next cycle.
_MAX_CYCLE_BUFFERS = 64
# Buffered bytes, as fractions of sink.max_buffered_bytes: above _SEAL_AT each
# flush cycle takes the largest buffers worth _SEAL_SLICE; consumption pauses
# at the cap and resumes under _RESUME_AT.
_SEAL_AT, _SEAL_SLICE, _RESUME_AT = 0.85, 0.1, 0.9
# Per buffered message beyond its bytes: its length and offset (8 B each) and its
# share of its run's bytes-object header.
_OVERHEAD_BYTES = 24


# Parsed Kafka keys kept (a hostile producer must not grow the cache without bound).
_MAX_CACHED_KEYS = 100_000


def _key_error(raw: bytes | None) -> InvalidRecordError | None:
    """Why a Kafka key is not ``<exchange>:<symbol>`` with valid parts (None: it is)."""
    if raw is None:
        return InvalidRecordError(InvalidReason.KEY_MISMATCH, "no key")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return InvalidRecordError(InvalidReason.KEY_MISMATCH, "key is not UTF-8")
    exchange, sep, symbol = text.partition(":")
    if not sep:
        return InvalidRecordError(InvalidReason.KEY_MISMATCH, "key is not <exchange>:<symbol>")
    if not valid_exchange(exchange):
        return InvalidRecordError(InvalidReason.INVALID_EXCHANGE, f"key exchange {exchange!r}"[:80])
    if not valid_symbol(symbol):
        return InvalidRecordError(InvalidReason.INVALID_SYMBOL, f"key symbol {symbol!r}"[:80])
    return None


class Sink:
    """A consumer-group member that turns messages into stored, checked files."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: Source,
        store: Store,
        dead_letters: DeadLetters,
        writer: str,
    ) -> None:
        self._settings, self._cfg = settings, settings.sink
        self._source, self._store, self._writer = source, store, writer
        self._dead_letters = dead_letters
        self._committer = Committer(
            settings,
            store=store,
            source=source,
            dead_letters=dead_letters,
            writer=writer,
            on_stall=lambda on: self._set_paused("storage", on),
            on_release=self._release,
            on_encoded=self._shed,
        )
        self.parts: dict[TopicPartition, Partition] = {}
        self.buffered_bytes = 0
        self.buffered_rows = 0
        self._dead: list[tuple[Message, InvalidRecordError]] = []
        self._flush_tasks: list[asyncio.Task[None]] = []
        self._pause_reasons: set[str] = set()
        self._due_now = False
        self._next_scan = 0.0
        self._next_gauges = 0.0
        self._cap = self._cfg.max_buffered_bytes
        # Raw bytes handed to the encoders and not parsed yet, and how much
        # parsing shrinks them (running totals): see _projected_bytes.
        self._parsing_bytes = 0
        self._raw_parsed = self._parsed_size = 0
        self._first_part = 0
        self._keys: dict[tuple[str, bytes], BufferKey] = {}
        self._topic_types = {settings.kafka.topic(dt): dt for dt in self._cfg.data_types}

    @property
    def ready(self) -> bool:
        return self._source.joined

    @property
    def topics(self) -> list[str]:
        return [self._settings.kafka.topic(dt) for dt in self._cfg.data_types]

    def close(self) -> None:
        """Release the encoder threads (after :meth:`shutdown`, or after a failure)."""
        self._committer.close()

    # --- rebalance listener -------------------------------------------
    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        self._source.pause(partitions)  # nothing from them until claimed and seeked
        for tp in sorted(partitions):
            part = await claim_partition(
                tp,
                store=self._store,
                source=self._source,
                settings=self._settings,
                writer=self._writer,
            )
            self.parts[tp] = part
        if not self._pause_reasons:
            self._source.resume(partitions)
        m.SINK_ASSIGNED_PARTITIONS.set(len(self.parts))

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Flush and commit what the revoked partitions hold, within a deadline.

        Past ``revoke_deadline_s`` the buffers are dropped uncommitted: the
        next owner replays from the state object, which is still exact.
        """
        parts = [self.parts[tp] for tp in sorted(partitions) if tp in self.parts]
        if parts:
            log.info("partitions_revoked", partitions=[[p.tp.topic, p.tp.partition] for p in parts])
        try:
            await asyncio.wait_for(self.drain(parts, "revoke"), self._cfg.revoke_deadline_s)
        except TimeoutError:
            # A deadline, not a crash: no traceback worth printing.
            log.error("revoke_deadline_passed", partitions=[p.tp.partition for p in parts])  # noqa: TRY400
        for part in parts:
            self._forget(part)
        m.SINK_ASSIGNED_PARTITIONS.set(len(self.parts))

    def _forget(self, part: Partition) -> None:
        for buf in list(part.buffers()):
            self._account(-buf.held_bytes, -buf.rows)
            buf.dropped = True
        # A buffer a cycle has taken frees its slices when that cycle encodes it (or is cancelled).
        self._committer.forget(b for b in part.buffers() if not b.in_flight)
        self.parts.pop(part.tp, None)
        with contextlib.suppress(KeyError):
            m.SINK_CONSUMER_LAG.remove(part.tp.topic, str(part.tp.partition))

    # --- the loop -------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set (then call :meth:`shutdown`)."""
        while not stop.is_set():
            batch = await self._source.getmany(0.2, self._cfg.poll_max_records)
            self._ingest_batch(batch)
            if self._dead:
                await self._send_dead_letters()
            self._maintain(time.monotonic())
            self._check_flush_task()

    async def shutdown(self) -> None:
        """Stop consuming, flush everything, write state, commit."""
        self._set_paused("shutdown", True)
        await self.drain(list(self.parts.values()), "shutdown")

    async def drain(self, parts: Sequence[Partition], trigger: Trigger) -> None:
        """Flush every buffer of ``parts`` and write their state (revoke, shutdown)."""
        await self._wait_flush_task()
        live = {p.tp: p for p in parts if not p.fenced}
        while True:
            batch = [b for p in live.values() for b in p.all_for_flush(trigger)]
            await self._committer.flush(live, batch)
            if not batch:
                return

    def _ingest_batch(self, batch: Batch) -> None:
        now = time.monotonic()
        for tp, chunks in batch.items():
            part = self.parts.get(TopicPartition(*tp))
            if part is None or part.fenced:
                continue
            for chunk in chunks:
                if chunk.messages:
                    part.last_record_at = now
                    self._ingest(part, chunk)
                    part.position = chunk.last_offset + 1
                    m.SINK_RECORDS_CONSUMED.labels(self._type_label(tp[0])).inc(chunk.messages)

    def _type_label(self, topic: str) -> str:
        dt = self._topic_types.get(topic)
        return "unknown" if dt is None else dt.value

    def _ingest(self, part: Partition, chunk: Chunk) -> None:
        """The hot path: append raw message bytes to their key's buffer.

        Nothing is parsed here (that happens in the encoder processes). A
        key's run of messages joins its open buffer in one step when no
        trigger falls inside the run and no stored file may hold any of it;
        otherwise message by message (:meth:`_ingest_run`).
        """
        max_rows, max_bytes = self._cfg.max_rows, self._cfg.max_bytes
        ahead = self._cfg.parse_ahead_bytes or max_bytes + 1
        covered, bufs = part.state.covered, part.open
        added_bytes = added_rows = 0
        for key, (offsets, values) in chunk.runs.items():
            buf = bufs.get(key)  # type: ignore[arg-type]  # None keys open no buffer
            if buf is not None and not covered and None not in values:
                n = len(offsets)
                size = sum(map(len, values)) + n * _OVERHEAD_BYTES  # type: ignore[arg-type]
                if (
                    buf.rows + n < max_rows
                    and buf.approx_bytes + size < max_bytes
                    and buf.tail_bytes + size < ahead
                ):
                    # No None here: b"\n".join and len take every value.
                    buf.add(b"\n".join(values), map(len, values), offsets, size)  # type: ignore[arg-type]
                    added_bytes += size
                    added_rows += n
                    continue
            added = self._ingest_run(part, key, offsets, values)
            added_bytes += added[0]
            added_rows += added[1]
        self._account(added_bytes, added_rows)

    def _ingest_run(
        self, part: Partition, key: bytes | None, offsets: list[int], values: list[bytes | None]
    ) -> tuple[int, int]:
        """One key's run, message by message: replays, new buffers, triggers."""
        max_rows, max_bytes = self._cfg.max_rows, self._cfg.max_bytes
        ahead = self._cfg.parse_ahead_bytes or max_bytes + 1
        covered, bufs = part.state.covered, part.open
        added_bytes = added_rows = 0
        for offset, value in zip(offsets, values, strict=True):
            if covered and self._replayed(part, key, offset):
                continue
            buf = bufs.get(key)  # type: ignore[arg-type]  # None keys open no buffer
            if buf is None:
                buf = self._open_buffer(part, offset, key, value)
                if buf is None:
                    continue
            size = len(value or b"") + _OVERHEAD_BYTES
            # A None value: length -1, refused as not JSON at parse.
            buf.add(value or b"", (-1 if value is None else len(value),), (offset,), size)
            added_bytes += size
            added_rows += 1
            if buf.rows >= max_rows:  # sealed now: the next message opens a new buffer
                part.seal(buf, "max_rows")
                self._due_now = True
            elif buf.approx_bytes >= max_bytes:
                part.seal(buf, "max_bytes")
                self._due_now = True
            elif buf.tail_bytes >= ahead:
                self._parse_ahead(buf)
        return added_bytes, added_rows

    def _parse_ahead(self, buf: Buffer) -> None:
        """Hand the buffer's raw tail to an encoder to parse while the buffer fills."""
        raw = buf.tail_bytes
        buf.tail_bytes = 0
        buf.parsed_bytes += raw  # held until parsed
        self._parsing_bytes += raw
        task = self._committer.parse_ahead(buf)
        task.add_done_callback(lambda t: self._parsed(buf, raw, t))

    def _parsed(self, buf: Buffer, raw: int, task: asyncio.Task[Slice]) -> None:
        """A slice is parsed: count what it holds now instead of its raw messages."""
        self._parsing_bytes -= raw
        if task.cancelled() or task.exception() is not None or buf.dropped:
            return  # the flush that awaits this slice reports the failure
        self._raw_parsed += raw
        self._parsed_size += task.result().nbytes
        if buf.in_flight and not buf.slices:  # already encoded and shed
            return
        delta = task.result().nbytes - raw
        buf.parsed_bytes += delta
        self._account(delta, 0)

    def _open_buffer(
        self, part: Partition, offset: int, key: bytes | None, value: bytes | None
    ) -> Buffer | None:
        buffer_key = self._buffer_key(part, key)
        if isinstance(buffer_key, InvalidRecordError) or value is None:
            error = buffer_key
            if not isinstance(error, InvalidRecordError):
                error = InvalidRecordError(InvalidReason.NOT_JSON, "no value")
            msg = RawMessage(part.tp.topic, part.tp.partition, offset, key, value)
            self._dead.append((msg, error))
            return None
        buf = Buffer(buffer_key, part.tp, offset, key or b"")
        part.open[buf.msg_key] = buf
        return buf

    def _buffer_key(self, part: Partition, raw: bytes | None) -> BufferKey | InvalidRecordError:
        """``exchange:symbol`` -> BufferKey of the partition's data type (cached).

        The key decides the object keys of the buffer's files: it is checked
        here like ``records.decode`` checks a record (which must match it).
        """
        key = self._keys.get((part.tp.topic, raw or b""))
        if key is None:
            dt = self._topic_types.get(part.tp.topic)
            error = _key_error(raw)
            if error is not None or dt is None:
                return error or InvalidRecordError(InvalidReason.UNKNOWN_SCHEMA, "topic")
            exchange, _, symbol = (raw or b"").decode().partition(":")
            key = BufferKey(exchange, symbol, dt)
            if len(self._keys) < _MAX_CACHED_KEYS:
                self._keys[(part.tp.topic, raw or b"")] = key
        return key

    def _replayed(self, part: Partition, raw_key: bytes | None, offset: int) -> bool:
        """A message a stored file already holds: skip it (and keep files contiguous)."""
        key = self._buffer_key(part, raw_key)
        if isinstance(key, InvalidRecordError) or not part.state.is_covered(key, offset):
            return False
        if not part.replaying:
            part.replaying = True
            log.info(
                "replay_skipping_stored",
                topic=part.tp.topic,
                partition=part.tp.partition,
                offset=offset,
                key=key.state_key(),
            )
        buf = part.open.get(raw_key or b"")
        if buf is not None:  # cut here: the open buffer's run of the key ends before this
            part.seal(buf, "replay")
            self._due_now = True
        m.SINK_RECORDS_SKIPPED.labels(key.data_type.value).inc()
        return True

    async def _send_dead_letters(self) -> None:
        dead, self._dead = self._dead, []
        for msg, exc in dead:
            await self._dead_letters.send(msg, exc.reason, exc.detail)

    # --- flush scheduling, memory, gauges --------------------------------
    def _maintain(self, now: float) -> None:
        if self.buffered_bytes > self._cap:
            self._set_paused("memory", True)
        elif self.buffered_bytes < _RESUME_AT * self._cap:
            self._set_paused("memory", False)
        if now >= self._next_gauges:
            self._next_gauges = now + _GAUGE_INTERVAL_S
            self._gauges()
        busy = len(self._flush_tasks) >= _MAX_CYCLES_IN_FLIGHT
        if busy or (not self._due_now and now < self._next_scan):
            return
        self._next_scan = now + _SCAN_INTERVAL_S
        self._due_now = False
        batch = self._due(now)
        # Nothing to store but C moved (skipped or dead-lettered messages): state only.
        dirty = not self._flush_tasks and any(
            p.low_watermark() != p.state.next_offset for p in self.parts.values()
        )
        if batch or dirty:
            live = {tp: p for tp, p in self.parts.items() if not p.fenced}
            self._flush_tasks.append(asyncio.create_task(self._committer.flush(live, batch)))

    def _due(self, now: float) -> list[Buffer]:
        cfg = self._cfg
        if self._projected_bytes() > _SEAL_AT * self._cap:
            self._seal_for_memory()
        if cfg.idle_flush_s:
            for part in self.parts.values():
                if part.idle(now, cfg.idle_flush_s, self._source.highwater(part.tp)):
                    for buf in list(part.open.values()):
                        part.seal(buf, "idle")
        batch: list[Buffer] = []
        parts = list(self.parts.values())
        self._first_part = (self._first_part + 1) % max(1, len(parts))  # take turns
        for part in parts[self._first_part :] + parts[: self._first_part]:
            room = _MAX_CYCLE_BUFFERS - len(batch)
            if not part.fenced and room > 0:
                batch += part.due(now, cfg.max_rows, cfg.max_bytes, cfg.max_age_s, room)
        return batch

    def _projected_bytes(self) -> int:
        """What the buffers will hold once the slices in the encoders' queues are parsed.

        A parse backlog is transient: it shrinks as the encoders catch up
        (trades: 282 raw bytes a message become ~83 in Arrow), and the cap
        pauses consumption meanwhile. Sealing for it would only cut files
        short -- a second, small file for each sealed key. So sealing looks at
        this projection; the pause at the cap still counts every byte.
        """
        if not self._raw_parsed:  # no slice parsed yet: assume no shrinking
            return self.buffered_bytes
        shrink = max(0.0, 1.0 - self._parsed_size / self._raw_parsed)
        return self.buffered_bytes - int(self._parsing_bytes * shrink)

    def _seal_for_memory(self) -> None:
        """Memory is filling up: seal the largest buffers, a slice of the cap per cycle.

        Sealing starts before the cap pauses consumption (parse-ahead keeps
        the encoders busy meanwhile, so it need not start much earlier: early
        seals only cut files short), and takes the largest buffers first:
        the biggest files memory allows.
        """
        open_bufs = [(b, p) for p in self.parts.values() if not p.fenced for b in p.open.values()]
        open_bufs.sort(key=lambda bp: (-bp[0].held_bytes, bp[0].opened_at))
        target = _SEAL_SLICE * self._cap
        for buf, part in open_bufs:
            if target <= 0:
                break
            part.seal(buf, "memory")
            target -= buf.held_bytes

    def _set_paused(self, reason: str, on: bool) -> None:
        was = bool(self._pause_reasons)
        (self._pause_reasons.add if on else self._pause_reasons.discard)(reason)
        now = bool(self._pause_reasons)
        if now != was:
            tps = self._source.assignment()
            (self._source.pause if now else self._source.resume)(tps)
            m.SINK_PAUSED_PARTITIONS.set(len(tps) if now else 0)
            log.warning(
                "consumption_paused" if now else "consumption_resumed",
                reasons=sorted(self._pause_reasons) or [reason],
            )

    def _release(self, buf: Buffer) -> None:
        part = self.parts.get(buf.tp)
        # A cycle that outlived a revoke: the partition (maybe claimed again
        # since, as a new object) no longer holds this buffer; _forget counted it.
        if part is None or buf not in part.sealed:
            return
        part.release(buf)
        part.flushed_keys.add(buf.key)
        self._account(-buf.held_bytes, 0)

    def _shed(self, buf: Buffer, kept_bytes: int) -> None:
        """``buf`` is encoded: drop its messages; only its files (``kept_bytes``) stay."""
        if not buf.dropped:  # else _forget already counted it out
            self._account(kept_bytes - buf.held_bytes, -buf.rows)
        buf.blobs, buf.lengths, buf.offsets, buf.slices = [], array("q"), array("q"), []
        buf.tail_bytes, buf.parsed_bytes = 0, kept_bytes

    def _account(self, nbytes: int, rows: int) -> None:
        self.buffered_bytes += nbytes
        self.buffered_rows += rows

    def _gauges(self) -> None:
        m.SINK_BUFFERED_BYTES.set(self.buffered_bytes)
        m.SINK_BUFFERED_ROWS.set(self.buffered_rows)
        m.SINK_OPEN_BUFFERS.set(sum(len(p.open) + len(p.sealed) for p in self.parts.values()))
        for tp, part in self.parts.items():
            high = self._source.highwater(tp)
            if high is not None and part.position is not None:
                m.SINK_CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(high - part.position)

    def _check_flush_task(self) -> None:
        for task in [t for t in self._flush_tasks if t.done()]:
            self._flush_tasks.remove(task)
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]  # non-retriable: stop the sink

    async def _wait_flush_task(self) -> None:
        for task in list(self._flush_tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
        self._check_flush_task()
