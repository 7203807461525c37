"""Readers are plug-ins: one reader per `Format` in the registry, asked for properties instead
of format names being compared, reading any `ObjectHandle` (bytes, a file, S3)."""

from __future__ import annotations

import ast
import gzip
import io
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from segment_importer.read.formats import open_records
from segment_importer.read.handle import BytesHandle, FileHandle
from segment_importer.read.opening import open_content
from segment_importer.read.reader import Format
from segment_importer.read.registry import READERS, reader_for
from segment_importer.split.s3_objects import ObjectIdentity, S3ObjectHandle

LAYER = Path(__file__).resolve().parents[2] / "layers" / "segment_importer" / "segment_importer"
NDJSON = b'{"userId":"u1","event":"A"}\n{"userId":"u2","event":"B"}\n'
CSV = b"userId,event\nu1,A\nu2,B\n"
SNOWPLOW_TSV = (
    Path(__file__).resolve().parents[1] / "fixtures/vendors/snowplow/sdk/page-view.tsv"
).read_bytes()


def test_every_format_has_one_reader_that_names_itself() -> None:
    assert set(READERS) == set(Format)
    for fmt, reader in READERS.items():
        assert reader.format is fmt
        assert reader_for(fmt.value) is reader


def test_reader_properties_say_what_the_pipeline_may_do() -> None:
    ndjson, array, csv = (reader_for(f) for f in (Format.NDJSON, Format.JSON_ARRAY, Format.CSV))
    assert (ndjson.resumable, array.resumable, csv.resumable) == (True, False, True)
    assert (ndjson.span_splittable, array.span_splittable, csv.span_splittable) == (True, False, True)
    assert [r.cells_are_text for r in (ndjson, array, csv)] == [False, False, True]
    assert [r.has_header for r in (ndjson, array, csv)] == [False, False, True]


def _format_names_compared(tree: ast.AST) -> list[int]:
    names = {fmt.value for fmt in Format}
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        for side in [node.left, *node.comparators]
        for constant in ([side] if not isinstance(side, ast.Tuple | ast.List | ast.Set) else side.elts)
        if isinstance(constant, ast.Constant) and constant.value in names
    ]


def test_no_layer_module_compares_format_names() -> None:
    found = {
        str(path.relative_to(LAYER)): lines
        for path in sorted(LAYER.rglob("*.py"))
        if (lines := _format_names_compared(ast.parse(path.read_text())))
    }
    assert found == {}, f"ask the reader (registry.reader_for) instead: {found}"


def test_a_handle_of_bytes_reads_like_a_stream_and_by_range() -> None:
    handle = BytesHandle(NDJSON)
    assert handle.size == len(NDJSON)
    assert handle.read_range(1, 7) == NDJSON[1:7]
    records = list(open_records(handle, "a.ndjson"))
    assert [r.fields["userId"] for r in records if r.fields] == ["u1", "u2"]


def test_a_file_handle_reads_ranges_without_moving_the_sequential_read(tmp_path: Path) -> None:
    path = tmp_path / "events.csv.gz"
    path.write_bytes(gzip.compress(CSV))
    with FileHandle(path) as handle:
        assert handle.read_range(0, 2) == b"\x1f\x8b"
        content = open_content(handle, cap=1 << 16)
        assert content.handle is handle
        assert content.compression == "gzip"
        assert content.head.startswith(b"userId,event")
    with FileHandle(path) as handle:
        stream = open_records(handle, path.name)
        assert stream.format == "csv"
        assert stream.compression == "gzip"
        assert [r.number for r in stream] == [1, 2]


@mock_aws
def test_the_s3_handle_streams_a_range_and_reads_any_range() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="exports")
    etag = s3.put_object(Bucket="exports", Key="k.csv", Body=CSV)["ETag"].strip('"')
    handle = S3ObjectHandle(s3, "exports", "k.csv", ObjectIdentity(etag, len(CSV)), start=13)
    assert handle.size == len(CSV)
    assert handle.read_range(0, 13) == b"userId,event\n"
    assert handle.read() == b"u1,A\nu2,B\n"


def _parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"userId": ["u1"], "event": ["A"]}), sink)
    return sink.getvalue()


@pytest.mark.parametrize("fmt", list(Format))
def test_a_known_format_skips_detection(fmt: Format) -> None:
    samples = {
        Format.NDJSON: NDJSON,
        Format.JSON_ARRAY: b'[{"a": 1}]',
        Format.CSV: CSV,
        Format.SNOWPLOW_TSV: SNOWPLOW_TSV,
    }
    data = _parquet() if fmt is Format.PARQUET else samples[fmt]
    assert open_records(BytesHandle(data), "no-extension", known_format=fmt).format == fmt.value
