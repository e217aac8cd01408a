"""The S3 client's endpoint-resolution shortcut stays correct (no server needed)."""

from __future__ import annotations

from typing import Any

import botocore.session

from worker.config import StorageConfig
from worker.storage.s3 import UNUSED_ENDPOINT_PARAMS, S3Store


def _refs(node: Any) -> set[str]:
    """Every parameter a rule set reads (``{"ref": name}`` anywhere in it)."""
    if isinstance(node, dict):
        found = {node["ref"]} if isinstance(node.get("ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def test_s3_rule_set_never_reads_the_skipped_parameters() -> None:
    loader = botocore.session.get_session().get_component("data_loader")
    rules = loader.load_service_model("s3", "endpoint-rule-set-1")
    declared = set(rules["parameters"])
    read = _refs(rules["rules"])
    assert declared >= UNUSED_ENDPOINT_PARAMS  # still declared (else the shortcut is moot)
    assert not (UNUSED_ENDPOINT_PARAMS & read), "a rule now reads a skipped parameter"
    assert {"Bucket", "Region", "Endpoint", "ForcePathStyle"} <= read  # the walk finds refs


async def test_client_resolves_endpoints_without_the_skipped_parameters() -> None:
    store = S3Store(StorageConfig(url="s3://lake/prefix", endpoint_url="http://127.0.0.1:1"))
    await store.start()
    try:
        resolver = store.client._ruleset_resolver  # type: ignore[attr-defined]
        params = set(resolver._param_definitions)
        assert "Bucket" in params
        assert not (params & UNUSED_ENDPOINT_PARAMS)
        # Two keys in one bucket resolve to the same (cached) endpoint.
        model = store.client.meta.service_model.operation_model("PutObject")
        one = await resolver.construct_endpoint(model, {"Bucket": "lake", "Key": "a"}, {})
        two = await resolver.construct_endpoint(model, {"Bucket": "lake", "Key": "b"}, {})
        assert one.url == two.url == "http://127.0.0.1:1/lake"
        other = await resolver.construct_endpoint(model, {"Bucket": "other", "Key": "a"}, {})
        assert other.url == "http://127.0.0.1:1/other"
    finally:
        await store.close()
