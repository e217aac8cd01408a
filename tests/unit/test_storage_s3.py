"""The S3 client's endpoint-resolution shortcut and the signed PUT path (no S3 server needed)."""

from __future__ import annotations

import hashlib
from typing import Any

import botocore.session
from aiobotocore.credentials import AioCredentials
from aiohttp import web

from worker.config import StorageConfig
from worker.storage import (
    PermanentStorageError,
    PreconditionFailedError,
    StorageError,
    TransientStorageError,
)
from worker.storage.s3 import UNUSED_ENDPOINT_PARAMS, S3Store, SignedPut


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


class _Recorder:
    """A local HTTP server that answers each PUT with the next canned response."""

    def __init__(self, responses: list[tuple[int, dict[str, str], bytes]]) -> None:
        self.responses = responses
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((request.raw_path, dict(request.headers), body))
        status, headers, payload = self.responses.pop(0)
        return web.Response(status=status, headers=headers, body=payload)


async def _signed_put_against(
    responses: list[tuple[int, dict[str, str], bytes]],
) -> tuple[_Recorder, list[object]]:
    recorder = _Recorder(responses)
    server = web.Application()
    server.router.add_route("PUT", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    creds = AioCredentials("AKIDEXAMPLE", "secret", token="session-token")
    cfg = StorageConfig(url="s3://lake", endpoint_url=f"http://127.0.0.1:{port}")
    put = SignedPut(f"http://127.0.0.1:{port}", "fra1", creds, cfg)
    outcomes: list[object] = []
    try:
        for headers in ({}, {"If-None-Match": "*"}, {}, {}, {}):
            try:
                outcomes.append(await put.put("lake", "exchange=x/a b+é.parquet", b"PAR1", headers))
            except StorageError as exc:
                outcomes.append(exc)
            if not recorder.responses:
                break
    finally:
        await put.close()
        await runner.cleanup()
    return recorder, outcomes


def _error(code: str) -> bytes:
    return f"<?xml version='1.0'?><Error><Code>{code}</Code></Error>".encode()


async def test_signed_put_signs_encodes_and_maps_errors() -> None:
    recorder, outcomes = await _signed_put_against(
        [
            (200, {"ETag": '"abc"'}, b""),
            (412, {}, _error("PreconditionFailed")),
            (503, {}, _error("SlowDown")),
            (403, {}, _error("SignatureDoesNotMatch")),
            (301, {"Location": "http://127.0.0.1:1/elsewhere"}, _error("PermanentRedirect")),
        ]
    )
    assert outcomes[0] == "abc"
    assert isinstance(outcomes[1], PreconditionFailedError)
    assert isinstance(outcomes[2], TransientStorageError)
    assert "SlowDown (503)" in str(outcomes[2])
    assert isinstance(outcomes[3], PermanentStorageError)
    assert not isinstance(outcomes[3], TransientStorageError)
    assert "SignatureDoesNotMatch" in str(outcomes[3])
    # Not followed: the redirect is the error, and only five requests were made.
    assert isinstance(outcomes[4], PermanentStorageError)
    assert "PermanentRedirect (301)" in str(outcomes[4])
    assert len(recorder.requests) == 5

    path, headers, body = recorder.requests[0]
    assert path == "/lake/exchange%3Dx/a%20b%2B%C3%A9.parquet"  # as botocore encodes a key
    assert body == b"PAR1"
    assert headers["X-Amz-Security-Token"] == "session-token"
    assert headers["X-Amz-Content-SHA256"] == hashlib.sha256(b"PAR1").hexdigest()
    auth = headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/fra1/s3/aws4_request" in auth
    assert "x-amz-content-sha256" in auth
    assert "x-amz-security-token" in auth
    assert recorder.requests[1][1]["If-None-Match"] == "*"
    assert "if-none-match" in recorder.requests[1][1]["Authorization"]  # signed too
