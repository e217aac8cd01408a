"""structlog, configured once: JSON lines in production, console in a terminal.

No log line may carry a credential or a message payload:

1. Tracebacks are rendered **without local variables**, in both formats
   (JSON: structlog's dict tracebacks with ``show_locals=False``; console:
   plain text, not rich's, which shows locals by default). A frame's locals
   hold signing credentials, request bodies, Parquet bytes and records.
2. :func:`redact` runs on every event just before the renderer, as a second
   line of defence: values under keys that name a secret (``password``,
   ``secret``, ``token``, ``credentials``, ``authorization``, ...) are masked,
   and so is every occurrence of a secret the process holds in plain text
   (:func:`reveal` registers a ``SecretStr`` where it is unwrapped;
   :func:`register_secret` any other) and the password of a ``user:pass@``
   URL. Records of the stdlib loggers (aiokafka, botocore) are masked the
   same way.

What the code itself puts in a log line stays its own duty: field names, not
values, for refused messages (worker/bus/dead_letter.py); error texts that
name the failure, not the request (worker/storage/s3.py, ``classify``).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog
from structlog.processors import ExceptionRenderer
from structlog.tracebacks import ExceptionDictTransformer

if TYPE_CHECKING:
    from pydantic import SecretStr
    from structlog.typing import EventDict, WrappedLogger

MASK = "**********"
# Shorter values are not secrets worth masking everywhere (they would mask words).
MIN_SECRET_CHARS = 4
# Keys whose values are masked whatever they hold. Not "key": object and message keys.
SECRET_KEY_NAMES = re.compile(
    r"pass(word|wd)?($|_)|secret|token|credential|authorization|api_?key|access_?key"
    r"|private_?key|signature|cookie",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"(?<=://)([^/\s:@]+):[^/\s@]+@")

_configured = False
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it would appear in a log line of this process."""
    global _secret_pattern  # noqa: PLW0603  # one registry per process
    if value is None or len(value) < MIN_SECRET_CHARS or value in _secrets:
        return
    _secrets.add(value)
    # Longest first: a secret containing another is masked whole.
    ordered = sorted(_secrets, key=len, reverse=True)
    _secret_pattern = re.compile("|".join(map(re.escape, ordered)))


def reveal(secret: SecretStr) -> str:
    """``secret.get_secret_value()``, registered for masking first.

    Use it wherever a credential leaves its ``SecretStr``: from then on the
    plain value exists in the process and could reach a log line.
    """
    value = secret.get_secret_value()
    register_secret(value)
    return value


def redact_text(text: str) -> str:
    """``text`` with every registered secret and URL password masked."""
    if _secret_pattern is not None:
        text = _secret_pattern.sub(MASK, text)
    if "://" in text:
        text = _URL_USERINFO.sub(rf"\1:{MASK}@", text)
    return text


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth > 8:  # deeper than any event we build: flatten
        return redact_text(repr(value))
    if isinstance(value, Mapping):
        return {k: _redact_item(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v, depth + 1) for v in value]
    # Anything else is rendered with repr() or str() later: render (and mask) it now.
    return redact_text(str(value) if isinstance(value, BaseException) else repr(value))


def _redact_item(key: str, value: Any, depth: int = 0) -> Any:
    if value is not None and SECRET_KEY_NAMES.search(key):
        return MASK
    return _redact_value(value, depth)


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets in every value (see the module docstring)."""
    return {key: _redact_item(key, value) for key, value in event_dict.items()}


class RedactingFormatter(logging.Formatter):
    """A stdlib formatter whose output goes through :func:`redact_text`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def processors(use_json: bool) -> list[Any]:
    """The processor chain: context, level, time, exception (no locals), redaction, renderer."""
    chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_json:
        chain.append(ExceptionRenderer(ExceptionDictTransformer(show_locals=False)))
        chain += [redact, structlog.processors.JSONRenderer()]
    else:
        # Plain text traceback into the event (then masked); never rich's, with locals.
        chain += [structlog.processors.format_exc_info, redact]
        chain.append(
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            )
        )
    return chain


class _CurrentStderr:
    """``sys.stderr`` as it is at each write.

    Bound once at configuration, a stream object would outlive its owner: a
    CLI test runner (or pytest's capture) swaps ``sys.stderr`` and closes it,
    and every later log line would fail with "I/O operation on closed file".
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR = _CurrentStderr()


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and the stdlib root logger (idempotent)."""
    global _configured  # noqa: PLW0603  # configure once per process
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=processors(use_json),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_STDERR),  # type: ignore[arg-type]  # write + flush is all PrintLogger uses
        cache_logger_on_first_use=True,
    )
    # Libraries (aiokafka, botocore) log through the stdlib: keep them quiet, and masked.
    handler = logging.StreamHandler(_STDERR)
    handler.setFormatter(RedactingFormatter(logging.BASIC_FORMAT))
    logging.basicConfig(level=max(numeric, logging.WARNING), handlers=[handler])
    _configured = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger bound to a component name."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(component=name)
    return logger
