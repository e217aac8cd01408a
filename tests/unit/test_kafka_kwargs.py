"""Kafka connection settings reach producers and consumers alike."""

from __future__ import annotations

from pydantic import SecretStr

from worker.bus.kafka_producer import producer_kwargs
from worker.bus.kafka_source import kafka_client_kwargs
from worker.config import KafkaConfig


def _cfg() -> KafkaConfig:
    return KafkaConfig(
        bootstrap_servers="k1:9093,k2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="ticklake",
        sasl_password=SecretStr("s3cret"),
        compression="zstd",
    )


def test_producer_gets_the_shared_connection_settings_and_its_own() -> None:
    kw = producer_kwargs(_cfg())
    shared = kafka_client_kwargs(_cfg())
    assert {k: kw[k] for k in shared} == shared
    assert kw["sasl_plain_password"] == "s3cret"
    assert kw["security_protocol"] == "SASL_SSL"
    assert kw["bootstrap_servers"] == "k1:9093,k2:9093"
    assert (kw["acks"], kw["enable_idempotence"], kw["compression_type"]) == ("all", True, "zstd")


def test_no_compression_is_none_not_a_string() -> None:
    assert producer_kwargs(KafkaConfig(compression="none"))["compression_type"] is None
