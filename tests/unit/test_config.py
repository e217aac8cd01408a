"""Configuration: YAML, environment overrides, unknown keys, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import ConfigError, load_config
from worker.records import DataType


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ticklake.yaml"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "S3_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)


def test_yaml_values_are_loaded(tmp_path: Path) -> None:
    cfg = load_config(
        _write(
            tmp_path,
            "sink:\n  max_rows: 500\n  quality:\n    thresholds: {trades: 90}\n"
            "storage:\n  url: s3://lake/prod\n",
        )
    )
    assert cfg.sink.max_rows == 500
    assert cfg.sink.quality.threshold(DataType.TRADES) == 90
    assert cfg.storage.url == "s3://lake/prod"
    assert cfg.kafka.topic(DataType.OHLCV) == "ticklake.ohlcv"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKLAKE_SINK__MAX_ROWS", "7")
    cfg = load_config(_write(tmp_path, "sink:\n  max_rows: 500\n"))
    assert cfg.sink.max_rows == 7


def test_service_variables_fill_unset_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:8333")
    cfg = load_config(_write(tmp_path, "kafka:\n  client_id: x\n"))
    assert cfg.kafka.bootstrap_servers == "10.0.0.1:9092"
    assert cfg.storage.endpoint_url == "http://127.0.0.1:8333"
    explicit = load_config(_write(tmp_path, "kafka:\n  bootstrap_servers: k:1\n"))
    assert explicit.kafka.bootstrap_servers == "k:1"


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "sink:\n  max_rowz: 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "sink.max_rowz" in str(info.value)
    assert str(path) in str(info.value)


def test_invalid_value_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sink\.max_rows"):
        load_config(_write(tmp_path, "sink:\n  max_rows: -1\n"))


def test_bad_storage_url_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="s3:// or file://"):
        load_config(_write(tmp_path, "storage:\n  url: ftp://x\n"))


def test_secrets_are_never_printed(tmp_path: Path) -> None:
    cfg = load_config(
        _write(tmp_path, "storage:\n  access_key_id: AKIA123\n  secret_access_key: hunter2\n")
    )
    assert cfg.storage.secret_access_key is not None
    assert cfg.storage.secret_access_key.get_secret_value() == "hunter2"
    for text in (repr(cfg), str(cfg), cfg.model_dump_json()):
        assert "hunter2" not in text
        assert "AKIA123" not in text


def test_not_yaml_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "sink: [unclosed\n"))


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")
