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
import re
import time
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
    INVALID_EXCHANGE = "invalid_exchange"  # not a ccxt exchange id (EXCHANGE_PATTERN)
    INVALID_SYMBOL = "invalid_symbol"  # not a ccxt unified symbol (SYMBOL_PATTERN)
    INVALID_VALUE = "invalid_value"  # a timeframe or an integer outside its range
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"  # outside the TimeWindow
    POISON = "poison"  # valid, but encoding or storing it failed permanently (sink)


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


# --- values that reach object keys, folder names and metric labels ---------
# ccxt exchange ids are lowercase alphanumerics (``binance``, ``binanceusdm``).
EXCHANGE_PATTERN: Final = re.compile(r"[a-z][a-z0-9]{0,31}")
# ccxt unified symbols: ``BTC/USDT``, ``BTC/USDT:USDT``, ``BTC/USD:BTC-250328-60000-C``,
# ``1000PEPE/USDT``; printable ASCII from a small set only, so that the path form
# (:func:`lake_symbol`) is a safe folder name.
SYMBOL_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,63}")
TIMEFRAME_PATTERN: Final = re.compile(r"[1-9][0-9]{0,3}[smhdwMy]")
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def valid_exchange(value: str) -> bool:
    return EXCHANGE_PATTERN.fullmatch(value) is not None


def valid_symbol(value: str) -> bool:
    return SYMBOL_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Plausible event and receive times: outside it a message is a dead letter.

    Default: from 2009-01-01 (no crypto exchange data is older) to one day
    after now. It keeps absurd times (year 10000, negative, int64 overflow)
    out of day folders, file names and the parse path.
    """

    min_ms: int = 1_230_768_000_000  # 2009-01-01T00:00:00Z
    max_ahead_ms: int = 86_400_000

    def bounds_ms(self, now_ms: int | None = None) -> tuple[int, int]:
        """``[low, high]`` in milliseconds, inclusive."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return self.min_ms, now + self.max_ahead_ms


DEFAULT_WINDOW: Final = TimeWindow()


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


def decode(value: bytes | None, window: TimeWindow = DEFAULT_WINDOW) -> tuple[Spec, Record]:
    """Parse and validate one message value.

    Returns the data type's spec and the record (only contract fields, with
    order-book levels as ``{"price", "amount"}`` structs). Raises
    :class:`InvalidRecordError` for anything that is not a valid record:
    besides types, the exchange, symbol and timeframe must match their
    patterns and the times lie in ``window``.
    """
    spec, record = _decode(value)
    _check_values(spec, record, window)
    return spec, record


def _check_values(spec: Spec, record: Record, window: TimeWindow) -> None:
    """What types alone do not say: identifiers, time window, integer ranges."""
    exchange, symbol = record["exchange"], record["symbol"]
    if not valid_exchange(exchange):
        raise InvalidRecordError(InvalidReason.INVALID_EXCHANGE, f"{exchange!r}"[:80])
    if not valid_symbol(symbol):
        raise InvalidRecordError(InvalidReason.INVALID_SYMBOL, f"{symbol!r}"[:80])
    timeframe = record.get("timeframe")
    if timeframe is not None and TIMEFRAME_PATTERN.fullmatch(timeframe) is None:
        raise InvalidRecordError(InvalidReason.INVALID_VALUE, f"timeframe={timeframe!r}"[:80])
    low, high = window.bounds_ms()
    ts, received = record["timestamp"], record["received_at"]
    if not low <= ts <= high:
        raise InvalidRecordError(InvalidReason.TIMESTAMP_OUT_OF_RANGE, f"timestamp={ts}"[:80])
    if not low * 1000 <= received <= high * 1000:
        detail = f"received_at={received}"[:80]
        raise InvalidRecordError(InvalidReason.TIMESTAMP_OUT_OF_RANGE, detail)
    for name, kind in _BIG_INT_FIELDS[spec.data_type]:
        v = record.get(name)
        if isinstance(v, int) and not INT64_MIN <= v <= INT64_MAX:
            if kind is Kind.INT:
                raise InvalidRecordError(InvalidReason.INVALID_VALUE, f"{name} outside int64")
            record[name] = float(v)  # a number column is a double: as Arrow's reader does


def _decode(value: bytes | None) -> tuple[Spec, Record]:
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
# Number fields other than the two times (checked against the window): a JSON
# integer there must fit int64, or Arrow cannot hold it.
_BIG_INT_FIELDS: Final = {
    dt: tuple(
        (f.name, f.kind)
        for f in s.fields
        if f.kind in (Kind.INT, Kind.NUM) and f.name not in ("timestamp", "received_at")
    )
    for dt, s in SPECS.items()
}
_Signature = tuple[DataType, tuple[str, ...], tuple[type, ...]]
# signature -> (keys to delete, optional fields to add as None)
_VALID_SIGNATURES: dict[_Signature, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _double(value: Any) -> Any:
    """An integer too big for int64 (orjson keeps it exact) as the double Arrow stores."""
    return float(value) if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX else value


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
            v = [{"price": _double(lv[0]), "amount": _double(lv[1])} for lv in v]
        record[f.name] = v
    return record


def lake_symbol(symbol: str) -> str:
    """Path form of a ccxt unified symbol: ``BTC/USDT`` -> ``BTC_USDT``.

    Derivative suffixes (``BTC/USDT:USDT``) keep their settle currency
    (``BTC_USDT_USDT``); anything outside ASCII ``[A-Za-z0-9_-]`` becomes ``-``
    (records only carry symbols matching :data:`SYMBOL_PATTERN`).
    """
    out = symbol.replace("/", "_").replace(":", "_")
    return "".join(c if c in _PATH_CHARS else "-" for c in out)


_PATH_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
