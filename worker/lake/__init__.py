"""The lake's read side (and batch writes): ``Lake.open(url)``.

Layout, format, quality checks and sidecars are still the sink's modules
(``worker/sink/``); this package imports them, never copies them.
"""

from __future__ import annotations

from worker.lake.errors import (
    CorruptFileWarning,
    InvalidInputError,
    InvalidRangeError,
    LakeAccessError,
    LakeError,
    LakeNotFoundError,
    NewerSchemaError,
    UnknownColumnError,
    UnknownDataTypeError,
    UnknownExchangeError,
    UnknownSymbolError,
)
from worker.lake.lake import Lake
from worker.lake.read import ReadStats
from worker.lake.write import WriteResult

__all__ = [
    "CorruptFileWarning",
    "InvalidInputError",
    "InvalidRangeError",
    "Lake",
    "LakeAccessError",
    "LakeError",
    "LakeNotFoundError",
    "NewerSchemaError",
    "ReadStats",
    "UnknownColumnError",
    "UnknownDataTypeError",
    "UnknownExchangeError",
    "UnknownSymbolError",
    "WriteResult",
]
