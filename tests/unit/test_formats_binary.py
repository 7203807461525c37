"""Binary exports the stream reader cannot read (Avro, Excel; Parquet and ZIP, which are read as
objects of their own, with ranged reads) fail the file with a clear message. bzip2 and Zstandard
are read: see test_formats_compression."""

from __future__ import annotations

import io

import pytest

from segment_importer.read.byte_ranges import CsvHeader, csv_header
from segment_importer.read.formats import FileFormatError, open_records, plain_shape


@pytest.mark.parametrize(
    ("head", "named"),
    [
        (b"PAR1\x15\x04\x15", "Parquet"),
        (b"Obj\x01\x04\x14avro", "Avro"),
        (b"PK\x03\x04\x14\x00", "ZIP"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1", "Excel"),
    ],
)
def test_binary_exports_fail_with_what_they_are(head: bytes, named: str) -> None:
    with pytest.raises(FileFormatError, match=named):
        open_records(io.BytesIO(head + b"\x00" * 100), "export.csv")


def test_semicolon_separated_spreadsheets_are_read() -> None:
    """Excel in locales with a decimal comma saves CSV with semicolons."""
    data = b"userId;event;timestamp;properties.price\r\nu1;Bought;2021-01-01T00:00:00Z;3,50\r\n"
    (record,) = open_records(io.BytesIO(data), "export.csv")
    assert record.fields == {
        "userId": "u1",
        "event": "Bought",
        "timestamp": "2021-01-01T00:00:00Z",
        "properties.price": "3,50",
    }


@pytest.mark.parametrize("delimiter", [";", ",", "\t", "|"])
def test_an_excel_sep_line_names_the_delimiter_and_is_not_the_header(delimiter: str) -> None:
    """Excel writes (and reads) a first line `sep=;`: the header is the line after it, and a
    quoted cell may still hold a line break. The byte-range survey finds the same header."""
    rows = [
        f"sep={delimiter}",
        delimiter.join(["userId", "event", "note"]),
        delimiter.join(["u1", "Bought", '"a\r\nb"']),
    ]
    data = "\ufeff".encode() + "\r\n".join([*rows, delimiter.join(["u2", "Sold", "c"])]).encode() + b"\r\n"
    records = list(open_records(io.BytesIO(data), "export.csv"))
    assert [record.fields for record in records] == [
        {"userId": "u1", "event": "Bought", "note": "a\r\nb"},
        {"userId": "u2", "event": "Sold", "note": "c"},
    ]
    plain = data.replace(b"\r\n", b"\n").replace(b'"a\nb"', b"a")
    header = csv_header(plain, delimiter, "utf-8")
    assert header == CsvHeader(2, plain.index(b"\n", plain.index(b"userId")) + 1)


@pytest.mark.parametrize(
    ("first_line", "header_prefix", "extension"),
    [  # QA2 O8: each was read as the header (missing_timestamp, csv_field_count, missing_user)
        (b'"sep=;"', b"", "csv"),
        (b"sep=; ", b"", "csv"),
        (b"sep=;\r", b"", "csv"),
        (b"sep=;;", b"", "csv"),
        (b"SEP=;", b"", "csv"),
        (b"sep=;", b"\xef\xbb\xbf", "csv"),  # a BOM after the sep line
        (b"\xef\xbb\xbfsep=;", b"", "csv"),  # and before it
        (b"sep=;", b"", "tsv"),  # the sep line wins over the extension
        (b"sep=", b"", "csv"),  # names none: the header line says
    ],
)
def test_excel_sep_line_variants_are_read_alike_sequentially_and_in_byte_ranges(
    first_line: bytes, header_prefix: bytes, extension: str
) -> None:
    delimiter = b"," if first_line == b"sep=" else b";"
    header = header_prefix + delimiter.join([b"userId", b"event", b"timestamp"])
    rows = [delimiter.join([f"u{i}".encode(), b"E", b"2021-03-04T05:06:07Z"]) for i in range(3)]
    data = b"\n".join([first_line, header, *rows]) + b"\n"
    key = f"export.{extension}"
    records = list(open_records(io.BytesIO(data), key))
    assert [record.fields for record in records] == [
        {"userId": f"u{i}", "event": "E", "timestamp": "2021-03-04T05:06:07Z"} for i in range(3)
    ]
    shape = plain_shape(data, key)
    assert shape is not None
    assert shape.delimiter == delimiter.decode()
    if b'"' not in first_line:  # a quoted line is never split in byte ranges (sequential)
        assert csv_header(data, shape.delimiter, "utf-8") == CsvHeader(2, data.index(b"\nu0") + 1)


@pytest.mark.parametrize(
    ("data", "says"),
    [  # QA2 O7: every row was one column, rejected missing_timestamp, and nothing named the sep line
        (b"sep=;\nuserId,event,timestamp\nu1,E,2021-03-04T05:06:07Z\n", "`sep=;` names a semicolon"),
        (b"sep=,\nuserId;event;timestamp\nu1;E;2021-03-04T05:06:07Z\n", "separated by a semicolon"),
    ],
)
def test_a_sep_line_the_header_does_not_fit_fails_the_file_naming_both(data: bytes, says: str) -> None:
    with pytest.raises(FileFormatError, match=says) as refused:
        list(open_records(io.BytesIO(data), "export.csv"))
    assert "correct the sep= line or remove it" in str(refused.value)
    assert "userId" not in str(refused.value)  # the header is never quoted
