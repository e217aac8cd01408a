"""Poison pills: valid records whose file cannot be made or stored.

A permanent failure that depends on the data (a bug in an encoder, a key the
store refuses) would stop the sink, and stop it again after every restart on
the same records. Instead the records are isolated, kept and counted:

* **encode**: the encoder bisects the batch (worker/sink/batch.py
  ``_isolate``); the rows that fail on their own go to the dead-letter topic
  with reason ``poison``, the rest is stored as usual;
* **storage**: a file the store refuses permanently while the store still
  takes other writes goes to ``_quarantine/`` under the same (deterministic)
  name, its sidecar saying why; if that is refused too, its rows go to the
  dead-letter topic. A store that refuses everything (credentials, a missing
  bucket) is not poison: the error stops the sink, nothing is committed.

Each case is counted in ``ticklake_sink_poison_records_total`` and logged
once per batch, without the records' contents.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import orjson
import pyarrow.parquet as pq

from worker import metrics as m
from worker.bus.memory import MemoryMessage as DeadMessage
from worker.logging import get_logger
from worker.records import SPECS, InvalidReason
from worker.sink.batch import as_message
from worker.sink.layout import Destination
from worker.sink.parse import Rejected
from worker.storage import StorageError

if TYPE_CHECKING:
    from worker.bus.source import Message
    from worker.sink.batch import EncodedBuffer, EncodedFile, Poisoned
    from worker.sink.buffer import Buffer
    from worker.storage import Store

log = get_logger("sink.poison")


def dead_letters(buf: Buffer, poisoned: list[Poisoned]) -> list[tuple[Message, Rejected]]:
    """The encoder's poisoned rows as dead letters of ``buf``'s partition."""
    if not poisoned:
        return []
    count(buf, "encode", len(poisoned), poisoned[0].detail.split(":", 1)[0])
    tp, key = buf.tp, buf.msg_key
    return [
        (DeadMessage(*tp, p.offset, key, p.value), Rejected(-1, InvalidReason.POISON, p.detail))
        for p in poisoned
    ]


def count(buf: Buffer, stage: str, rows: int, error: str) -> None:
    """Metric and one log line per poisoned batch (the error's class, never its data)."""
    m.SINK_POISON_RECORDS.labels(buf.key.data_type.value, stage).inc(rows)
    log.error(
        "poison_records",
        stage=stage,
        rows=rows,
        error=error,
        data_type=buf.key.data_type.value,
        topic=buf.tp.topic,
        partition=buf.tp.partition,
        first_offset=buf.first_offset,
        last_offset=buf.last_offset,
    )


class RefusedFiles:
    """What a flush cycle does with a file the store refused permanently."""

    def __init__(self, store: Store, group_id: str) -> None:
        self._store = store
        self._probe_key = f"_state/{group_id}/_probe.json"

    async def store_refused(self, f: EncodedFile, e: EncodedBuffer, exc: StorageError) -> None:
        """Quarantine ``f`` (or dead-letter its rows); re-raise ``exc`` if nothing is writable."""
        try:
            await self._store.put(self._probe_key, b'{"probe": true}')
        except StorageError:
            raise exc from None  # the store, not this file: stop, commit nothing
        first_time = f.paths.data not in e.refused
        e.refused.add(f.paths.data)
        error = f"{type(exc).__name__}: {exc.operation}"
        if f.destination is Destination.LAKE:
            target = f.other
            sidecar = orjson.loads(f.sidecar)
            sidecar.update(
                file=target.data,
                destination=Destination.QUARANTINE.value,
                poison={"stage": "storage", "error": error, "refused_key": f.paths.data},
            )
            try:
                await self._store.put(target.data, f.parquet)
                await self._store.put(target.sidecar, orjson.dumps(sidecar))
            except StorageError as again:
                if again.retriable:
                    raise
            else:
                if first_time:
                    count(e.buffer, "storage", f.rows, error)
                return
        if first_time:  # a retried cycle must not queue the same dead letters twice
            e.rejected.extend(_rows_as_dead_letters(f, e.buffer, error))
            count(e.buffer, "storage", f.rows, error)


def _rows_as_dead_letters(
    f: EncodedFile, buf: Buffer, error: str
) -> list[tuple[Message, Rejected]]:
    """Every row of a file no destination takes, as a record message.

    The file does not keep each row's offset: every dead letter names the
    file's first offset as its source, and the detail says the range.
    """
    table = pq.read_table(io.BytesIO(f.parquet))
    spec = SPECS[buf.key.data_type]
    detail = f"{error}; file offsets {f.first_offset}-{f.last_offset}"
    return [
        (
            DeadMessage(*buf.tp, f.first_offset, buf.msg_key, as_message(spec, table.slice(i, 1))),
            Rejected(-1, InvalidReason.POISON, detail),
        )
        for i in range(table.num_rows)
    ]
