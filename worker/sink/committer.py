"""Flush, then commit: the one place where data becomes durable.

Everything that makes the delivery guarantee lives in :meth:`Committer.cycle`;
docs/architecture.md explains it with pictures and failure cases.
"""

from __future__ import annotations

import asyncio
import copy
import os
import random
import time
from array import array
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from typing import Any

from worker import metrics as m
from worker.bus.dead_letter import DeadLetters
from worker.bus.memory import MemoryMessage as DeadMessage
from worker.bus.source import CommitError, Message, Source, TopicPartition
from worker.config import Settings
from worker.logging import get_logger
from worker.records import InvalidReason
from worker.sink import forkserver, poison
from worker.sink.batch import (
    EncodedBuffer,
    EncodedFile,
    EncodeJob,
    encode_files,
    encoder_init,
    parse_slice,
    warm,
)
from worker.sink.batch import forget as forget_slices
from worker.sink.buffer import Buffer, Partition, Slice
from worker.sink.layout import Destination, state_path
from worker.sink.parse import Raw, Rejected
from worker.storage import PermanentStorageError, PreconditionFailedError, Store

log = get_logger("sink.committer")


def _encoder_pools(processes: int) -> list[Executor]:
    """Where batches are parsed and encoded: one single-process pool per encoder.

    Worker processes by default: the consumer loop holds the GIL nearly all
    the time, and pyarrow calls from a thread queue for it after every call.
    One pool each, not one shared pool: a buffer's parsed slices stay in the
    encoder that parsed them, so its later slices and its encode go there too.
    They fork from a forkserver that imported pyarrow once (worker/sink/forkserver.py).
    0: threads of this process (tests, the in-process ``ticklake run``).
    """
    if processes == 0:
        return [ThreadPoolExecutor(2, "encode")]
    pools: list[Executor] = []
    for _ in range(processes):
        pool = ProcessPoolExecutor(
            1, mp_context=forkserver.context(), initializer=encoder_init, initargs=(os.getpid(),)
        )
        pool.submit(warm)
        pools.append(pool)
    return pools


def is_retriable(exc: BaseException) -> bool:
    """Storage down, dead letters unacknowledged: try the whole cycle again."""
    return bool(getattr(exc, "retriable", False))


class Committer:
    """Runs flush cycles, one at a time."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        source: Source,
        dead_letters: DeadLetters,
        writer: str,
        on_stall: Callable[[bool], None],
        on_release: Callable[[Buffer], None],
        on_encoded: Callable[[Buffer, int], None] = lambda buf, size: None,
    ) -> None:
        self._cfg = settings.sink
        self._conditional = settings.storage.conditional_writes
        self._store, self._source, self._dead = store, source, dead_letters
        self._writer = writer
        self._on_stall, self._on_release = on_stall, on_release
        self._on_encoded = on_encoded
        self._tail: asyncio.Future[None] | None = None  # the last cycle started
        self._lock = asyncio.Lock()
        # Separate limits: a cycle's puts must never queue behind the next
        # cycle's encodes (which wait for a free encoder process).
        self._sem = asyncio.Semaphore(self._cfg.flush_concurrency)
        self._encode_sem = asyncio.Semaphore(2 * max(1, self._cfg.encode_processes))
        self._pools = _encoder_pools(self._cfg.encode_processes)
        self._buffers_of = [0] * len(self._pools)  # buffers each encoder holds slices for
        self._lineage = {"consumer_group": self._cfg.group_id, "writer": writer}
        self._window = self._cfg.time_window()
        self._poison = poison.RefusedFiles(store, self._cfg.group_id)

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)

    def _encoder(self, buf: Buffer) -> Executor:
        """The buffer's encoder: chosen at its first job, the one with the fewest buffers."""
        if buf.encoder < 0:
            buf.encoder = min(range(len(self._pools)), key=self._buffers_of.__getitem__)
            self._buffers_of[buf.encoder] += 1
        return self._pools[buf.encoder]

    def _done_with(self, buf: Buffer) -> None:
        if buf.encoder >= 0:
            self._buffers_of[buf.encoder] -= 1
            buf.encoder = -1

    def forget(self, bufs: Iterable[Buffer]) -> None:
        """Buffers that will not be encoded (partition revoked): free their slices."""
        by_encoder: dict[int, list[int]] = {}
        for buf in bufs:
            if buf.encoder >= 0:
                by_encoder.setdefault(buf.encoder, []).append(buf.number)
                self._done_with(buf)
        for encoder, numbers in by_encoder.items():
            # Queued behind the encoder's earlier jobs for these buffers (one process, FIFO).
            try:
                self._pools[encoder].submit(forget_slices, numbers)
            except RuntimeError:  # shut down, or broken: the slices went with the process
                continue

    async def flush(self, parts: Mapping[TopicPartition, Partition], batch: list[Buffer]) -> None:
        """Encode ``batch``, then store it as one cycle, retrying until it succeeds.

        Encoding needs no order: a cycle encodes while the one before it
        stores. Storing does: cycles store in the order they were started
        (each waits for the one before), which the invariant relies on.
        """
        previous, done = self._tail, asyncio.get_running_loop().create_future()
        self._tail = done
        try:
            started = time.monotonic()
            encoded = await self._encode(batch)
            if batch:
                log.debug(
                    "encoded",
                    buffers=len(batch),
                    s=round(time.monotonic() - started, 3),
                    rows=sum(e.rows for e in encoded),
                )
            if previous is not None:
                await previous
            async with self._lock:
                await self._store_retrying(parts, encoded)
        finally:  # cancelled while the one before still runs: keep the order for the next
            if previous is None or previous.done():
                done.set_result(None)
            else:
                previous.add_done_callback(lambda _: done.set_result(None))

    async def _store_retrying(
        self, parts: Mapping[TopicPartition, Partition], encoded: list[EncodedBuffer]
    ) -> None:
        attempt = 0
        while True:
            try:
                await self.cycle(parts, encoded)
                break
            except Exception as exc:
                if not is_retriable(exc):
                    raise
                attempt += 1
                delay = random.uniform(0, min(self._cfg.retry_backoff_max_s, 0.5 * 2**attempt))
                log.warning(
                    "flush_failed_retrying",
                    attempt=attempt,
                    delay_s=round(delay, 2),
                    error=str(exc)[:300],
                    buffers=len(encoded),
                )
                self._on_stall(True)
                await asyncio.sleep(delay)
        if attempt:
            self._on_stall(False)
            log.info("flush_recovered", attempts=attempt + 1)

    def parse_ahead(self, buf: Buffer) -> asyncio.Task[Slice]:
        """Start parsing ``buf``'s raw tail in an encoder; the buffer keeps the task.

        Submitted to the pool right here, not from a task: the consumer loop
        runs long stretches without yielding, and encoders fed only between
        them would idle most of the time.
        """
        seq = len(buf.slices)
        raw, offsets = buf.take_tail()
        key = (buf.key.exchange, buf.key.symbol)
        pool = self._encoder(buf)
        job = pool.submit(
            parse_slice,
            buf.key.data_type,
            key,
            raw,
            offsets,
            number=buf.number,
            seq=seq,
            window=self._window,
        )
        task = asyncio.ensure_future(self._slice(buf, raw, offsets, asyncio.wrap_future(job)))
        buf.slices.append(task)
        return task

    async def _slice(
        self,
        buf: Buffer,
        raw: Raw,
        offsets: array[int],
        job: asyncio.Future[tuple[int, list[Rejected]]],
    ) -> Slice:
        nbytes, rejected = await job
        return Slice(nbytes, self._dead_of(buf, raw, offsets, rejected))

    @staticmethod
    def _dead_of(
        buf: Buffer, raw: Raw, offsets: array[int], rejected: list[Rejected]
    ) -> list[tuple[Message, Rejected]]:
        if not rejected:
            return []
        poisoned = sum(r.reason is InvalidReason.POISON for r in rejected)
        if poisoned:  # Arrow refused rows the contract accepted (parse.py)
            poison.count(buf, "parse", poisoned, "ArrowException")
        tp, key, values = buf.tp, buf.msg_key, raw.values()
        return [(DeadMessage(*tp, offsets[r.index], key, values[r.index]), r) for r in rejected]

    async def _encode(self, batch: list[Buffer]) -> list[EncodedBuffer]:
        loop = asyncio.get_running_loop()

        async def one(buf: Buffer) -> EncodedBuffer:
            try:
                slices = list(await asyncio.gather(*buf.slices))
                job = EncodeJob.of(buf, len(slices))
                async with self._encode_sem:
                    files, rejected, poisoned = await loop.run_in_executor(
                        self._encoder(buf), encode_files, job, self._cfg, self._lineage
                    )
            except BaseException:
                self.forget([buf])  # cancelled (revoke deadline, shutdown) or failed
                raise
            self._done_with(buf)  # the encoder dropped the slices with the encode
            dead = [d for s in slices for d in s.rejected]
            dead += self._dead_of(buf, job.values, job.offsets, rejected)
            dead += poison.dead_letters(buf, poisoned)
            encoded = EncodedBuffer(buf, files, dead, rows=buf.rows)
            # The messages are in the files now: free them (a retried cycle
            # stores the same files again), keep only what the files weigh.
            self._on_encoded(buf, sum(len(f.parquet) + len(f.sidecar) for f in files))
            return encoded

        return list(await asyncio.gather(*(one(b) for b in batch)))

    async def cycle(
        self, parts: Mapping[TopicPartition, Partition], encoded: Sequence[EncodedBuffer]
    ) -> None:
        """One flush cycle. THE ORDER OF THESE STEPS IS THE DELIVERY GUARANTEE.

        Invariant, per partition P with state object S = (C, covered):
          (a) every record of P below C is in a stored file listed in S (or in
              a file whose range ended below C), or was dead-lettered;
          (b) every stored file holding a record at or above C is listed in
              ``covered`` -- except at most ONE per buffer key: the key's
              latest file, written by a cycle that died before its step 5.
        (b) holds because cycles run one at a time (the lock) and a cycle
        takes at most one buffer per key, so a key cannot get a second file
        before the first one's range is in S. On restart the sink seeks to C
        and skips records inside covered ranges of their key; the first
        uncovered record of a key is exactly the first record of that
        unrecorded file (a key's files are contiguous runs of its records),
        and the file is named after that record (offset + event time), so
        the replay OVERWRITES it instead of adding a second copy.

        Steps (a crash between any two leaves (a) and (b) true):
          1. put every Parquet file (parallel, deterministic keys);
          2. put every sidecar; on the first flush of a key since this
             assignment, delete the same name under the other destination
             (lake vs quarantine: a replay may score differently);
          3. snapshot consumed positions; send the messages the parser
             refused to the dead-letter topic and wait for every ack;
          4. compute each touched partition's new state: covered += the new
             files' ranges, C = low watermark over still-open buffers and the
             snapshot position, prune ranges ending below C;
          5. put each state object (If-Match our last ETag: a newer owner's
             write fences us);
          6. only then commit C to Kafka (lag monitoring, fast path);
          7. release the buffers (their memory) and report.
        A failure in 1-5 raises: nothing is released or committed and
        :meth:`flush` retries the whole cycle; the puts are idempotent.
        """
        started = time.monotonic()
        await self._gather(  # 1, 2
            partial(self._put_file, f, parts[e.buffer.tp], e) for e in encoded for f in e.files
        )
        positions = {tp: p.position for tp, p in parts.items()}  # 3
        await self._send_rejected(encoded)
        await self._dead.flush()
        stored = [e.buffer for e in encoded]
        states = {}
        for tp, part in parts.items():  # 4
            if part.fenced:
                continue
            mine = [e.buffer for e in encoded if e.buffer.tp == tp]
            new = self._next_state(part, mine, positions[tp])
            if mine or new.next_offset != part.state.next_offset:
                states[tp] = new
        await self._gather(partial(self._put_state, parts[tp], s) for tp, s in states.items())  # 5
        offsets = {tp: s.next_offset for tp, s in states.items() if not parts[tp].fenced}
        await self._commit({tp: o for tp, o in offsets.items() if o is not None})  # 6
        for buf in stored:  # 7
            self._on_release(buf)
        self._report(encoded, time.monotonic() - started)

    def _next_state(self, part: Partition, stored: list[Buffer], position: int | None) -> Any:
        state = copy.deepcopy(part.state)
        for buf in stored:
            state.record(buf.key, buf.first_offset, buf.last_offset)
        c = part.low_watermark(stored=stored, position=position)
        if c is not None:
            state.advance(c)
        return state

    async def _gather(self, calls: Iterable[Callable[[], Awaitable[None]]]) -> None:
        """Run ``calls`` at most ``flush_concurrency`` at a time.

        Calls, not coroutines: one cancelled before its turn never creates its
        coroutine (a created, never-awaited one is a RuntimeWarning).
        """

        async def limited(call: Callable[[], Awaitable[None]]) -> None:
            async with self._sem:
                await call()

        await asyncio.gather(*(limited(c) for c in calls))

    async def _put_file(self, f: EncodedFile, part: Partition, e: EncodedBuffer) -> None:
        buf = e.buffer
        try:
            await self._store.put(f.paths.data, f.parquet)
            await self._store.put(f.paths.sidecar, f.sidecar)
        except PermanentStorageError as exc:
            if isinstance(exc, PreconditionFailedError):
                raise
            await self._poison.store_refused(f, e, exc)  # raises if the store refuses all
            return
        # A replay may score differently and flip lake/quarantine: clear the other
        # side once per key and assignment. A partition that had no state object
        # when claimed has no files at all (the claim writes it before any file).
        if not part.fresh and buf.key not in part.flushed_keys:
            await self._store.delete(f.other.data)
            await self._store.delete(f.other.sidecar)

    async def _send_rejected(self, encoded: Sequence[EncodedBuffer]) -> None:
        """Messages the parser refused: to the dead-letter topic (once per encode)."""
        for e in encoded:
            if e.dead_letters_sent:
                continue
            for msg, r in e.rejected:
                await self._dead.send(msg, r.reason, r.detail)
            e.dead_letters_sent = True

    async def _put_state(self, part: Partition, state: Any) -> None:
        key = state_path(self._cfg.group_id, part.tp.topic, part.tp.partition)
        body = state.to_json(topic=part.tp.topic, partition=part.tp.partition, writer=self._writer)
        cond: dict[str, Any] = {}
        if self._conditional:
            cond = {"if_match": part.etag} if part.etag else {"if_none_match": True}
        try:
            part.etag = await self._store.put(key, body, **cond)
        except PreconditionFailedError:
            part.fenced = True
        if part.fenced:
            log.error(
                "partition_fenced",
                topic=part.tp.topic,
                partition=part.tp.partition,
                generation=part.state.generation,
            )
            return
        part.state = state

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            await self._source.commit(offsets)
            m.SINK_COMMITS.labels("ok").inc()
        except CommitError as exc:  # the state object already holds the truth
            m.SINK_COMMITS.labels("failed").inc()
            log.warning("commit_failed", error=str(exc)[:300])

    def _report(self, encoded: Sequence[EncodedBuffer], duration_s: float) -> None:
        for e in encoded:
            for f in e.files:
                self._report_file(e.buffer, f, duration_s)
        if encoded:
            m.SINK_LAST_FLUSH.set(time.time())

    def _report_file(self, buf: Buffer, f: EncodedFile, duration_s: float) -> None:
        dt, dest = buf.key.data_type.value, f.destination.value
        m.SINK_FILES_WRITTEN.labels(dt, dest).inc()
        m.SINK_ROWS_WRITTEN.labels(dt, dest).inc(f.rows)
        m.SINK_BYTES_WRITTEN.labels(dt, dest).inc(len(f.parquet))
        m.SINK_FLUSHES.labels(dt, buf.sealed or "shutdown").inc()
        m.SINK_FLUSH_DURATION.labels(dt).observe(duration_s)
        m.SINK_ROWS_PER_FILE.labels(dt).observe(f.rows)
        m.SINK_QUALITY_SCORE.labels(dt).set(f.report.score)
        m.SINK_QUALITY_BATCHES.labels(dt).observe(f.report.score)
        m.SINK_DUPLICATES_REMOVED.labels(dt).inc(f.report.exact_duplicates_removed)
        for check, count in f.report.checks.items():
            if count:
                m.SINK_QUALITY_ISSUES.labels(dt, check).inc(count)
        if f.destination is Destination.QUARANTINE:
            m.SINK_QUARANTINED.labels(dt).inc()
        log.info(
            "flush",
            file=f.paths.data,
            rows=f.rows,
            bytes=len(f.parquet),
            trigger=buf.sealed,
            destination=dest,
            score=f.report.score,
            first_offset=f.first_offset,
            last_offset=f.last_offset,
            partition=buf.tp.partition,
            duration_s=round(duration_s, 3),
        )
