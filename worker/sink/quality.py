"""Per-batch quality checks, vectorised over Arrow, and the 0-100 score.

Each named check counts the rows that fail it (continuity counts gaps).
Score = 100 x (1 - min(1, sum(weight[c] x count[c]) / rows)), so a batch
where 2 % of rows have a null price scores 98. Exact duplicates (equal in
every column but ``received_at`` and ``collector_id``) are removed from the
file and reported; rows sharing an identity (trade id, ...) but differing
otherwise stay and count as ``duplicates``. A batch under its data type's
threshold goes to ``_quarantine/``, never away.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from worker.records import DataType, Spec

# Continuity (gaps in trade ids, missing candles) is reported but weighs 0 by
# default: some exchanges number trades across all symbols, so gaps are normal.
DEFAULT_WEIGHTS: dict[str, float] = {
    "completeness": 1.0,
    "duplicates": 1.0,
    "validity": 1.0,
    "ordering": 0.25,
    "clock_skew": 1.0,
    "continuity": 0.0,
}
_LINEAGE = ("received_at", "collector_id")
_TIMEFRAME = re.compile(r"^(\d+)([smhdwM])$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


@dataclass(slots=True)
class QualityReport:
    rows_in: int
    rows_out: int
    exact_duplicates_removed: int
    checks: dict[str, int]
    weights: dict[str, float]
    score: float
    threshold: float
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_batch(
    spec: Spec,
    table: pa.Table,
    *,
    now_ms: int,
    max_future_skew_s: float,
    threshold: float,
    weights: dict[str, float] | None = None,
) -> tuple[pa.Table, QualityReport]:
    """Check a batch (rows in offset order); return it without exact duplicates, and the report."""
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    rows_in = table.num_rows
    removed = duplicates = 0
    if len(_repeats(table, list(spec.identity))):  # exact duplicates repeat the identity too
        table, removed = remove_exact_duplicates(spec, table)
        duplicates = identity_duplicates(spec, table)
    ts = table.column("timestamp").cast(pa.int64())
    checks = {
        "completeness": completeness(spec, table),
        "duplicates": duplicates,
        "validity": validity(spec, table),
        "ordering": _count(pc.less(pc.pairwise_diff(ts.combine_chunks()), 0)),
        "clock_skew": _count(pc.greater(ts, int(now_ms + max_future_skew_s * 1000))),
        "continuity": continuity(spec, table),
    }
    penalty = sum(w.get(name, 1.0) * count for name, count in checks.items())
    score = round(100.0 * (1.0 - min(1.0, penalty / max(table.num_rows, 1))), 3)
    report = QualityReport(
        rows_in, table.num_rows, removed, checks, w, score, threshold, score >= threshold
    )
    return table, report


def _count(mask: pa.ChunkedArray | pa.Array) -> int:
    """Number of true values (nulls count as false)."""
    return int(pc.sum(pc.fill_null(mask, False).cast(pa.int64())).as_py() or 0)


def _any(masks: list[Any]) -> Any:
    out = None
    for mask in masks:
        filled = pc.fill_null(mask, False)
        out = filled if out is None else pc.or_(out, filled)
    return out


def completeness(spec: Spec, table: pa.Table) -> int:
    """Rows with a null in any field the data type needs to be useful."""
    mask = _any([pc.is_null(table.column(n)) for n in spec.complete])
    return 0 if mask is None else _count(mask)


def _repeats(table: pa.Table, keys: list[str]) -> pa.Array:
    """Indices of rows repeating an earlier row on ``keys`` (first occurrence kept)."""
    n = table.num_rows
    none = pa.array([], type=pa.int64())
    if n < 2:
        return none
    if len(keys) == 1 and pc.count_distinct(table.column(keys[0]), mode="all").as_py() == n:
        return none  # the common case, without building groups
    index = pa.array(range(n), type=pa.int64())
    indexed = table.select(keys).append_column("__i", index)
    firsts = indexed.group_by(keys, use_threads=False).aggregate([("__i", "min")])
    if firsts.num_rows == n:
        return none
    return index.filter(pc.invert(pc.is_in(index, value_set=firsts.column("__i_min"))))


def remove_exact_duplicates(spec: Spec, table: pa.Table) -> tuple[pa.Table, int]:
    """Drop rows equal to an earlier row in every column but lineage."""
    keys = [n for n in table.column_names if n not in _LINEAGE]
    if len(_repeats(table, list(spec.identity))) == 0:
        return table, 0  # exact duplicates also repeat the identity: none here
    if spec.data_type is DataType.ORDERBOOK:
        # Lists cannot be grouped on: compare rows in Python (rare: books repeat).
        seen: set[str] = set()
        drop: list[int] = []
        for i, row in enumerate(table.select(keys).to_pylist()):
            sig = repr(sorted(row.items()))
            if sig in seen:
                drop.append(i)
            seen.add(sig)
        dup = pa.array(drop, type=pa.int64())
    else:
        dup = _repeats(table, keys)
    if len(dup) == 0:
        return table, 0
    index = pa.array(range(table.num_rows), type=pa.int64())
    return table.filter(pc.invert(pc.is_in(index, value_set=dup))), len(dup)


def identity_duplicates(spec: Spec, table: pa.Table) -> int:
    """Rows sharing an identity (trade id; candle timeframe+open; book time+nonce)."""
    return len(_repeats(table, list(spec.identity)))


def validity(spec: Spec, table: pa.Table) -> int:
    """Rows with impossible values for their data type."""
    if spec.data_type is DataType.ORDERBOOK:
        return _book_invalid(table)
    col = table.column
    bad: list[Any] = []
    if spec.data_type is DataType.TRADES:
        bad = [pc.less_equal(col("price"), 0), pc.less_equal(col("amount"), 0)]
    elif spec.data_type is DataType.OHLCV:
        lo, hi = col("low"), col("high")
        bad = [pc.less_equal(col(n), 0) for n in ("open", "high", "low", "close")]
        bad += [pc.less(col("volume"), 0), pc.greater(lo, hi)]
        bad += [pc.greater(lo, col(n)) for n in ("open", "close")]
        bad += [pc.less(hi, col(n)) for n in ("open", "close")]
    elif spec.data_type is DataType.TICKER:
        bad = [pc.greater(col("bid"), col("ask")), pc.less_equal(col("last"), 0)]
    mask = _any(bad)
    return 0 if mask is None else _count(mask)


def _side(levels: pa.ChunkedArray, descending: bool) -> tuple[pa.Array, pa.Table]:
    """Rows with a bad level (price/amount <= 0, unsorted); (row, best price) per row."""
    arr = levels.combine_chunks()
    flat = pc.list_flatten(arr)
    parents = pc.list_parent_indices(arr)
    price, amount = flat.field("price"), flat.field("amount")
    level_bad = pc.invert(pc.and_(pc.greater(price, 0), pc.greater(amount, 0)))
    step = pc.pairwise_diff(price)
    same_row = pc.equal(pc.pairwise_diff(parents), 0)
    order_bad = pc.and_(
        same_row, pc.greater_equal(step, 0) if descending else pc.less_equal(step, 0)
    )
    bad_rows = parents.filter(_any([level_bad, order_bad]))
    top = pc.list_slice(arr, 0, 1)
    best = pa.table(
        {"row": pc.list_parent_indices(top), "best": pc.list_flatten(top).field("price")}
    )
    return bad_rows, best


def _book_invalid(table: pa.Table) -> int:
    if table.num_rows == 0:
        return 0
    bid_bad, bids = _side(table.column("bids"), descending=True)
    ask_bad, asks = _side(table.column("asks"), descending=False)
    tops = bids.join(asks, "row", right_suffix="_ask")
    crossed = tops.column("row").filter(pc.greater_equal(tops["best"], tops["best_ask"]))
    rows = pa.chunked_array([bid_bad, ask_bad, crossed.combine_chunks()], type=pa.int64())
    return len(pc.unique(rows))


def continuity(spec: Spec, table: pa.Table) -> int:
    """Gaps: in numeric trade ids, or between candles of one timeframe."""
    if table.num_rows < 2:
        return 0
    if spec.data_type is DataType.TRADES:
        try:
            ids = pc.cast(table.column("id"), pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return 0  # non-numeric ids: nothing to say
        return _gaps(ids, 1)
    if spec.data_type is DataType.OHLCV:
        return _candle_gaps(table)
    return 0


def _gaps(values: Any, step: int) -> int:
    """Jumps larger than ``step`` between consecutive distinct sorted values."""
    uniq = pc.unique(values.combine_chunks() if hasattr(values, "combine_chunks") else values)
    ordered = pc.array_sort_indices(uniq)
    return _count(pc.greater(pc.pairwise_diff(uniq.take(ordered)), step))


def _candle_gaps(table: pa.Table) -> int:
    gaps = 0
    for frame in pc.unique(table.column("timeframe")).to_pylist():
        m = _TIMEFRAME.match(str(frame))
        if m is None or m.group(2) == "M":
            continue  # months have no fixed length
        step = int(m.group(1)) * _UNIT_MS[m.group(2)]
        sel = pc.equal(table.column("timeframe"), frame)
        gaps += _gaps(table.filter(sel).column("timestamp").cast(pa.int64()), step)
    return gaps
