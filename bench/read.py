"""Read-side benchmark: lake.read vs pyarrow.dataset vs DuckDB, and `ticklake ls`.

Builds a lake of DAYS x SYMBOLS x trades on the S3 server (sink-sized files:
one per symbol-day, plus SMALL_SYMBOLS symbols with SMALL_FILES small files
per day, as `max_age_s: 60` makes for quiet symbols), then side by side in one
run: one symbol over one hour and over one day through lake.read, against
(a) pyarrow.dataset over the whole prefix with a filter and (b) DuckDB
read_parquet over a glob of a local copy (DuckDB's httpfs cannot be
installed here). Prints wall time, CPU seconds of the process tree, files
opened and bytes read. Sizes: environment variables below.

    source .services/env && .venv/bin/python bench/read.py
"""

# ruff: noqa: B023  # the lambdas run at once, inside their loop iteration
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from worker.config import Settings
from worker.lake import Lake
from worker.lake.write import _run, _store_all, encode_symbol, messages
from worker.records import DataType

DAYS = int(os.environ.get("BENCH_DAYS", "3"))
SYMBOLS = int(os.environ.get("BENCH_SYMBOLS", "200"))
ROWS = int(os.environ.get("BENCH_ROWS_PER_DAY", "2000"))
SMALL_SYMBOLS = int(os.environ.get("BENCH_SMALL_SYMBOLS", "1"))
SMALL_FILES = int(os.environ.get("BENCH_SMALL_FILES", "1400"))
SMALL_DAYS = int(os.environ.get("BENCH_SMALL_DAYS", "1"))
DAY0 = 1_764_028_800_000  # 2025-11-25T00:00Z
DAY = 86_400_000


def cpu() -> float:
    me = psutil.Process()
    t = me.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def trades(symbol: str, start: int, n: int, step: int, first_id: int) -> pa.Table:
    ids = range(first_id, first_id + n)
    return pa.table(
        {
            "exchange": ["binance"] * n,
            "symbol": [symbol] * n,
            "id": [str(i) for i in ids],
            "timestamp": [start + k * step for k in range(n)],
            "side": ["buy" if i % 2 else "sell" for i in ids],
            "price": [100.0 + (i % 977) / 100 for i in ids],
            "amount": [0.5 + (i % 31) / 100 for i in ids],
            "cost": [50.0] * n,
            "taker_or_maker": ["taker"] * n,
            "collector_id": ["bench"] * n,
        }
    )


def build(settings: Settings) -> None:
    t0 = time.perf_counter()
    files: list[Any] = []
    for s in range(SYMBOLS):
        sym = f"S{s:03d}/USDT"
        small = s < SMALL_SYMBOLS
        for d in range(DAYS):
            if small and d < SMALL_DAYS:
                per = max(1, ROWS // SMALL_FILES)
                for f in range(SMALL_FILES):
                    start = DAY0 + d * DAY + f * (DAY // SMALL_FILES)
                    t = trades(sym, start, per, 1000, d * 10**7 + f * per)
                    files += encode_symbol(
                        DataType.TRADES, "binance", sym, messages(DataType.TRADES, t), settings.sink
                    )[0]
            else:
                t = trades(sym, DAY0 + d * DAY, ROWS, DAY // ROWS, d * 10**7)
                files += encode_symbol(
                    DataType.TRADES, "binance", sym, messages(DataType.TRADES, t), settings.sink
                )[0]
        if len(files) > 2000:
            _run(_store_all(settings.storage, files, 32))
            files = []
    _run(_store_all(settings.storage, files, 32))
    print(f"built the lake in {time.perf_counter() - t0:.1f} s")


def timed(label: str, fn: Any) -> Any:
    c0, t0 = cpu(), time.perf_counter()
    out = fn()
    print(f"  {label:<44} {time.perf_counter() - t0:7.3f} s wall {cpu() - c0:7.3f} CPU-s", end="")
    return out


def main() -> None:
    bucket = f"bench-read-{uuid.uuid4().hex[:8]}"
    env = os.environ
    endpoint = env["S3_ENDPOINT_URL"]
    s3 = pafs.S3FileSystem(
        access_key=env["AWS_ACCESS_KEY_ID"],
        secret_key=env["AWS_SECRET_ACCESS_KEY"],
        endpoint_override=endpoint.split("://")[1],
        scheme=endpoint.split("://")[0],
        region="us-east-1",
        allow_bucket_creation=True,
        allow_bucket_deletion=True,
    )
    s3.create_dir(bucket)
    url = f"s3://{bucket}/lake"
    settings = Settings(storage={"url": url, "endpoint_url": endpoint})
    build(settings)
    local = Path(f"/tmp/{bucket}")
    pafs.copy_files(
        f"{bucket}/lake",
        str(local),
        source_filesystem=s3,
        destination_filesystem=pafs.LocalFileSystem(),
    )
    n_files = sum(1 for _ in local.rglob("*.parquet"))
    print(
        f"{DAYS} days x {SYMBOLS} symbols, {n_files} Parquet files; "
        f"{SMALL_SYMBOLS} symbol(s) with {SMALL_FILES} files on {SMALL_DAYS} day(s)"
    )

    for label, extra in (("cold (builds the digests)", []), ("warm", [])):
        c0, t0 = cpu(), time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "worker", "ls", "--lake", url, "-f", "json", *extra],
            check=True,
            capture_output=True,
        )
        print(
            f"ticklake ls, whole lake, {label}: {time.perf_counter() - t0:.2f} s wall, "
            f"{cpu() - c0:.2f} CPU-s"
        )

    cases = [("S000/USDT", "small files"), (f"S{SYMBOLS - 1:03d}/USDT", "one file per day")]
    for sym, kind in cases:
        for span, length in (("one hour", 3_600_000), ("one day", DAY)):
            start, end = DAY0 + 12 * 3_600_000 if length < DAY else DAY0, 0
            end = start + length
            print(f"{sym} ({kind}), {span}:")
            with Lake.open(url, config=settings) as lake:
                t = timed("lake.read", lambda: lake.read("trades", sym, start, end))
                st = lake.last_read
                print(
                    f" {t.num_rows:6d} rows, {st.files_opened} files opened, {st.bytes_read} bytes"
                )
                t = timed(
                    "lake.read again (digests warm)", lambda: lake.read("trades", sym, start, end)
                )
                print(f" {t.num_rows:6d} rows, {lake.last_read.files_opened} files opened")
            root = pafs.SubTreeFileSystem(f"{bucket}/lake", s3)
            flt = (
                (pc.field("symbol") == sym)
                & (pc.field("timestamp") >= pa.scalar(start, pa.timestamp("ms", "UTC")))
                & (pc.field("timestamp") < pa.scalar(end, pa.timestamp("ms", "UTC")))
            )

            def dataset() -> pa.Table:
                d = ds.dataset("", filesystem=root, format="parquet")
                return d.to_table(filter=flt)

            t = timed("(a) pyarrow.dataset, whole prefix, filter", dataset)
            print(f" {t.num_rows:6d} rows, {n_files} files opened (every footer), bytes n/a")
            q = (
                f"select * from read_parquet('{local}/[0-9]*/**/*.parquet') where symbol = '{sym}' "
                f"and timestamp >= epoch_ms({start}) and timestamp < epoch_ms({end})"
            )
            t = timed("(b) DuckDB read_parquet, local glob", lambda: duckdb.sql(q).to_arrow_table())
            print(f" {t.num_rows:6d} rows, {n_files} files globbed, bytes n/a")
    s3.delete_dir(bucket)


if __name__ == "__main__":
    main()
