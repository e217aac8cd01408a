"""Bulk parsing at flush accepts and refuses exactly what ``records.decode`` does."""

from __future__ import annotations

from array import array
from typing import Any

import orjson
import pytest

from tests.sinkkit import FACTORIES, as_lake_row, rows_of, trade
from worker.records import SPECS, DataType, encode
from worker.sink.parse import parse_batch

KEY = ("binance", "BTC/USDT")


def parse(dt: DataType, values: list[bytes]) -> Any:
    return parse_batch(SPECS[dt], values, array("q", range(100, 100 + len(values))), KEY)


@pytest.mark.parametrize("dt", list(DataType))
def test_bulk_path_matches_decode(dt: DataType) -> None:
    recs = [FACTORIES[dt](i) for i in range(30)]
    recs[3] = {**recs[3], "collector_id": None}
    parsed = parse(dt, [encode(dt, r) for r in recs])
    assert parsed.rejected == []
    assert rows_of([parsed.table]) == [as_lake_row(dt, r, depth=10**6) for r in recs]
    assert parsed.offsets.to_pylist() == list(range(100, 130))
    assert parsed.table.schema.equals(SPECS[dt].arrow_schema, check_metadata=True)


def test_bad_messages_are_named_and_the_rest_kept() -> None:
    good = [trade(i) for i in range(4)]
    values = [
        encode(DataType.TRADES, good[0]),
        b"not json",
        encode(DataType.TRADES, {**good[1], "price": "1.5"}),  # wrong type
        encode(DataType.TRADES, good[1]),
        encode(DataType.TRADES, {**good[2], "symbol": "ETH/USDT"}),  # not this key
        encode(DataType.OHLCV, FACTORIES[DataType.OHLCV](1)),  # another type on this topic
        orjson.dumps({**orjson.loads(encode(DataType.TRADES, good[3])), "v": 2}),
        encode(DataType.TRADES, {**good[3], "timestamp": 1.5}),  # times are integers
        encode(DataType.TRADES, good[3]),
    ]
    parsed = parse(DataType.TRADES, values)
    assert rows_of([parsed.table]) == [good[0], good[1], good[3]]
    assert parsed.offsets.to_pylist() == [100, 103, 108]
    reasons = [(r.index, r.reason.value) for r in parsed.rejected]
    assert reasons == [
        (1, "not_json"),
        (2, "wrong_type"),
        (4, "key_mismatch"),
        (5, "unknown_schema"),
        (6, "unsupported_version"),
        (7, "wrong_type"),
    ]


def test_missing_optional_fields_are_null_and_missing_required_refused() -> None:
    body = orjson.loads(encode(DataType.TRADES, trade(1)))
    del body["side"], body["collector_id"]
    no_id = {k: v for k, v in body.items() if k != "id"}
    parsed = parse(DataType.TRADES, [orjson.dumps(body), orjson.dumps(no_id)])
    assert parsed.table.num_rows == 1
    assert parsed.table.column("side").to_pylist() == [None]
    assert [r.reason.value for r in parsed.rejected] == ["missing_field"]


def test_pretty_printed_message_still_parses() -> None:
    value = orjson.dumps(
        orjson.loads(encode(DataType.TRADES, trade(1))), option=orjson.OPT_INDENT_2
    )
    parsed = parse(DataType.TRADES, [value, encode(DataType.TRADES, trade(2))])
    assert rows_of([parsed.table]) == [trade(1), trade(2)]


def test_raw_blob_gives_back_every_message() -> None:
    from worker.sink.parse import Raw

    values = [b'{"a":1}', None, b"", b'{\n "pretty": true\n}', b"x"]
    raw = Raw.of(values)
    assert len(raw) == 5
    assert raw.has_none
    assert raw.values() == values
    plain = Raw.of([b"ab", b"c"])
    assert plain.blob == b"ab\nc"
    assert not plain.has_none
    assert plain.values() == [b"ab", b"c"]
