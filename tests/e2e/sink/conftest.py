"""Fixtures for the sink's whole-process tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.sink.harness import Lake
from tests.helpers import S3Config, TopicFactory


@pytest.fixture
async def lake(
    kafka_bootstrap: str,
    s3_config: S3Config,
    topic_factory: TopicFactory,
    unique_group: str,
    bucket: str,
    tmp_path: Path,
) -> AsyncIterator[Lake]:
    topic = await topic_factory(3)
    dlq = await topic_factory(1, prefix="dlq")
    lk = Lake(topic, dlq, unique_group, bucket, s3_config, kafka_bootstrap, tmp_path)
    lk.write_config()
    try:
        yield lk
    finally:
        lk.stop_all()
