"""What the read side tells its users when it cannot do what they asked.

Every error a user can cause (a typo, a range, credentials, a lake that is
not there) is a :class:`LakeError` with a message that says what and where;
the command line prints it without a traceback. A file that cannot be
decoded is not an error: :class:`CorruptFileWarning`, counted in the read's
statistics, and the rest of the range is returned.
"""

from __future__ import annotations


class LakeError(Exception):
    """The request cannot be answered; the message says why."""


class UnknownDataTypeError(LakeError):
    """Not one of trades, orderbook, ohlcv, ticker."""


class UnknownSymbolError(LakeError):
    """No data of this type for the symbol anywhere in the lake."""


class UnknownExchangeError(LakeError):
    """No data of this exchange for the symbol and type."""


class UnknownColumnError(LakeError):
    """A column the data type's schema does not have."""


class InvalidRangeError(LakeError):
    """An empty or inverted time range, or a time that cannot be parsed."""


class LakeNotFoundError(LakeError):
    """The bucket or folder does not exist."""


class LakeAccessError(LakeError):
    """The store refused the credentials (or the endpoint is unreachable)."""


class NewerSchemaError(LakeError):
    """A file in range has a schema version this reader does not know."""


class InvalidInputError(LakeError):
    """``lake.write`` refused rows that are not records of the contract."""


class CorruptFileWarning(UserWarning):
    """A Parquet file in range could not be decoded; the rest was returned."""
