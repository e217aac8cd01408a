"""Reading keys back: which file is which, and where a day's files are.

The writing side (:mod:`worker.sink.layout`) turns a buffer key, a day and a
stem into keys; this is its inverse for readers, for both layouts. Folders
and sidecar keys are *asked* of ``layout.file_paths`` (never rebuilt here),
so the two sides cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from worker.records import DataType, lake_symbol
from worker.sink.layout import BufferKey, Destination, Layout, file_paths

QUARANTINE = "_quarantine/"
_STEM = re.compile(r"(?P<exchange>[a-z][a-z0-9]*)-(?P<stamp>\d{8}T\d{9}Z)-p\d+-o\d{20}")
_DEFAULT = re.compile(
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<sym>[^/]+)/(?P<dt>[a-z]+)/(?P<stem>[^/]+)\.parquet"
)
_HIVE = re.compile(
    r"exchange=(?P<ex>[^/]+)/data_type=(?P<dt>[a-z]+)/symbol=(?P<sym>[^/]+)/"
    r"date=(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})/(?P<stem>[^/]+)\.parquet"
)
_DATA_TYPES = frozenset(d.value for d in DataType)
_ANY_EXCHANGE = "x"  # the default layout's folders do not name the exchange


@dataclass(frozen=True, slots=True)
class DataKey:
    """A data file's key, parsed."""

    key: str
    destination: Destination
    layout: Layout
    day: date
    path_symbol: str  # records.lake_symbol form
    data_type: DataType
    exchange: str
    stem: str

    @property
    def sidecar(self) -> str:
        """Its sidecar's key (``_metadata/…`` beside the file's destination)."""
        key = BufferKey(self.exchange, self.path_symbol, self.data_type)
        return file_paths(key, self.day, self.stem, self.layout, self.destination).sidecar


def parse_key(key: str) -> DataKey | None:
    """A data file's key parsed, or None for anything else (sidecars, state, stray files)."""
    dest = Destination.LAKE
    rest = key
    if key.startswith(QUARANTINE):
        dest, rest = Destination.QUARANTINE, key.removeprefix(QUARANTINE)
    layout: Layout = "default"
    m = _DEFAULT.fullmatch(rest)
    if m is None:
        m, layout = _HIVE.fullmatch(rest), "hive"
    if m is None or m["dt"] not in _DATA_TYPES:
        return None
    stem = _STEM.fullmatch(m["stem"])
    if stem is None:
        return None
    try:
        day = date(int(m["y"]), int(m["m"]), int(m["d"]))
    except ValueError:
        return None
    exchange = stem["exchange"]
    if layout == "hive" and m["ex"] != exchange:
        return None
    return DataKey(key, dest, layout, day, m["sym"], DataType(m["dt"]), exchange, m["stem"])


def day_folder(
    symbol: str, data_type: DataType, day: date, layout: Layout, exchange: str | None = None
) -> str:
    """The folder holding one symbol's files of one day (``exchange`` needed for hive)."""
    key = BufferKey(exchange or _ANY_EXCHANGE, lake_symbol(symbol), data_type)
    data = file_paths(key, day, "f", layout, Destination.LAKE).data
    return data.rsplit("/", 1)[0]


def sidecar_folder(symbol: str, data_type: DataType, destination: Destination) -> str:
    """``[_quarantine/]_metadata/<SYMBOL>/<data_type>``."""
    key = BufferKey(_ANY_EXCHANGE, lake_symbol(symbol), data_type)
    paths = file_paths(key, date(2000, 1, 1), "f", "default", destination)
    return paths.sidecar.rsplit("/", 1)[0]
