"""Where things go in the lake: deterministic names from the data (STYLE 3).

A file's name comes from its exchange, the event time of its record with
the lowest offset (not the minimum event time: a replay that cuts the batch
at a different last offset must still produce the same name), its Kafka
partition and that offset. So replaying a partition rewrites the same
keys instead of adding new ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Literal, NamedTuple

from worker.records import DataType, lake_symbol

DAY_MS = 86_400_000
_EPOCH = date(1970, 1, 1)

Layout = Literal["default", "hive"]


class LayoutError(ValueError):
    """A key component that could escape its folder: a bug upstream, never data.

    ``records.decode`` refuses such values at the edge; this is the second
    wall, so that no future field can reach an object key unchecked.
    """


# A path component: no separator, no "..", no control characters, no leading dot.
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]|\.\.")


def safe(component: str) -> str:
    """``component`` unchanged if it is a safe single folder or file name; else raise."""
    if not component or component.startswith(".") or _UNSAFE.search(component):
        raise LayoutError(f"unsafe key component {component!r}"[:120])
    return component


class Destination(StrEnum):
    LAKE = "lake"
    QUARANTINE = "quarantine"


class BufferKey(NamedTuple):
    """What one buffer holds (within one Kafka partition): one symbol of one data type.

    Its messages all carry the Kafka key ``<exchange>:<symbol>``; a flush
    writes one file per UTC day of their event times (usually one).
    """

    exchange: str
    symbol: str
    data_type: DataType

    def state_key(self) -> str:
        """Stable string form used in the partition state object."""
        return f"{self.exchange}|{self.symbol}|{self.data_type.value}"

    @classmethod
    def from_state_key(cls, text: str) -> BufferKey:
        exchange, symbol, data_type = text.rsplit("|", 2)
        return cls(exchange, symbol, DataType(data_type))


def day_of(ms: int) -> date:
    """UTC day of an event time in milliseconds."""
    return _EPOCH + timedelta(days=ms // DAY_MS)


def file_stem(exchange: str, partition: int, first_offset: int, first_ts_ms: int) -> str:
    """``<exchange>-<YYYYMMDDTHHMMSSmmmZ>-p<partition>-o<first offset, 20 digits>``."""
    ts = datetime.fromtimestamp(first_ts_ms // 1000, tz=UTC)
    stamp = f"{ts:%Y%m%dT%H%M%S}{first_ts_ms % 1000:03d}Z"
    return f"{safe(exchange)}-{stamp}-p{partition}-o{first_offset:020d}"


@dataclass(frozen=True, slots=True)
class FilePaths:
    data: str  # the Parquet file
    sidecar: str  # its JSON metadata


def file_paths(
    key: BufferKey, day: date, stem: str, layout: Layout, dest: Destination
) -> FilePaths:
    """Keys (relative to the store root) of one file and its sidecar."""
    root = "_quarantine/" if dest is Destination.QUARANTINE else ""
    sym, dt = safe(lake_symbol(key.symbol)), key.data_type.value
    safe(key.exchange)
    safe(stem)
    if layout == "hive":
        folder = f"exchange={key.exchange}/data_type={dt}/symbol={sym}/date={day.isoformat()}"
    else:
        folder = f"{day:%Y/%m/%d}/{sym}/{dt}"
    return FilePaths(
        data=f"{root}{folder}/{stem}.parquet",
        sidecar=f"{root}_metadata/{sym}/{dt}/{stem}.json",
    )


def state_path(group_id: str, topic: str, partition: int) -> str:
    """The partition's durable progress object (see worker/sink/state.py)."""
    return f"_state/{safe(group_id)}/{safe(topic)}/{partition}.json"
