"""Log lines carry no secret and no payload: no locals in tracebacks, masking as a backstop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from worker.bus.dead_letter import field_of
from worker.config import ConfigError, load_config
from worker.logging import MASK, redact, redact_text, register_secret

SECRET = "sEcReT-4f1c9a77"  # the known secret of these tests

SCRIPT = f"""
import sys
from worker.logging import configure_logging, get_logger
configure_logging("info", sys.argv[1])
log = get_logger("t")

class Creds:
    def __repr__(self):
        return "Creds(secret_key={SECRET!r})"

def put(credentials, body):
    raise RuntimeError("storage failed")

try:
    put(Creds(), b"PAYLOAD-BYTES-0123")
except RuntimeError:
    log.exception("flush_failed", password="{SECRET}")
import logging
logging.getLogger("aiokafka").warning("conn to kafka://u:{SECRET}@host failed")
"""


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_tracebacks_show_no_locals_and_secrets_are_masked(fmt: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, fmt], capture_output=True, text=True, timeout=60, check=True
    )
    assert "storage failed" in out.stderr  # the traceback itself is there
    assert "flush_failed" in out.stderr
    assert "PAYLOAD-BYTES" not in out.stderr
    assert "Creds(" not in out.stderr
    assert SECRET not in out.stderr
    if fmt == "json":
        event = json.loads(out.stderr.splitlines()[0])
        assert event["password"] == MASK
        assert all("locals" not in frame for frame in event["exception"][0]["frames"])


def test_redact_masks_registered_secrets_secret_keys_and_url_passwords() -> None:
    register_secret(SECRET)
    event = redact(
        None,
        "info",
        {
            "event": "x",
            "error": f"boom {SECRET} boom",
            "nested": {"sasl_plain_password": "p", "items": [f"a{SECRET}"]},
            "url": "https://user:pw@example.com/x",
            "obj": ValueError(SECRET),
            "key": "2026/12/03/BTC_USDT/trades/x.parquet",
        },
    )
    assert SECRET not in json.dumps(event)
    assert event["nested"]["sasl_plain_password"] == MASK
    assert event["url"] == f"https://user:{MASK}@example.com/x"
    assert event["key"] == "2026/12/03/BTC_USDT/trades/x.parquet"  # object keys are not secrets
    assert redact_text("nothing here") == "nothing here"


@pytest.mark.parametrize(
    "text",
    [
        'storage:\n  secret_access_key: "{s}\n',  # unterminated quote on the secret's line
        "storage:\n  secret_access_key: !{s}\n",  # an unquoted password read as a tag
        "storage:\n  secret_access_key: {s}\n url: x: y\n",
    ],
)
def test_yaml_errors_do_not_quote_the_secret(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text.format(s=SECRET))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "line" in str(info.value)
    assert SECRET not in str(info.value)


def test_invalid_config_errors_do_not_quote_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    cfg = {"storage": {"secret_access_key": SECRET, "url": f"https://{SECRET}"}}
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "storage.url must start with" in str(info.value)
    assert SECRET not in str(info.value)


def test_dead_letter_logs_name_the_field_not_the_value() -> None:
    assert field_of("price='PAYLOAD'") == "price"
    assert field_of("timestamp=253402300800000") == "timestamp"
    assert field_of("seq outside int64") == "seq"
    assert field_of("price") == "price"
    assert field_of("'bin/ance'") is None
    assert field_of("unexpected character: line 1 column 1 (char 0)") is None
