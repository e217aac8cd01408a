"""Chunked fetch: aiokafka's record batches as column lists, no object per message.

aiokafka turns every fetched record into a ``ConsumerRecord`` (eleven
fields, a generator step and a list append each): about 3.5 µs per message
on our 2-core benchmark machine, nearly all of a bare consumer's cost and
more than the rest of the sink's hot path. The sink needs three fields. For
a consumer that opts in, this module makes aiokafka's fetcher yield
:class:`~worker.bus.source.Chunk` s -- about :data:`CHUNK_RECORDS`
messages, their offsets and values grouped by key -- instead (0.5 µs per message, see
docs/benchmarks.md). Everything else stays aiokafka's own code: fetching,
positions, seeks, pauses, rebalances, fetch errors, CRC checks.

How: the fetcher builds a ``PartitionRecords`` for each fetched partition
from the module global of that name. :func:`install` puts a subclass there
whose record generator yields chunks when the consumer's
``value_deserializer`` is :data:`CHUNKED` (a marker nothing else passes) and
its isolation level is read_uncommitted; every other consumer in the
process keeps the stock behaviour. ``FetchResult.getall`` then counts
chunks against ``max_records`` and moves the consumed position to
``next_fetch_offset``, which the generator advances past every batch it has
put in a chunk before yielding that chunk -- exactly what the stock
generator does per record.

This reaches into aiokafka internals, so it is switched on only for the
aiokafka versions it was written and tested against
(tests/integration/test_kafka_fetch.py compares it with the stock path on a
real broker: compressed and transactional batches, aborted transactions,
null keys and values, seeks into the middle of a batch). With any other
version :func:`install` returns False and the source falls back to
``ConsumerRecord`` s: slower, same result.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiokafka
import aiokafka.consumer.fetcher as _fetcher
from aiokafka.errors import CorruptRecordException

from worker.bus.source import Chunk, KeyRun

TESTED_VERSIONS = frozenset({"0.14.0"})
# Batches are gathered into one chunk until it holds this many messages.
CHUNK_RECORDS = 1000


def CHUNKED(value: bytes | None) -> bytes | None:  # noqa: N802  # a marker, named like a constant
    """The ``value_deserializer`` that asks for chunks (never called on that path)."""
    return value


_Stock: Any = _fetcher.PartitionRecords


class _ChunkedPartitionRecords(_Stock):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's ``PartitionRecords``, yielding chunks for the consumers that ask."""

    def _unpack_records(self) -> Iterator[Any]:
        if self._value_deserializer is not CHUNKED:
            yield from super()._unpack_records()
            return
        if self._isolation_level != _fetcher.READ_UNCOMMITTED:
            raise ValueError("chunked fetch supports isolation_level=read_uncommitted only")
        records = self._records
        runs: dict[bytes | None, KeyRun] = {}
        count = 0
        while records.has_next():
            batch = records.next_batch()
            if self._check_crcs and not batch.validate_crc():
                raise CorruptRecordException(f"Invalid CRC - {self._tp}")
            if not batch.is_control_batch:  # control batches: transaction markers
                low: int = self.next_fetch_offset  # type: ignore[has-type]  # untyped base
                for record in batch:
                    offset = record.offset
                    if offset >= low:  # below: a fetch that began inside this batch
                        key = record.key
                        run = runs.get(key)
                        if run is None:
                            run = runs[key] = ([], [])
                        run[0].append(offset)
                        run[1].append(record.value)
                        count += 1
            # Like the stock generator, the next fetch starts after the batch
            # (compaction may have removed its last records).
            self.next_fetch_offset = batch.next_offset
            if count >= CHUNK_RECORDS:
                yield Chunk(self.next_fetch_offset - 1, count, runs)
                runs, count = {}, 0
        if count:
            yield Chunk(self.next_fetch_offset - 1, count, runs)


def install() -> bool:
    """Let consumers created with ``value_deserializer=CHUNKED`` fetch chunks.

    Idempotent. False (and nothing changed) when the installed aiokafka is
    not a version this was tested against.
    """
    if _fetcher.PartitionRecords is _ChunkedPartitionRecords:
        return True
    if aiokafka.__version__ not in TESTED_VERSIONS or _fetcher.PartitionRecords is not _Stock:
        return False
    _fetcher.PartitionRecords = _ChunkedPartitionRecords
    return True
