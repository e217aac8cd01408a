"""Quality reports from the sidecars: per file, and rolled up per day, symbol and type.

Each file's sidecar holds the report :func:`worker.sink.quality.check_batch`
made when it was written (the sink or ``lake.write``): the named checks'
counts, the score, the threshold. A day's roll-up sums the counts over every
batch of the day, quarantined ones included (that is where the bad rows
are), and scores the day as the row-weighted mean of its batches' scores.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from worker.lake.catalog import FileEntry
from worker.sink.layout import Destination


@dataclass(slots=True)
class FileQuality:
    """One batch's report."""

    file: str
    day: date
    exchange: str
    symbol: str
    data_type: str
    destination: str
    rows_in: int
    rows: int
    exact_duplicates_removed: int
    score: float | None
    threshold: float | None
    passed: bool | None
    checks: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["day"] = self.day.isoformat()
        return out


@dataclass(slots=True)
class DayQuality:
    """One (day, exchange, symbol, data type): every batch of it, summed."""

    day: date
    exchange: str
    symbol: str
    data_type: str
    files: int = 0
    quarantined: int = 0
    without_sidecar: int = 0
    rows_in: int = 0
    rows: int = 0
    exact_duplicates_removed: int = 0
    score: float | None = None  # row-weighted mean of the batches' scores
    min_score: float | None = None
    threshold: float | None = None  # the highest threshold a batch of the day was held to
    checks: dict[str, int] = field(default_factory=dict)

    def below(self, threshold: float | None = None) -> bool:
        """Whether the day scores under ``threshold`` (default: its batches' own)."""
        limit = self.threshold if threshold is None else threshold
        return self.score is not None and limit is not None and self.score < limit

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["day"] = self.day.isoformat()
        return out


def file_reports(entries: Iterable[FileEntry]) -> list[FileQuality]:
    """Per file with a sidecar, in key order."""
    out = []
    for e in entries:
        s = e.summary
        if s is None:
            continue
        out.append(
            FileQuality(
                e.key.key,
                e.key.day,
                e.key.exchange,
                e.symbol,
                e.key.data_type.value,
                e.key.destination.value,
                s.rows_in,
                s.rows,
                s.exact_duplicates_removed,
                s.score,
                s.threshold,
                s.passed,
                dict(s.checks),
            )
        )
    return out


def roll_up(entries: Iterable[FileEntry]) -> list[DayQuality]:
    """Per (day, exchange, symbol, data type), sorted."""
    days: dict[tuple[date, str, str, str], DayQuality] = {}
    for e in entries:
        k = (e.key.day, e.key.exchange, e.symbol, e.key.data_type.value)
        day = days.get(k) or days.setdefault(k, DayQuality(*k))
        day.files += 1
        day.quarantined += int(e.key.destination is Destination.QUARANTINE)
        s = e.summary
        if s is None:
            day.without_sidecar += 1
            continue
        weighted = (day.score or 0.0) * day.rows_in
        day.rows_in += s.rows_in
        day.rows += s.rows
        day.exact_duplicates_removed += s.exact_duplicates_removed
        for name, count in s.checks.items():
            day.checks[name] = day.checks.get(name, 0) + count
        if s.score is not None:
            day.min_score = s.score if day.min_score is None else min(day.min_score, s.score)
            total = weighted + s.score * s.rows_in
            day.score = round(total / day.rows_in, 3) if day.rows_in else s.score
        if s.threshold is not None:
            day.threshold = max(day.threshold or 0.0, s.threshold)
    return [days[k] for k in sorted(days)]
