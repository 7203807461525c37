"""Text with a UTF-16 or UTF-32 byte order mark (Excel's "Unicode text", PowerShell's
`Out-File`) is decoded while it streams and read as the format it is: the same records as
the same text in UTF-8. The bytes are written in each encoding by Python's codecs."""

from __future__ import annotations

import codecs
import gzip
import io
from typing import Any

import pytest

from segment_importer.read.detect import plain_shape
from segment_importer.read.formats import FileFormatError, open_records
from segment_importer.read.opening import CHUNK
from segment_importer.track import reasons

NDJSON = '{"userId":"u1","event":"Café ☕","properties":{"clef":"𝄞"}}\n{"userId":"u2","event":"B"}\n'
JSON_ARRAY = '[{"userId": "u1", "event": "Café ☕"}, {"userId": "u2", "event": "𝄞"}]'
DOCUMENT = (
    '{\n  "batch": [\n    {"userId": "u1", "event": "Café"},\n    {"userId": "u2", "event": "B"}\n  ]\n}\n'
)
CSV = 'userId,event,properties.note\r\nu1,Café ☕,"a, quoted 𝄞"\r\nu2,B,x\r\n'
# Excel's "Save as: Unicode text (*.txt)": UTF-16 LE with its BOM, tab-separated, CRLF.
EXCEL_UNICODE_TEXT = "userId\tevent\r\nu1\tCafé ☕\r\nu2\t𝄞\r\n"
SAMPLES = {
    "events.ndjson": NDJSON,
    "events.json": JSON_ARRAY,
    "batch.json": DOCUMENT,
    "sheet.csv": CSV,
    "sheet.txt": EXCEL_UNICODE_TEXT,
}
# (codec, its byte order mark): Python's "utf-16"/"utf-32" codecs write the native order (LE).
ENCODINGS = {
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
    "utf-32-be": codecs.BOM_UTF32_BE,
    "utf-8": codecs.BOM_UTF8,
}


def encoded(text: str, encoding: str) -> bytes:
    return ENCODINGS[encoding] + text.encode(encoding)


def read(data: bytes, key: str, **options: Any) -> tuple[str, list[tuple[int, Any, Any]], list[str]]:
    stream = open_records(io.BytesIO(data), key, **options)
    records = [(r.number, r.fields, r.reason) for r in stream]
    return stream.format, records, stream.warnings


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("name", list(SAMPLES))
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_text_with_a_byte_order_mark_reads_as_its_utf8_text_does(
    encoding: str, name: str, compressed: bool
) -> None:
    data = encoded(SAMPLES[name], encoding)
    fmt, records, _ = read(gzip.compress(data) if compressed else data, name)
    expected_fmt, expected, _ = read(SAMPLES[name].encode(), name)
    assert (fmt, records) == (expected_fmt, expected)
    assert len(records) == 2
    assert all(reason is None for _, _, reason in records)


def test_the_excel_unicode_text_export_is_tab_separated_csv() -> None:
    fmt, records, warnings = read(encoded(EXCEL_UNICODE_TEXT, "utf-16-le"), "sheet.txt")
    assert fmt == "csv"
    assert [fields for _, fields, _ in records] == [
        {"userId": "u1", "event": "Café ☕"},
        {"userId": "u2", "event": "𝄞"},
    ]
    assert warnings == [
        "the file is UTF-16 LE text (by its byte order mark): it is read decoded to UTF-8;"
        " a later part re-reads it from the start"
    ]


def test_the_byte_order_mark_wins_over_the_jobs_encoding() -> None:
    """A job saying `cp1252` (or `utf-16`) for a file whose BOM says UTF-16: the text is
    already decoded, so the reader reads UTF-8."""
    data = encoded(CSV, "utf-16-le")
    expected = read(CSV.encode(), "sheet.csv")[1]
    assert read(data, "sheet.csv", csv_encoding="cp1252")[1] == expected
    assert read(data, "sheet.csv", csv_encoding="utf-16")[1] == expected


def test_a_large_file_decodes_across_chunks_that_end_inside_characters() -> None:
    """Three chunks' worth of UTF-16 with surrogate pairs at every alignment: every record
    is the UTF-8 file's (the incremental decoder carries half characters over)."""
    lines = [f'{{"userId":"u{n}","event":"{"𝄞" * (n % 7)}é{"x" * (n % 5)}"}}\n' for n in range(1, 60_000)]
    text = "".join(lines)
    data = encoded(text, "utf-16-le")
    assert len(data) > 3 * CHUNK
    fmt, records, _ = read(data, "big.ndjson")
    assert fmt == "ndjson"
    assert records == read(text.encode(), "big.ndjson")[1]
    assert len(records) == len(lines)


def test_text_that_does_not_decode_ends_the_file_after_the_records_before_it() -> None:
    good = encoded(NDJSON, "utf-16-le")
    lone_surrogate = b"\x00\xd8" + '"x"}\n'.encode("utf-16-le")
    _, records, _ = read(good + lone_surrogate, "events.ndjson")
    assert [(number, reason) for number, _, reason in records] == [
        (1, None),
        (2, None),
        (3, reasons.FILE_UNREADABLE),
    ]
    stream = open_records(io.BytesIO(good + lone_surrogate), "events.ndjson")
    detail = [r.detail for r in stream][-1] or ""
    assert "the UTF-16 LE text does not decode" in detail
    assert "iconv -f UTF-16 -t UTF-8" in detail


def test_a_cut_last_character_ends_the_file_as_unreadable() -> None:
    _, records, _ = read(encoded(NDJSON, "utf-16-le") + b"{", "events.ndjson")
    assert [reason for _, _, reason in records] == [None, None, reasons.FILE_UNREADABLE]


def test_decoded_text_is_never_cut_in_byte_ranges_nor_resumed_at_an_offset() -> None:
    """Its offsets are the UTF-8 text's, not the object's: no spans, and later parts re-read."""
    data = encoded(NDJSON * 50, "utf-16-le")
    assert plain_shape(data[:4096], "events.ndjson") is None
    stream = open_records(io.BytesIO(data), "events.ndjson")
    next(iter(stream))
    assert stream.resume_point_after(1) is None


@pytest.mark.parametrize(("codec", "order"), [("utf-16-le", "LE"), ("utf-16-be", "BE")])
def test_utf16_without_a_byte_order_mark_is_refused_saying_how_to_convert(codec: str, order: str) -> None:
    with pytest.raises(
        FileFormatError, match=f"UTF-16 {order} text without a byte order mark.*iconv -f UTF-16{order}"
    ):
        read(NDJSON.encode(codec), "events.ndjson")


def test_utf16_without_a_byte_order_mark_reads_as_csv_when_the_job_names_the_encoding() -> None:
    fmt, records, _ = read(CSV.encode("utf-16-le"), "sheet.csv", csv_encoding="utf-16-le")
    assert (fmt, records) == read(CSV.encode(), "sheet.csv")[:2]
