"""Parquet exports: files pyarrow writes here, read a row group at a time through ranged reads.

Types become what a JSON export of the same table holds; record numbers are row positions; a
part resumes at a row group and a row in it; binary columns are refused by name; without
pyarrow the file fails with what to do.
"""

from __future__ import annotations

import datetime as dt
import io
import sys
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segment_importer.job import JobOptions
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.mapping.message_ids import file_identity
from segment_importer.read.formats import FileFormatError, open_records
from segment_importer.read.handle import BytesHandle
from segment_importer.read.parquet import PARQUET_LAYER_MISSING, decimal_value, iso_utc, parquet_records


def parquet_bytes(table: pa.Table, row_group_size: int | None = None) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size)
    return sink.getvalue()


class CountingHandle(BytesHandle):
    """Bytes, counting what ranged reads fetch (a reader that downloads the file shows here)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.fetched = 0
        self.sequential = 0

    def read(self, size: int = -1, /) -> bytes:
        data = super().read(size)
        self.sequential += len(data)
        return data

    def read_range(self, start: int, end: int) -> bytes:
        data = super().read_range(start, end)
        self.fetched += len(data)
        return data


def fields_of(data: bytes, **options: Any) -> list[dict[str, Any] | None]:
    return [record.fields for record in parquet_records(BytesHandle(data), **options)]


def test_nested_types_become_json_objects_and_arrays() -> None:
    struct = pa.struct([("page", pa.struct([("url", pa.string())])), ("tags", pa.list_(pa.string()))])
    table = pa.table(
        {
            "context": pa.array([{"page": {"url": "https://a.example/"}, "tags": ["x", None]}], struct),
            "traits": pa.array([[("plan", "pro"), ("seats", "5")]], pa.map_(pa.string(), pa.string())),
            "counts": pa.array([[(1, 10)]], pa.map_(pa.int32(), pa.int64())),
            "items": pa.array([[{"sku": "s1", "qty": 2}, {"sku": "s2", "qty": None}]]),
        }
    )
    (fields,) = fields_of(parquet_bytes(table))
    assert fields == {
        "context": {"page": {"url": "https://a.example/"}, "tags": ["x", None]},
        "traits": {"plan": "pro", "seats": "5"},
        "counts": {"1": 10},
        "items": [{"sku": "s1", "qty": 2}, {"sku": "s2", "qty": None}],
    }
    assert orjson.loads(orjson.dumps(fields)) == fields  # JSON all the way down


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("zone", [None, "UTC", "America/New_York", "+05:30"])
def test_timestamps_of_any_unit_and_zone_are_iso_utc(unit: str, zone: str | None) -> None:
    instant = dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.UTC)
    seconds = int(instant.timestamp())
    ticks = {"s": seconds, "ms": seconds * 1000 + 123, "us": (seconds * 1000 + 123) * 1000}
    ticks["ns"] = ticks["us"] * 1000 + 456  # nanoseconds have no Python type: cut, not refused
    table = pa.table({"timestamp": pa.array([ticks[unit]], pa.timestamp(unit, tz=zone))})
    (fields,) = fields_of(parquet_bytes(table))
    expected = "2023-11-14T22:13:20.000Z" if unit == "s" else "2023-11-14T22:13:20.123Z"
    assert fields == {"timestamp": expected}


def test_dates_times_durations_decimals_and_integers() -> None:
    table = pa.table(
        {
            "day": pa.array([dt.date(2020, 2, 29)], pa.date32()),
            "day64": pa.array([dt.date(1999, 12, 31)], pa.date64()),
            "at": pa.array([dt.time(1, 2, 3, 4000)], pa.time64("ns")),
            "took": pa.array([1_500_000_000], pa.duration("ns")),
            "price": pa.array([Decimal("19.90")], pa.decimal128(10, 2)),
            "whole": pa.array([Decimal("42.00")], pa.decimal128(10, 2)),
            "exact": pa.array([Decimal("123456789012345678.25")], pa.decimal128(20, 2)),
            "huge": pa.array([Decimal("1" * 30)], pa.decimal128(38, 0)),
            "id64": pa.array([2**63 - 1], pa.int64()),
            "u64": pa.array([2**64 - 1], pa.uint64()),
            "ratio": pa.array([0.25], pa.float32()),
            "flag": pa.array([True]),
        }
    )
    (fields,) = fields_of(parquet_bytes(table))
    assert fields == {
        "day": "2020-02-29",
        "day64": "1999-12-31",
        "at": "01:02:03.004000",
        "took": 1.5,
        "price": 19.9,
        "whole": 42,
        "exact": "123456789012345678.25",  # no float holds it: text, not a changed amount
        "huge": "1" * 30,  # beyond 64 bits: text, as no JSON encoder here writes it
        "id64": 2**63 - 1,
        "u64": 2**64 - 1,
        "ratio": 0.25,
        "flag": True,
    }


def test_nulls_are_absent_columns_and_kept_inside_values() -> None:
    table = pa.table(
        {
            "userId": pa.array([None, "u2"]),
            "anonymousId": pa.array(["a1", None]),
            "score": pa.array([float("nan"), None]),
            "props": pa.array([{"a": None, "b": 1}, None]),
        }
    )
    assert fields_of(parquet_bytes(table)) == [
        {"anonymousId": "a1", "props": {"a": None, "b": 1}},  # NaN has no JSON number: null, absent
        {"userId": "u2"},
    ]


def test_many_row_groups_number_rows_in_file_order() -> None:
    table = pa.table({"n": pa.array(range(1, 1001), pa.int64())})
    data = parquet_bytes(table, row_group_size=37)
    assert pq.ParquetFile(io.BytesIO(data)).metadata.num_row_groups == 28
    records = list(parquet_records(BytesHandle(data), batch_rows=10))
    assert [r.number for r in records] == list(range(1, 1001))
    assert [r.fields["n"] for r in records if r.fields] == list(range(1, 1001))


def _wide_table(groups: int, rows: int) -> bytes:
    """Incompressible text, so the file's bytes are its row groups' bytes."""
    values = [f"{i:08d}" + orjson.dumps(i * 7919).hex() * 12 for i in range(groups * rows)]
    return parquet_bytes(pa.table({"n": range(groups * rows), "text": values}), row_group_size=rows)


def test_the_object_is_read_by_ranges_never_whole() -> None:
    data = _wide_table(groups=40, rows=5000)
    handle = CountingHandle(data)
    records = iter(parquet_records(handle))
    first = [next(records) for _ in range(3)]
    assert [r.number for r in first] == [1, 2, 3]
    assert handle.sequential == 0
    assert handle.fetched < len(data) / 5, (handle.fetched, len(data))


def test_a_part_resumes_at_a_row_group_and_a_row_in_it() -> None:
    data = _wide_table(groups=12, rows=250)
    first = parquet_records(BytesHandle(data))
    seen = []
    for record in first:
        seen.append(record.number)
        if record.number == 1_337:  # row 87 of row group 5
            break
    point = first.resume_point_after(1_337)
    assert point is not None
    assert point.line == 1_338
    handle = CountingHandle(data)
    rest = [r.fields["n"] for r in parquet_records(handle, resume=point) if r.fields]
    assert rest == list(range(1_337, 3_000))  # n counts from 0: row 1,338 holds 1,337
    # the row groups before the one resumed in are not read: at most the footer and 7 groups
    assert handle.fetched < len(data) * 8 / 12 + (1 << 20)


def test_a_resume_past_the_last_row_reads_nothing() -> None:
    data = parquet_bytes(pa.table({"n": [1, 2]}))
    stream = parquet_records(BytesHandle(data))
    assert [r.number for r in stream] == [1, 2]
    assert list(parquet_records(BytesHandle(data), resume=stream.resume_point_after(2))) == []


def test_binary_columns_are_refused_by_name_unless_the_job_drops_them() -> None:
    table = pa.table({"userId": ["u1"], "blob": pa.array([b"\x00\x01"], pa.binary())})
    nested = pa.table({"userId": ["u1"], "ctx": pa.array([{"raw": b"\x00"}])})
    with pytest.raises(FileFormatError, match=r"column 'blob' holds binary data.*\"blob\": null"):
        parquet_records(BytesHandle(parquet_bytes(table)))
    with pytest.raises(FileFormatError, match=r"column 'ctx' holds binary data \(at ctx\.raw\)"):
        parquet_records(BytesHandle(parquet_bytes(nested)))
    assert fields_of(parquet_bytes(table), dropped_columns={"blob"}) == [{"userId": "u1"}]


def test_open_records_detects_parquet_and_reads_it_through_the_handle() -> None:
    data = parquet_bytes(pa.table({"userId": ["u1", "u2"], "event": ["A", "B"]}))
    stream = open_records(BytesHandle(data), "export.bin", dropped_columns={"event"})
    assert (stream.format, stream.compression) == ("parquet", "none")
    assert [r.fields for r in stream] == [{"userId": "u1"}, {"userId": "u2"}]


def test_parquet_without_ranged_reads_fails_with_what_to_do() -> None:
    """In a gzip file, or given as a plain stream (a ZIP member), there is nothing to seek."""
    data = parquet_bytes(pa.table({"userId": ["u1"]}))
    with pytest.raises(FileFormatError, match="ranged reads of an uncompressed object"):
        open_records(io.BytesIO(data), "export.parquet")


def test_a_damaged_parquet_file_fails_the_file() -> None:
    data = parquet_bytes(pa.table({"userId": ["u1"]}))
    with pytest.raises(FileFormatError, match="cannot be opened"):
        parquet_records(BytesHandle(data[:-12] + b"garbagePAR1"))


def test_without_pyarrow_the_file_fails_naming_the_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    data = parquet_bytes(pa.table({"userId": ["u1"]}))
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(FileFormatError) as raised:
        open_records(BytesHandle(data), "export.parquet")
    assert str(raised.value) == PARQUET_LAYER_MISSING
    assert "set EnableParquet=true" in PARQUET_LAYER_MISSING


def test_a_warehouse_table_maps_the_same_as_parquet_and_as_ndjson() -> None:
    """The same rows exported both ways give the same messages, messageIds included."""
    received = dt.datetime(2023, 3, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)
    rows = {
        "id": ["evt-1", "evt-2"],
        "anonymous_id": ["anon-1", None],
        "user_id": [None, "user-2"],
        "event": ["order_completed", "signed_up"],
        "event_text": ["Order Completed", "Signed Up"],
        "context_page_url": ["https://shop.example/cart", None],
        "context_ip": ["203.0.113.9", "198.51.100.7"],
        "revenue": [Decimal("19.99"), None],
        "received_at": [received, received],
        "timestamp": [received - dt.timedelta(seconds=3), received],
    }
    schema = pa.schema(
        [
            *(pa.field(name, pa.string()) for name in list(rows)[:7]),
            pa.field("revenue", pa.decimal128(12, 2)),
            pa.field("received_at", pa.timestamp("us", tz="UTC")),
            pa.field("timestamp", pa.timestamp("ms")),
        ]
    )
    parquet = [r.fields for r in parquet_records(BytesHandle(parquet_bytes(pa.table(rows, schema))))]
    ndjson = b"".join(
        orjson.dumps({k: _json(v) for k, v in zip(rows, values, strict=True) if v is not None}) + b"\n"
        for values in zip(*rows.values(), strict=True)
    )
    lines = [r.fields for r in open_records(io.BytesIO(ndjson), "export.ndjson")]
    assert parquet == lines

    def messages(records: list[dict[str, Any] | None], file_id: str) -> list[dict[str, Any]]:
        mapper = MessageMapper(JobOptions(), file_id, from_csv=False)
        return [mapper.map(number, fields or {}) for number, fields in enumerate(records, start=1)]

    from_parquet = messages(parquet, file_identity("etag-parquet", 1234))
    from_ndjson = messages(lines, file_identity("etag-ndjson", 999))
    assert from_parquet == from_ndjson
    assert from_parquet[0]["context"]["page"]["url"] == "https://shop.example/cart"
    assert from_parquet[0]["timestamp"] == "2023-03-01T11:59:57.250Z"
    assert len({m["messageId"] for m in from_parquet}) == 2


def _json(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, Decimal):
        return decimal_value(value)
    return value


def test_a_decimal_column_has_one_json_type_in_every_row() -> None:
    """QA F-low-6: a decimal(20, 2) column was a number in one row and text in the next, so a
    destination's schema saw two types. Wide decimals are text in every row; narrow ones
    (15 digits or fewer, always exact as a double) numbers in every row."""
    table = pa.table(
        {
            "amount": pa.array([Decimal("12.34"), Decimal("99999999999999999.99")], pa.decimal128(20, 2)),
            "price": pa.array([Decimal("12.34"), Decimal("9999999999999.99")], pa.decimal128(15, 2)),
        }
    )
    rows = fields_of(parquet_bytes(table))
    assert [row["amount"] for row in rows] == ["12.34", "99999999999999999.99"]
    assert [row["price"] for row in rows] == [12.34, 9999999999999.99]
