"""Typed configuration: one YAML file plus environment overrides.

Precedence (highest first): ``TICKLAKE_<SECTION>__<KEY>`` environment
variables, the well-known service variables (``KAFKA_BOOTSTRAP_SERVERS``,
``S3_ENDPOINT_URL``, ``AWS_*``) where the file leaves a value unset, then the
YAML file, then defaults. The environment is read at load time only.
Unknown keys are an error naming the key and the file. Credentials are
``SecretStr`` and never appear in ``repr`` or logs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from worker.logging import SECRET_KEY_NAMES, redact_text, register_secret
from worker.records import DEFAULT_WINDOW, DataType, TimeWindow


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    # auto: JSON lines unless stderr is a terminal.
    format: Literal["auto", "json", "console"] = "auto"


class HttpConfig(_Model):
    """The /metrics, /healthz and /readyz server."""

    host: str = "0.0.0.0"  # noqa: S104  # pods must be scrapeable from outside
    port: int = Field(default=9100, ge=0, le=65535)


class KafkaConfig(_Model):
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "ticklake"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    topic_prefix: str = "ticklake"
    # Per data type topic override; default "<topic_prefix>.<data_type>".
    topics: dict[DataType, str] = Field(default_factory=dict)
    dead_letter_topic: str | None = None  # default "<topic_prefix>.dead_letter"
    # Producer side. lz4 (cramjam, via aiokafka's extras) costs far less CPU than gzip.
    compression: Literal["gzip", "snappy", "lz4", "zstd", "none"] = "lz4"
    linger_ms: int = Field(default=20, ge=0)
    request_timeout_ms: int = Field(default=30_000, gt=0)
    # Per-partition producer batch. Large batches need few event-loop turns, which
    # matters when a busy websocket leaves the producer little time (bench/).
    max_batch_bytes: int = Field(default=512 * 1024, gt=0, le=1024 * 1024)

    def topic(self, data_type: DataType) -> str:
        return self.topics.get(data_type, f"{self.topic_prefix}.{data_type.value}")

    @property
    def dlq_topic(self) -> str:
        return self.dead_letter_topic or f"{self.topic_prefix}.dead_letter"


class StorageConfig(_Model):
    """Where the lake lives: ``s3://bucket[/prefix]`` or ``file:///path``."""

    url: str = "file://./lake"
    endpoint_url: str | None = None  # e.g. https://fra1.digitaloceanspaces.com
    region: str | None = None
    access_key_id: SecretStr | None = None  # None: the standard AWS env chain
    secret_access_key: SecretStr | None = None
    max_attempts: int = Field(default=8, ge=1)
    backoff_base_s: float = Field(default=0.2, gt=0)
    backoff_max_s: float = Field(default=10.0, gt=0)
    multipart_threshold_bytes: int = Field(default=16 * 1024 * 1024, ge=5 * 1024 * 1024)
    multipart_chunk_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    # If-Match / If-None-Match on state writes (fences a previous owner of a
    # partition). S3, SeaweedFS and MinIO support it; turn off for stores that do not.
    conditional_writes: bool = True
    # Single-request PUTs as one signed aiohttp request (worker/storage/s3.py,
    # SignedPut): ~1 ms of CPU each instead of ~3 through the botocore client.
    fast_put: bool = True

    @model_validator(mode="after")
    def _check_url(self) -> StorageConfig:
        if not self.url.startswith(("s3://", "file://")):
            raise ValueError(f"storage.url must start with s3:// or file://, got {self.url!r}")
        return self


class QualityConfig(_Model):
    # Batches scoring below their data type's threshold are quarantined.
    thresholds: dict[DataType, float] = Field(default_factory=lambda: dict.fromkeys(DataType, 95.0))
    max_future_skew_s: float = Field(default=5.0, ge=0)
    # Per-check weights in the score; unset checks keep worker/sink/quality.py's defaults.
    weights: dict[str, float] = Field(default_factory=dict)

    def threshold(self, data_type: DataType) -> float:
        return self.thresholds.get(data_type, 95.0)


class SinkConfig(_Model):
    group_id: str = "ticklake-sink"
    data_types: list[DataType] = Field(default_factory=lambda: list(DataType))
    max_rows: int = Field(default=100_000, gt=0)
    max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_age_s: float = Field(default=60.0, gt=0)
    # A partition that is caught up and has received nothing for this long
    # flushes all its buffers (the stream paused: a backfill ended, a collector
    # stopped), instead of waiting out max_age_s. 0: off. Like Flink's
    # inactivity interval, but per partition: one quiet symbol among busy ones
    # never triggers it, so it makes no tiny files.
    idle_flush_s: float = Field(default=0.0, ge=0)
    # 320 MiB keeps the sink and its encoder processes under 1 GiB RSS (docs/benchmarks.md).
    max_buffered_bytes: int = Field(default=320 * 1024 * 1024, gt=0)
    shutdown_deadline_s: float = Field(default=30.0, gt=0)
    compression: Literal["snappy", "zstd"] = "snappy"
    row_group_rows: int = Field(default=128 * 1024, gt=0)
    layout: Literal["default", "hive"] = "default"
    orderbook_depth: int = Field(default=25, gt=0)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    # Files stored in parallel within one flush cycle.
    flush_concurrency: int = Field(default=16, gt=0)
    poll_max_records: int = Field(default=20_000, gt=0)
    # A revoked partition's buffers must be stored (and committed) within this.
    revoke_deadline_s: float = Field(default=20.0, gt=0)
    # Backoff between attempts of a failed flush cycle (storage down): capped, jittered.
    retry_backoff_max_s: float = Field(default=10.0, gt=0)
    # A buffer's raw messages are parsed in the background each time they reach
    # this size (less memory, encoders busy while buffers fill); 0: at flush only.
    parse_ahead_bytes: int = Field(default=384 * 1024, ge=0)
    # Processes that parse and encode batches (0: threads of the sink process).
    encode_processes: int = Field(default=2, ge=0)
    # Read aiokafka's record batches column-wise (worker/bus/kafka_fetch.py);
    # off, or on an untested aiokafka version: one ConsumerRecord per message.
    fast_fetch: bool = True
    # Consumer-group liveness: a killed sink's partitions move after this.
    session_timeout_ms: int = Field(default=30_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    # Plausible event and receive times (records.TimeWindow): messages outside
    # [event_time_min_ms, now + event_time_max_ahead_s] are dead letters
    # (timestamp_out_of_range). Default: 2009-01-01, one day ahead.
    event_time_min_ms: int = Field(default=DEFAULT_WINDOW.min_ms, ge=0)
    event_time_max_ahead_s: float = Field(default=86_400.0, ge=0)

    def time_window(self) -> TimeWindow:
        return TimeWindow(self.event_time_min_ms, int(self.event_time_max_ahead_s * 1000))


class OrderBookOptions(_Model):
    depth: int = Field(default=25, gt=0)
    throttle_ms: int = Field(default=0, ge=0)  # 0: every update


class OhlcvOptions(_Model):
    timeframes: list[str] = Field(default_factory=lambda: ["1m"])


class StreamsConfig(_Model):
    trades: bool = True
    orderbook: OrderBookOptions | None = None
    ohlcv: OhlcvOptions | None = None
    ticker: bool = False


class ExchangeConfig(_Model):
    id: str  # any ccxt.pro exchange id
    symbols: list[str] = Field(min_length=1)
    streams: StreamsConfig = Field(default_factory=StreamsConfig)
    # Merged into the ccxt exchange object (how tests point ccxt at an emulator).
    urls: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    markets_file: Path | None = None  # pre-seeded markets: no REST call at start


class CollectorConfig(_Model):
    collector_id: str = Field(default_factory=lambda: os.environ.get("HOSTNAME", "collector"))
    exchanges: list[ExchangeConfig] = Field(default_factory=list)
    stale_after_s: float = Field(default=30.0, gt=0)
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    healthy_after_s: float = Field(default=60.0, gt=0)
    queue_max_records: int = Field(default=1_000_000, gt=0)
    # Multi-symbol watches read ccxt's state at least this often (quiet symbols).
    sweep_interval_s: float = Field(default=0.5, gt=0)
    # At most this many symbols share one websocket watch (Binance allows 200).
    symbols_per_stream: int = Field(default=100, gt=0, le=200)
    trade_dedupe_ids: int = Field(default=10_000, gt=0)  # per symbol
    shutdown_drain_s: float = Field(default=10.0, gt=0)  # publish what is queued on stop


class Settings(BaseSettings):
    """The whole configuration. Each command uses the sections it needs."""

    model_config = SettingsConfigDict(
        env_prefix="TICKLAKE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    log: LogConfig = Field(default_factory=LogConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    sink: SinkConfig = Field(default_factory=SinkConfig)
    collector: CollectorConfig = Field(default_factory=CollectorConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (passed as init kwargs).
        return env_settings, init_settings


# Well-known variables, applied where the file leaves the value unset.
_SERVICE_ENV = {
    ("kafka", "bootstrap_servers"): "KAFKA_BOOTSTRAP_SERVERS",
    ("storage", "endpoint_url"): "S3_ENDPOINT_URL",
    ("storage", "region"): "AWS_DEFAULT_REGION",
}


def _apply_service_env(data: dict[str, Any]) -> None:
    for (section, key), var in _SERVICE_ENV.items():
        value = os.environ.get(var)
        if value and not (data.get(section) or {}).get(key):
            data.setdefault(section, {})
            if isinstance(data[section], dict):
                data[section][key] = value


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{loc}'")
        else:
            lines.append(f"{source}: {loc}: {err['msg']}")
    return "\n".join(lines)


def load_config(path: str | Path | None) -> Settings:
    """Load the YAML file at ``path`` (or defaults only) and the environment."""
    source = str(path) if path else "<defaults>"
    data: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(exc)}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{source}: top level must be a mapping")
        data = loaded or {}
    _apply_service_env(data)
    _register_raw(data)
    _register_raw({k: v for k, v in os.environ.items() if k.startswith(_SECRET_ENV_PREFIXES)})
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(redact_text(_format_errors(exc, source))) from None
    except SettingsError as exc:  # an environment variable that is not valid JSON
        raise ConfigError(redact_text(f"{source}: {exc}")) from None
    register_secrets(settings)
    return settings


# PyYAML quotes tags, aliases and characters it refuses: an unquoted password
# "!x..." or "*x..." would appear in full. Its own tokens ('<block end>') stay.
_QUOTED = re.compile(r"'[^'<][^']{2,}'")
_MASKED_QUOTE = "'...'"
_SECRET_ENV_PREFIXES = ("TICKLAKE_", "AWS_", "KAFKA_")


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what, without PyYAML's snippet of the line (it may hold a secret)."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return type(exc).__name__
    parts = [
        f"{_QUOTED.sub(_MASKED_QUOTE, text)} at line {mark.line + 1}, column {mark.column + 1}"
        for text, mark in ((exc.context, exc.context_mark), (exc.problem, exc.problem_mark))
        if text and mark is not None
    ]
    return "; ".join(parts) or type(exc).__name__


def register_secrets(model: BaseModel) -> None:
    """Mask every ``SecretStr`` of ``model`` in this process's logs (worker/logging.py)."""
    for name in type(model).model_fields:
        _register(getattr(model, name))


def _register(value: Any) -> None:
    if isinstance(value, SecretStr):
        register_secret(value.get_secret_value())
    elif isinstance(value, BaseModel):
        register_secrets(value)
    elif isinstance(value, dict):
        for item in value.values():
            _register(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _register(item)


def _register_raw(data: Any) -> None:
    """Secrets of a configuration that may not validate: values under secret-like keys."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str | int) and SECRET_KEY_NAMES.search(str(key)):
                register_secret(str(value))
            else:
                _register_raw(value)
    elif isinstance(data, list):
        for item in data:
            _register_raw(item)
