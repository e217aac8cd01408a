"""The real services behave as the rest of the project relies on.

Kafka: produce/consume with aiokafka, a consumer-group commit, and a second member
of the group resuming exactly at the committed offset (this is also what proves the
pinned Kafka 4.x broker works with the pinned aiokafka).

S3: a put/list/get round trip, SigV4 checking (a wrong secret is refused), and a
conditional put (``If-None-Match: *``) on an existing key answered with 412, which
later gives idempotent writes.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from botocore.exceptions import ClientError

from tests.helpers import S3Config, TopicFactory, client_error_code, open_s3_client

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


# --------------------------------------------------------------------------- Kafka


async def _consume(consumer: AIOKafkaConsumer, count: int, timeout: float = 20.0) -> list[bytes]:
    """Exactly ``count`` record values, one ``getone`` at a time (so positions are exact)."""
    values: list[bytes] = []
    async with asyncio.timeout(timeout):
        while len(values) < count:
            record = await consumer.getone()
            values.append(record.value)
    return values


async def test_kafka_round_trip_group_commit_and_resume(
    kafka_bootstrap: str, topic_factory: TopicFactory, unique_group: str
) -> None:
    topic = await topic_factory(1)
    tp = TopicPartition(topic, 0)
    sent = [f"tick-{i}".encode() for i in range(10)]

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        offsets = [
            (await producer.send_and_wait(topic, value, key=b"BTC/USDT")).offset for value in sent
        ]
    finally:
        await producer.stop()
    assert offsets == list(range(10))

    # First member: reads 4 records, commits its consumed position, leaves the group.
    first = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=unique_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await first.start()
    try:
        assert await _consume(first, 4) == sent[:4]
        await first.commit()
        assert await first.committed(tp) == 4
    finally:
        await first.stop()

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        group_offsets = await admin.list_consumer_group_offsets(unique_group)
    finally:
        await admin.close()
    assert {p: meta.offset for p, meta in group_offsets.items()} == {tp: 4}

    # Second member of the same group: "earliest" would restart at 0, so reading
    # exactly tick-4..tick-9 proves it resumed from the committed offset.
    second = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=unique_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await second.start()
    try:
        assert await _consume(second, 6) == sent[4:]
        assert await second.position(tp) == 10
        leftover = await second.getmany(timeout_ms=300)
        assert not any(leftover.values())
    finally:
        await second.stop()


async def test_topic_factory_creates_requested_partitions(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory(3)
    other = await topic_factory(3)
    assert topic != other

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        assert await producer.partitions_for(topic) == {0, 1, 2}
        assert await producer.partitions_for(other) == {0, 1, 2}
        sent = await producer.send_and_wait(topic, b"x", partition=2)
        assert (sent.partition, sent.offset) == (2, 0)
    finally:
        await producer.stop()


# --------------------------------------------------------------------------- S3


async def test_s3_put_list_get_round_trip(s3_client: S3Client, bucket: str) -> None:
    objects = {
        "trades/exchange=binance/a.parquet": os.urandom(256 * 1024),
        "trades/exchange=binance/b.parquet": b"",
        "trades/exchange=kraken/c.parquet": bytes(range(256)) * 3,
    }
    for key, body in objects.items():
        await s3_client.put_object(Bucket=bucket, Key=key, Body=body)

    listed = await s3_client.list_objects_v2(Bucket=bucket, Prefix="trades/")
    assert [(o.get("Key"), o.get("Size")) for o in listed.get("Contents", [])] == [
        (key, len(body)) for key, body in sorted(objects.items())
    ]
    binance = await s3_client.list_objects_v2(
        Bucket=bucket, Prefix="trades/exchange=binance/", Delimiter="/"
    )
    assert binance["KeyCount"] == 2

    for key, body in objects.items():
        got = await s3_client.get_object(Bucket=bucket, Key=key)
        async with got["Body"] as stream:
            assert await stream.read() == body


async def test_s3_wrong_secret_is_refused(s3_config: S3Config, bucket: str) -> None:
    async with open_s3_client(s3_config, secret_key="not-the-secret", max_attempts=1) as bad:
        with pytest.raises(ClientError) as refused:
            await bad.list_objects_v2(Bucket=bucket)
        assert client_error_code(refused.value) == ("SignatureDoesNotMatch", 403)

        with pytest.raises(ClientError) as refused_put:
            await bad.put_object(Bucket=bucket, Key="x", Body=b"x")
        assert client_error_code(refused_put.value) == ("SignatureDoesNotMatch", 403)


async def test_s3_conditional_put_if_none_match(s3_client: S3Client, bucket: str) -> None:
    key = "trades/part-0000.parquet"
    await s3_client.put_object(Bucket=bucket, Key=key, Body=b"first", IfNoneMatch="*")

    with pytest.raises(ClientError) as rejected:
        await s3_client.put_object(Bucket=bucket, Key=key, Body=b"second", IfNoneMatch="*")
    assert client_error_code(rejected.value) == ("PreconditionFailed", 412)

    got = await s3_client.get_object(Bucket=bucket, Key=key)
    async with got["Body"] as stream:
        assert await stream.read() == b"first"
