"""The read side's pure parts: key parsing (both layouts), times and ranges, roll-ups."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from tests.sinkkit import BASE_MS, trade
from worker.cli import app
from worker.config import Settings
from worker.lake import InvalidRangeError, Lake
from worker.lake.catalog import FileEntry, Summary, roll_up
from worker.lake.paths import parse_key
from worker.lake.quality import roll_up as quality_roll_up
from worker.lake.read import check_range, to_ms
from worker.records import DataType
from worker.sink.layout import BufferKey, Destination, file_paths, file_stem


@pytest.mark.parametrize("layout", ["default", "hive"])
@pytest.mark.parametrize("dest", list(Destination))
def test_parse_key_inverts_file_paths(layout: str, dest: Destination) -> None:
    key = BufferKey("binance", "BTC/USDT:USDT", DataType.OHLCV)
    stem = file_stem("binance", 3, 42, BASE_MS)
    paths = file_paths(key, date(2025, 11, 24), stem, layout, dest)  # type: ignore[arg-type]
    parsed = parse_key(paths.data)
    assert parsed is not None
    assert (parsed.day, parsed.path_symbol, parsed.data_type) == (
        date(2025, 11, 24),
        "BTC_USDT_USDT",
        DataType.OHLCV,
    )
    assert (parsed.exchange, parsed.destination, parsed.layout) == ("binance", dest, layout)
    assert parsed.sidecar == paths.sidecar


@pytest.mark.parametrize(
    "key", ["_metadata/BTC_USDT/trades/x.json", "2025/11/24/BTC/trades/bad.parquet", "_state/g/t/0"]
)
def test_parse_key_ignores_other_objects(key: str) -> None:
    assert parse_key(key) is None


def test_times_and_ranges() -> None:
    assert to_ms("2025-11-24T16:00:00Z", "start") == BASE_MS
    assert to_ms(datetime(2025, 11, 24, 16), "start") == BASE_MS  # naive = UTC
    assert to_ms(datetime(2025, 11, 24, 16, tzinfo=UTC), "start") == BASE_MS
    assert to_ms(date(2025, 11, 25), "end") == 1_764_028_800_000
    with pytest.raises(InvalidRangeError, match="ISO"):
        to_ms("yesterday", "start")
    with pytest.raises(InvalidRangeError, match="empty"):
        check_range(5, 5)
    with pytest.raises(InvalidRangeError, match="inverted"):
        check_range(6, 5)


def _entry(key: str, rows: int, score: float, checks: dict[str, int]) -> FileEntry:
    parsed = parse_key(key)
    assert parsed is not None
    summary = Summary(
        rows,
        BASE_MS,
        BASE_MS + rows,
        1,
        "BTC/USDT",
        "binance",
        score,
        score >= 95,
        95.0,
        rows,
        0,
        checks,
    )
    return FileEntry(parsed, 100, 0, summary)


def test_roll_ups_by_hand() -> None:
    stem = file_stem("binance", 0, 0, BASE_MS)
    stem2 = file_stem("binance", 0, 10, BASE_MS + 5)
    entries = [
        _entry(f"2025/11/24/BTC_USDT/trades/{stem}.parquet", 30, 100.0, {"validity": 0}),
        _entry(
            f"_quarantine/2025/11/24/BTC_USDT/trades/{stem2}.parquet", 10, 60.0, {"validity": 4}
        ),
    ]
    (row,) = roll_up(entries)
    assert (row.files, row.rows, row.quarantined, row.quarantined_rows) == (1, 30, 1, 10)
    assert row.min_score == 60.0
    assert row.mean_score == 90.0  # (30 x 100 + 10 x 60) / 40
    (day,) = quality_roll_up(entries)
    assert (day.files, day.quarantined, day.rows_in, day.checks) == (2, 1, 40, {"validity": 4})
    assert day.score == 90.0
    assert day.below()
    assert not day.below(89.0)


def test_cli_ls_quality_exit_code_and_hive_layout(tmp_path: Path) -> None:
    hive = Settings(sink={"layout": "hive"})
    with Lake.open(tmp_path, config=hive) as lake:
        lake.write(pa.Table.from_pylist([trade(i) for i in range(10)]), "trades", "binance")
        bad = [trade(100 + i, price=-1.0) for i in range(10)]
        lake.write(pa.Table.from_pylist(bad), "trades", "binance")
        got = lake.read("trades", "BTC/USDT", BASE_MS, BASE_MS + 1000, exchange="binance")
        assert [r["id"] for r in got.to_pylist()] == [str(i) for i in range(10)]
    runner = CliRunner()
    out = runner.invoke(app, ["ls", "--lake", str(tmp_path), "--format", "csv"])
    assert out.exit_code == 0, out.output
    assert "2025-11-24,binance,BTC/USDT,trades,1,10," in out.output
    out = runner.invoke(app, ["quality", "--lake", str(tmp_path), "--format", "json"])
    assert out.exit_code == 1  # the quarantined batch pulls the day to 50
    out = runner.invoke(
        app,
        [
            "read",
            "trade",
            "--from",
            "2025-11-24",
            "--to",
            "2025-11-25",
            "-o",
            str(tmp_path / "x.csv"),
            "--lake",
            str(tmp_path),
        ],
    )
    assert out.exit_code == 2
    assert "unknown data type 'trade'" in out.output
