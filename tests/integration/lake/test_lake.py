"""The lake's read side on the real S3 server and a local folder: values read back."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import S3Config
from tests.integration.sink.conftest import SinkLab, lab  # noqa: F401  # the sink fixture
from tests.sinkkit import BASE_MS, FACTORIES, as_lake_row, rows_of, trade
from worker.config import Settings
from worker.lake import (
    CorruptFileWarning,
    InvalidRangeError,
    Lake,
    LakeAccessError,
    LakeNotFoundError,
    NewerSchemaError,
    UnknownDataTypeError,
    UnknownExchangeError,
    UnknownSymbolError,
)
from worker.records import SPECS, DataType
from worker.sink.layout import DAY_MS

HOUR = 3_600_000


def _settings(s3: S3Config) -> Settings:
    return Settings(
        storage={
            "endpoint_url": s3.endpoint_url,
            "region": s3.region,
            "access_key_id": s3.access_key,
            "secret_access_key": s3.secret_key,
        }
    )


@pytest.fixture(params=["s3", "local"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lake]:
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_config")
        bucket = request.getfixturevalue("bucket")
        opened = Lake.open(f"s3://{bucket}/pre", config=_settings(s3))
    else:
        opened = Lake.open(tmp_path)
    with opened:
        yield opened


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return rows_of([table])


@pytest.mark.parametrize("dt", list(DataType))
def test_write_read_round_trip_every_type(lake: Lake, dt: DataType) -> None:
    sent = [FACTORIES[dt](i, symbol=f"S{i % 2}/USDT") for i in range(30)]
    result = lake.write(pa.Table.from_pylist(sent), dt, "binance")
    assert len(result.files) == 2
    assert result.rows == 30
    got = lake.read(dt, ["S0/USDT", "S1/USDT"], BASE_MS - DAY_MS, BASE_MS + 10 * DAY_MS)
    assert got.schema == SPECS[dt].arrow_schema
    want = sorted(sent, key=lambda r: r["timestamp"])
    assert _rows(got) == [as_lake_row(dt, r) for r in want]
    one = lake.read(
        dt,
        "S1/USDT",
        BASE_MS - DAY_MS,
        BASE_MS + DAY_MS,
        columns=["price"] if dt is DataType.TRADES else ["timestamp"],
    )
    assert one.num_rows == 15


def test_range_edges_day_boundary_and_pruning(lake: Lake) -> None:
    midnight = (BASE_MS // DAY_MS + 1) * DAY_MS  # 2025-11-25T00:00Z
    times = [midnight - 2, midnight - 1, midnight, midnight + 1, midnight + HOUR]
    recs = [trade(i, timestamp=t) for i, t in enumerate(times)]
    lake.write(pa.Table.from_pylist(recs), "trades", "binance")  # two files: two days
    got = lake.read("trades", "BTC/USDT", midnight - 1, midnight + 1)
    assert [r["timestamp"] for r in _rows(got)] == [midnight - 1, midnight]
    assert lake.last_read.files_opened == 2
    got = lake.read("trades", "BTC/USDT", "2025-11-25T00:00:00Z", "2025-11-25T00:00:00.001Z")
    assert [r["id"] for r in _rows(got)] == ["2"]
    # Path pruning: only the 25th's folder is listed; sidecar pruning: the hour file
    assert lake.last_read.files_listed == 1
    later = [trade(10 + i, timestamp=midnight + 5 * HOUR + i) for i in range(3)]
    lake.write(pa.Table.from_pylist(later), "trades", "binance")
    got = lake.read("trades", "BTC/USDT", midnight + 5 * HOUR, midnight + 6 * HOUR)
    assert [r["id"] for r in _rows(got)] == ["10", "11", "12"]
    assert lake.last_read.files_listed == 2
    assert lake.last_read.files_pruned_by_sidecar == 1
    assert lake.last_read.files_opened == 1


def test_quarantine_excluded_unless_asked_and_catalog_numbers(lake: Lake) -> None:
    good = [trade(i) for i in range(20)]
    bad = [trade(100 + i, price=-1.0 if i < 5 else 1.0) for i in range(10)]  # score 50
    lake.write(pa.Table.from_pylist(good), "trades", "binance")
    res = lake.write(pa.Table.from_pylist(bad), "trades", "binance")
    assert len(res.quarantined) == 1
    assert res.files == []
    assert lake.read("trades", "BTC/USDT", BASE_MS, BASE_MS + DAY_MS).num_rows == 20
    both = lake.read("trades", "BTC/USDT", BASE_MS, BASE_MS + DAY_MS, include_quarantine=True)
    assert both.num_rows == 30
    (row,) = lake.catalog("trades").to_pylist()
    assert (row["files"], row["rows"], row["quarantined"], row["quarantined_rows"]) == (
        1,
        20,
        1,
        10,
    )
    assert row["min_score"] == 50.0
    assert row["mean_score"] == round((100 * 20 + 50 * 10) / 30, 3)
    assert row["first_event_time"] == "2025-11-24T16:00:00.000+00:00"
    assert row["last_event_time"] == "2025-11-24T16:00:00.019+00:00"
    (day,) = lake.quality_rows("trades")
    assert day.checks["validity"] == 5
    assert day.rows_in == 30
    assert day.below()


def test_writing_twice_does_not_duplicate(lake: Lake) -> None:
    table = pa.Table.from_pylist([trade(i) for i in range(50)])
    first = lake.write(table, "trades", "binance")
    second = lake.write(table, "trades", "binance")
    assert first.files == second.files
    assert lake.read("trades", "BTC/USDT", BASE_MS, BASE_MS + DAY_MS).num_rows == 50
    assert lake.catalog().to_pylist()[0]["files"] == 1


def test_bad_inputs(lake: Lake) -> None:
    lake.write(pa.Table.from_pylist([trade(i) for i in range(5)]), "trades", "binance")
    with pytest.raises(UnknownDataTypeError, match="trades, orderbook"):
        lake.read("trade", "BTC/USDT", BASE_MS, BASE_MS + 1)
    with pytest.raises(UnknownSymbolError, match="ETH/USDT"):
        lake.read("trades", "ETH/USDT", BASE_MS, BASE_MS + 1)
    with pytest.raises(UnknownExchangeError, match="binance"):
        lake.read("trades", "BTC/USDT", BASE_MS, BASE_MS + 1, exchange="okx")
    with pytest.raises(InvalidRangeError, match="empty"):
        lake.read("trades", "BTC/USDT", BASE_MS, BASE_MS)
    with pytest.raises(InvalidRangeError, match="inverted"):
        lake.read("trades", "BTC/USDT", "2025-11-25", "2025-11-24")
    # a known symbol, a range without data: an empty table, not an error
    assert lake.read("trades", "BTC/USDT", "2020-01-01", "2020-01-02").num_rows == 0


def test_corrupt_file_warns_counts_and_returns_the_rest(lake: Lake) -> None:
    a = lake.write(pa.Table.from_pylist([trade(i) for i in range(5)]), "trades", "binance")
    lake.write(pa.Table.from_pylist([trade(1000 + i) for i in range(5)]), "trades", "binance")
    with lake.fs.open_output_stream(a.files[0]) as f:
        f.write(b"PAR1 this is not parquet at all")
    with pytest.warns(CorruptFileWarning, match=a.files[0].rsplit("/", 1)[1]):
        got = lake.read("trades", "BTC/USDT", BASE_MS, BASE_MS + DAY_MS)
    assert [r["id"] for r in _rows(got)] == [str(1000 + i) for i in range(5)]
    assert lake.last_read.files_corrupt == 1


def test_newer_schema_version_is_an_error(lake: Lake) -> None:
    res = lake.write(pa.Table.from_pylist([trade(i) for i in range(5)]), "trades", "binance")
    with lake.fs.open_input_stream(res.files[0]) as f:
        table = pq.read_table(pa.BufferReader(f.read()))
    meta = {**table.schema.metadata, b"ticklake.schema_version": b"2"}
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(meta), sink)
    with lake.fs.open_output_stream(res.files[0]) as f:
        f.write(sink.getvalue().to_pybytes())
    with pytest.raises(NewerSchemaError, match="version 2"):
        lake.read("trades", "BTC/USDT", BASE_MS, BASE_MS + DAY_MS)


def test_missing_bucket_and_wrong_credentials(s3_config: S3Config, bucket: str) -> None:
    with pytest.raises(LakeNotFoundError, match="does not exist"):
        Lake.open("s3://no-such-bucket-ticklake", config=_settings(s3_config))
    wrong = _settings(s3_config).storage.model_dump()
    wrong["secret_access_key"] = "wrong"
    with pytest.raises(LakeAccessError, match="access denied"):
        Lake.open(f"s3://{bucket}", config=Settings(storage=wrong)).catalog()


async def test_sink_round_trip_every_type(lab: SinkLab) -> None:  # noqa: F811
    sent = {}
    for dt in DataType:
        sent[dt] = [FACTORIES[dt](i, symbol=f"S{i % 2}/USDT") for i in range(40)]
        await lab.produce(dt, sent[dt])
    assert await lab.run(lab.settings(orderbook_depth=5, row_group_rows=8)) == 0
    settings = Settings(storage=lab.storage_config().model_dump())
    with Lake.open(config=settings) as lake, warnings.catch_warnings():
        warnings.simplefilter("error")
        for dt in DataType:
            got = lake.read(dt, None, BASE_MS, BASE_MS + DAY_MS)
            want = sorted(sent[dt], key=lambda r: r["timestamp"])
            assert _rows(got) == [as_lake_row(dt, r, depth=5) for r in want]
            # row groups of 8: one minute of the first candle reads one group per file
        cat = lake.catalog().to_pylist()
        assert {(r["symbol"], r["data_type"], r["rows"]) for r in cat} == {
            (f"S{k}/USDT", dt.value, 20) for k in range(2) for dt in DataType
        }
        got = lake.read("trades", "S0/USDT", BASE_MS, BASE_MS + 1)
        assert [r["id"] for r in _rows(got)] == ["0"]
        assert lake.last_read.row_groups_skipped == 2  # 20 rows in groups of 8
