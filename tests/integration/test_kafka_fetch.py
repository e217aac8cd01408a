"""Chunked fetch (worker/bus/kafka_fetch.py) returns exactly what stock aiokafka returns.

Real broker: compressed and uncompressed batches, a committed and an aborted
transaction (control batches in the log), null keys and values, headers, a
seek into the middle of a batch, and a ``max_records`` small enough that a
fetch is handed out over several calls.
"""

from __future__ import annotations

import asyncio
import uuid

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.helpers import TopicFactory
from worker.bus import kafka_fetch
from worker.bus.source import Chunk

Row = tuple[int, int, bytes | None, bytes | None]  # partition, offset, key, value


def test_fast_path_is_on_for_the_locked_aiokafka() -> None:
    assert aiokafka.__version__ in kafka_fetch.TESTED_VERSIONS
    assert kafka_fetch.install()


async def _produce_mixed(bootstrap: str, topic: str) -> None:
    """~6,000 records over 2 partitions: lz4 and plain batches, transactions, nulls."""
    for compression in ("lz4", None):
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, compression_type=compression, linger_ms=50
        )
        await producer.start()
        try:
            futs = []
            for i in range(2_500):
                key = None if i % 97 == 1 else f"binance:S{i % 7}/USDT".encode()
                tombstone = i % 89 == 0 and key is not None  # aiokafka needs one of them
                value = None if tombstone else f'{{"i":{i},"c":"{compression}"}}'.encode()
                headers = [("h", b"1")] if i % 5 == 0 else None
                futs.append(await producer.send(topic, value, key=key, headers=headers))
            await asyncio.gather(*futs)
        finally:
            await producer.stop()
    tx = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}")
    await tx.start()
    try:
        async with tx.transaction():
            for i in range(300):
                await tx.send(topic, f"committed-{i}".encode(), key=b"binance:TX/USDT")
        await tx.begin_transaction()
        for i in range(200):
            await tx.send(topic, f"aborted-{i}".encode(), key=b"binance:TX/USDT")
        await tx.abort_transaction()
        async with tx.transaction():
            await tx.send(topic, b"after-abort", key=b"binance:TX/USDT")
    finally:
        await tx.stop()


def messages_of(chunk: Chunk) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every message of ``chunk``, in offset order."""
    out = [
        (o, k, v) for k, (offs, vals) in chunk.runs.items() for o, v in zip(offs, vals, strict=True)
    ]
    return sorted(out, key=lambda m: m[0])


def _consumer(bootstrap: str, *, chunked: bool) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=64 * 1024,  # several fetches per partition
        value_deserializer=kafka_fetch.CHUNKED if chunked else None,
    )


async def _drain(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], *, max_records: int
) -> list[Row]:
    async def behind() -> bool:
        return any([await consumer.position(tp) < end for tp, end in ends.items()])

    rows: list[Row] = []
    async with asyncio.timeout(30):
        while await behind():
            batch = await consumer.getmany(timeout_ms=500, max_records=max_records)
            for tp, items in batch.items():
                for item in items:
                    if isinstance(item, Chunk):
                        got = messages_of(item)
                        assert len(got) == item.messages
                        assert got[-1][0] <= item.last_offset
                        rows += [(tp.partition, o, k, v) for o, k, v in got]
                        # The position never runs ahead of what was handed out.
                        assert await consumer.position(tp) >= item.last_offset + 1
                    else:
                        rows.append((tp.partition, item.offset, item.key, item.value))
    return sorted(rows)


async def test_chunked_fetch_equals_stock(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    assert kafka_fetch.install()
    topic = await topic_factory(2)
    await _produce_mixed(kafka_bootstrap, topic)
    tps = [TopicPartition(topic, p) for p in range(2)]

    results = {}
    for chunked, max_records in ((False, 500), (True, 1), (True, 100)):
        consumer = _consumer(kafka_bootstrap, chunked=chunked)
        await consumer.start()
        try:
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            await consumer.seek_to_beginning(*tps)
            results[chunked, max_records] = await _drain(consumer, ends, max_records=max_records)
        finally:
            await consumer.stop()

    stock = results[False, 500]
    values = [v for *_, v in stock]
    assert len(stock) == 2 * 2_500 + 300 + 200 + 1  # aborted records too (read_uncommitted)
    assert b"after-abort" in values
    assert None in values
    assert any(k is None for _, _, k, _ in stock)
    assert results[True, 1] == stock
    assert results[True, 100] == stock


async def test_seek_into_a_batch_starts_at_the_seeked_offset(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    assert kafka_fetch.install()
    topic = await topic_factory(1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=200)
    await producer.start()
    try:  # one batch of 100 records
        futs = [await producer.send(topic, str(i).encode(), key=b"k") for i in range(100)]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = _consumer(kafka_bootstrap, chunked=True)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, 37)
        rows = await _drain(consumer, {tp: 100}, max_records=10)
    finally:
        await consumer.stop()
    assert [o for _, o, _, _ in rows] == list(range(37, 100))
    assert [v for *_, v in rows] == [str(i).encode() for i in range(37, 100)]
