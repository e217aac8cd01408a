"""The record contract shared by collectors and the sink.

One place defines, per data type, the Kafka message (a flat JSON object that
carries its schema name and version), how it is validated, and the Arrow
schema of the lake. Collectors build records with :func:`encode`; the sink
turns bytes back into records with :func:`decode`, which either returns a
valid record or raises :class:`InvalidRecordError` with a reason from a small,
fixed set (it becomes a metric label and a dead-letter header).

Time fields in messages are integers since the Unix epoch, UTC:
``timestamp`` (exchange time) in milliseconds, ``received_at`` (collector
receive time) in microseconds. Prices and amounts are IEEE doubles.
See docs/contract.md for the full description and the evolution rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import orjson
import pyarrow as pa

SCHEMA_VERSION: Final = 1
SCHEMA_PREFIX: Final = "ticklake."

Record = dict[str, Any]


class DataType(StrEnum):
    """The four kinds of market data in the lake."""

    TRADES = "trades"
    ORDERBOOK = "orderbook"
    OHLCV = "ohlcv"
    TICKER = "ticker"

    @property
    def schema_name(self) -> str:
        return f"{SCHEMA_PREFIX}{self.value}"


class InvalidReason(StrEnum):
    """Why a message was refused. Bounded: used as a metric label."""

    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    UNKNOWN_SCHEMA = "unknown_schema"
    UNSUPPORTED_VERSION = "unsupported_version"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    KEY_MISMATCH = "key_mismatch"


class InvalidRecordError(ValueError):
    """A message that cannot be turned into a record at all."""

    def __init__(self, reason: InvalidReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class Kind(StrEnum):
    """Value kinds of message fields."""

    STR = "str"
    INT = "int"  # integers only (times, nonces)
    NUM = "num"  # int or float, stored as double
    LEVELS = "levels"  # [[price, amount], ...]


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    required: bool  # must be present and non-null to be a record at all


@dataclass(frozen=True, slots=True)
class Spec:
    """Everything the pipeline needs to know about one data type."""

    data_type: DataType
    fields: tuple[Field, ...]
    arrow_schema: pa.Schema
    # Fields whose values identify one observation (exact-duplicate check).
    identity: tuple[str, ...]
    # Fields that must be non-null for a row to count as complete (quality).
    complete: tuple[str, ...]

    @property
    def schema_name(self) -> str:
        return self.data_type.schema_name


_TS_MS = pa.timestamp("ms", tz="UTC")
_TS_US = pa.timestamp("us", tz="UTC")
LEVEL_TYPE: Final = pa.list_(pa.struct([("price", pa.float64()), ("amount", pa.float64())]))

_COMMON = (Field("exchange", Kind.STR, True), Field("symbol", Kind.STR, True))
# Optional lineage on every data type: which collector process saw the update.
COLLECTOR_ID: Final = Field("collector_id", Kind.STR, False)


# Time fields keep the precision they have on the wire.
_INT_TYPES: Final = {"timestamp": _TS_MS, "received_at": _TS_US}


def _arrow_type(f: Field) -> pa.DataType:
    if f.kind is Kind.STR:
        return pa.string()
    if f.kind is Kind.NUM:
        return pa.float64()
    if f.kind is Kind.LEVELS:
        return LEVEL_TYPE
    return _INT_TYPES.get(f.name, pa.int64())


def _spec(
    dt: DataType, fields: tuple[Field, ...], identity: tuple[str, ...], complete: tuple[str, ...]
) -> Spec:
    """A spec whose lake schema is derived from its message fields.

    Required message fields are non-nullable columns, optional ones nullable,
    in message order, with the optional ``collector_id`` last.
    """
    fields = (*fields, COLLECTOR_ID)
    meta = {
        b"ticklake.schema": dt.schema_name.encode(),
        b"ticklake.schema_version": str(SCHEMA_VERSION).encode(),
    }
    schema = pa.schema(
        [pa.field(f.name, _arrow_type(f), nullable=not f.required) for f in fields], metadata=meta
    )
    return Spec(dt, fields, schema, identity, complete)


_TIMES = (Field("timestamp", Kind.INT, True), Field("received_at", Kind.INT, True))
_OHLCV = ("open", "high", "low", "close", "volume")
TICKER_NUMBERS: Final = (
    "bid",
    "ask",
    "bid_volume",
    "ask_volume",
    "last",
    "open",
    "high",
    "low",
    "close",
    "base_volume",
    "quote_volume",
)

_TRADES = _spec(
    DataType.TRADES,
    (
        *_COMMON,
        Field("id", Kind.STR, True),
        *_TIMES,
        Field("side", Kind.STR, False),
        Field("price", Kind.NUM, False),
        Field("amount", Kind.NUM, False),
        Field("cost", Kind.NUM, False),
        Field("taker_or_maker", Kind.STR, False),
    ),
    identity=("id",),
    complete=("side", "price", "amount"),
)
_ORDERBOOK = _spec(
    DataType.ORDERBOOK,
    (
        *_COMMON,
        *_TIMES,
        Field("nonce", Kind.INT, False),
        Field("bids", Kind.LEVELS, True),
        Field("asks", Kind.LEVELS, True),
    ),
    identity=("timestamp", "nonce"),
    complete=("nonce",),
)
_OHLCV_SPEC = _spec(
    DataType.OHLCV,
    (
        *_COMMON,
        Field("timeframe", Kind.STR, True),
        *_TIMES,
        *(Field(n, Kind.NUM, False) for n in _OHLCV),
    ),
    identity=("timeframe", "timestamp"),
    complete=_OHLCV,
)
_TICKER = _spec(
    DataType.TICKER,
    (*_COMMON, *_TIMES, *(Field(n, Kind.NUM, False) for n in TICKER_NUMBERS)),
    identity=("timestamp",),
    complete=("last",),
)

SPECS: Final[Mapping[DataType, Spec]] = {
    DataType.TRADES: _TRADES,
    DataType.ORDERBOOK: _ORDERBOOK,
    DataType.OHLCV: _OHLCV_SPEC,
    DataType.TICKER: _TICKER,
}
_BY_SCHEMA: Final = {s.schema_name: s for s in SPECS.values()}


def message_key(exchange: str, symbol: str) -> bytes:
    """Kafka message key: ``<exchange>:<symbol>`` (ccxt unified symbol)."""
    return f"{exchange}:{symbol}".encode()


def encode(data_type: DataType, record: Mapping[str, Any]) -> bytes:
    """Serialise one record as a Kafka message value.

    NaN and infinite numbers become null (JSON has no NaN); the sink's
    completeness check then counts them.
    """
    body: Record = {"schema": data_type.schema_name, "v": SCHEMA_VERSION}
    for key, value in record.items():
        body[key] = None if isinstance(value, float) and not math.isfinite(value) else value
    return orjson.dumps(body)


def _check_levels(value: Any) -> bool:
    if not isinstance(value, list):
        return False
    for level in value:
        if not (isinstance(level, list) and len(level) >= 2):
            return False
        price, amount = level[0], level[1]
        if not (_is_num(price) or price is None) or not (_is_num(amount) or amount is None):
            return False
    return True


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check(kind: Kind, value: Any) -> bool:
    if kind is Kind.STR:
        return isinstance(value, str)
    if kind is Kind.NUM:
        return _is_num(value)
    if kind is Kind.INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return _check_levels(value)


def decode(value: bytes | None) -> tuple[Spec, Record]:
    """Parse and validate one message value.

    Returns the data type's spec and the record (only contract fields, with
    order-book levels as ``{"price", "amount"}`` structs). Raises
    :class:`InvalidRecordError` for anything that is not a valid record.
    """
    try:
        obj = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise InvalidRecordError(InvalidReason.NOT_JSON, str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise InvalidRecordError(InvalidReason.NOT_OBJECT, type(obj).__name__)
    spec = _BY_SCHEMA.get(obj.get("schema"))  # type: ignore[arg-type]  # checked below
    if spec is None:
        raise InvalidRecordError(InvalidReason.UNKNOWN_SCHEMA, repr(obj.get("schema"))[:100])
    if obj.get("v") != SCHEMA_VERSION:
        raise InvalidRecordError(InvalidReason.UNSUPPORTED_VERSION, repr(obj.get("v"))[:50])
    # Fast path: for specs without order-book levels, validity depends only on
    # which keys are present and the Python types of their values, so a
    # signature that passed the full check once passes it again (bool is its
    # own type, never int). Such a message becomes the record in place: drop
    # the envelope and unknown keys, add absent optional fields as None.
    signature = (spec.data_type, tuple(obj), tuple(map(type, obj.values())))
    fix = _VALID_SIGNATURES.get(signature)
    if fix is not None:
        for name in fix[0]:
            del obj[name]
        for name in fix[1]:
            obj[name] = None
        return spec, obj
    record = _validate(spec, obj)
    if spec.data_type is not DataType.ORDERBOOK and len(_VALID_SIGNATURES) < 4096:
        names = _NAMES[spec.data_type]
        extra = tuple(k for k in obj if k not in names)
        _VALID_SIGNATURES[signature] = (extra, tuple(n for n in names if n not in obj))
    return spec, record


_NAMES: Final = {dt: tuple(f.name for f in s.fields) for dt, s in SPECS.items()}
_Signature = tuple[DataType, tuple[str, ...], tuple[type, ...]]
# signature -> (keys to delete, optional fields to add as None)
_VALID_SIGNATURES: dict[_Signature, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _validate(spec: Spec, obj: dict[str, Any]) -> Record:
    record: Record = {}
    for f in spec.fields:
        v = obj.get(f.name)
        if v is None:
            if f.required:
                raise InvalidRecordError(InvalidReason.MISSING_FIELD, f.name)
        elif not _check(f.kind, v):
            raise InvalidRecordError(InvalidReason.WRONG_TYPE, f"{f.name}={v!r}"[:200])
        elif f.kind is Kind.LEVELS:
            v = [{"price": lv[0], "amount": lv[1]} for lv in v]
        record[f.name] = v
    return record


def lake_symbol(symbol: str) -> str:
    """Path form of a ccxt unified symbol: ``BTC/USDT`` -> ``BTC_USDT``.

    Derivative suffixes (``BTC/USDT:USDT``) keep their settle currency
    (``BTC_USDT_USDT``); anything outside ``[A-Za-z0-9_-]`` becomes ``-``.
    """
    out = symbol.replace("/", "_").replace(":", "_")
    return "".join(c if c.isalnum() or c in "_-" else "-" for c in out)
