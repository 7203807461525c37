"""Binary exports the stream reader cannot read (Avro, Excel; Parquet and ZIP, which are read as
objects of their own, with ranged reads) fail the file with a clear message. bzip2 and Zstandard
are read: see test_formats_compression."""

from __future__ import annotations

import io

import pytest

from segment_importer.read.formats import FileFormatError, open_records


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
