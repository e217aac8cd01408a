"""Print what a local lake holds: files, rows per symbol and data type, quality, VWAP.

Usage: python scripts/lake_summary.py [LAKE_DIR]   (default ./lake)

Reads the Parquet files and their ``_metadata`` sidecars directly; the last
part is a DuckDB query over the trades files (one-minute VWAP per symbol).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import duckdb


def sidecars(lake: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((lake / "_metadata").rglob("*.json"))]


def print_files(lake: Path, metas: list[dict]) -> None:
    parquet = [p for p in lake.rglob("*.parquet") if "_quarantine" not in p.parts]
    quarantined = list((lake / "_quarantine").rglob("*.parquet"))
    size = sum(p.stat().st_size for p in parquet)
    print(f"\n== Lake {lake}: {len(parquet)} Parquet files, {size / 1024:.1f} KiB")
    print(f"   quarantined files: {len(quarantined)}   sidecars: {len(metas)}")


def print_rows(metas: list[dict]) -> None:
    rows: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for m in metas:
        key = (m["lineage"]["symbol"], m["lineage"]["data_type"])
        rows[key][0] += m["rows"]
        rows[key][1] += 1
        scores[key].append(m["quality"]["score"])
    print("\n== Rows per symbol and data type (quality score: min / mean over files)")
    print(f"   {'symbol':<12}{'data type':<12}{'rows':>8}{'files':>7}{'min':>8}{'mean':>8}")
    for (symbol, dt), (n, files) in sorted(rows.items()):
        s = scores[(symbol, dt)]
        print(f"   {symbol:<12}{dt:<12}{n:>8}{files:>7}{min(s):>8.1f}{sum(s) / len(s):>8.1f}")


VWAP = """
SELECT symbol,
       date_trunc('minute', "timestamp") AS minute,
       count(*) AS trades,
       round(sum(price * amount) / sum(amount), 4) AS vwap,
       round(sum(amount), 4) AS volume
FROM read_parquet(?, union_by_name = true)
GROUP BY ALL
ORDER BY symbol, minute
"""


def print_vwap(lake: Path) -> None:
    files = [str(p) for p in lake.glob("*/*/*/*/trades/*.parquet")]
    print("\n== DuckDB: one-minute VWAP per symbol (read_parquet over */trades/*.parquet)")
    if not files:
        print("   no trades files")
        return
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    result = con.execute(VWAP, [files]).fetchall()
    print(f"   {'symbol':<12}{'minute (UTC)':<22}{'trades':>8}{'vwap':>14}{'volume':>12}")
    for symbol, minute, trades, vwap, volume in result:
        print(f"   {symbol:<12}{minute:%Y-%m-%d %H:%M}      {trades:>8}{vwap:>14}{volume:>12}")


def main() -> int:
    lake = Path(sys.argv[1] if len(sys.argv) > 1 else "lake")
    if not lake.is_dir():
        print(f"no lake at {lake}", file=sys.stderr)
        return 1
    metas = sidecars(lake)
    print_files(lake, metas)
    print_rows(metas)
    print_vwap(lake)
    return 0


if __name__ == "__main__":
    sys.exit(main())
