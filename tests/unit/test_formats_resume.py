"""Resuming an NDJSON read at a line: by a ranged read (plain) or by skipping content (gzip)."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_importer.read.byte_ranges import PrefixedBody
from segment_importer.read.formats import FileFormatError, ResumePoint, open_records


def export(lines: int) -> bytes:
    rows = []
    for number in range(1, lines + 1):
        if number % 13 == 0:
            rows.append("")  # blank lines count as lines
        elif number % 17 == 0:
            rows.append('{"broken": ')
        else:
            rows.append(json.dumps({"n": number, "text": "é" * (number % 5)}))
    return ("\ufeff" + "\r\n".join(rows) + "\r\n").encode()


def records_after(data: bytes, key: str, stop: int) -> tuple[list[tuple[int, object]], ResumePoint | None]:
    stream = open_records(io.BytesIO(data), key, max_record_bytes=4096)
    for record in stream:
        if record.number == stop:
            return [], stream.resume_point_after(stop)
    return [], None


def numbered(records: object) -> list[tuple[int, object, object]]:
    return [(r.number, r.fields, r.reason) for r in records]  # type: ignore[attr-defined]


@pytest.mark.parametrize("stop", [1, 2, 50, 233, 999])
def test_a_ranged_read_from_the_resume_point_yields_exactly_the_rest(stop: int) -> None:
    data = export(1000)
    everything = numbered(open_records(io.BytesIO(data), "x.ndjson"))
    _, point = records_after(data, "x.ndjson", stop)
    assert point is not None
    assert point.line == stop + 1
    rest = open_records(io.BytesIO(data[point.offset :]), "x.ndjson", resume=point, stream_at_resume=True)
    assert numbered(rest) == [entry for entry in everything if entry[0] > stop]


@pytest.mark.parametrize("stop", [1, 400, 998])
def test_gzip_resumes_by_skipping_the_decompressed_content(stop: int) -> None:
    data = gzip.compress(export(1000))
    everything = numbered(open_records(io.BytesIO(data), "x.ndjson.gz"))
    _, point = records_after(data, "x.ndjson.gz", stop)
    assert point is not None
    rest = open_records(io.BytesIO(data), "x.ndjson.gz", resume=point)
    assert numbered(rest) == [entry for entry in everything if entry[0] > stop]


def test_resume_points_cross_chunk_boundaries() -> None:
    line = json.dumps({"pad": "x" * 300}) + "\n"
    data = (line * 12_000).encode()  # several 1 MiB chunks
    for stop in (3400, 3500, 11_999):
        _, point = records_after(data, "x.ndjson", stop)
        assert point is not None
        assert point.offset == stop * len(line)


def test_a_csv_resume_needs_its_header_and_json_arrays_cannot_resume() -> None:
    with pytest.raises(FileFormatError):
        open_records(io.BytesIO(b"a,b\n1,2\n"), "x.csv", resume=ResumePoint(0, 5), stream_at_resume=True)
    with pytest.raises(FileFormatError):
        open_records(io.BytesIO(b'[{"a": 1}]'), "x.json", resume=ResumePoint(0, 5, 3), stream_at_resume=True)


def csv_export(rows: int, encoding: str = "utf-8") -> bytes:
    """A spreadsheet-like CSV with everything that moves offsets: a BOM, blank lines before
    the header, CRLF, quoted cells holding line breaks (and CRLFs), non-ASCII text, invalid
    bytes, blank rows, short rows and a line longer than the record limit."""
    lines = ["", "userId,event,properties.note"]
    for number in range(1, rows + 1):
        if number % 11 == 0:
            lines.append("")
        elif number % 13 == 0:
            lines.append("only-one-field")
        elif number % 17 == 0:
            lines.append(f"u{number},Long,{'y' * 5000}")
        else:
            note = f'"line one\r\nline {number}, ""quoted"""' if number % 3 == 0 else f"Café {number} ☕"
            lines.append(f"u{number},Viewed,{note}")
    text = "\r\n".join(lines) + "\r\n"
    data = text.encode(encoding, "replace")
    data = data.replace(b"u100,", b"u\xff100,")  # an invalid byte in one row
    return ("\ufeff".encode() if encoding == "utf-8" else b"") + data


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
@pytest.mark.parametrize("stop", [1, 2, 98, 100, 102, 104, 333, 399])
def test_a_csv_read_from_its_resume_point_yields_exactly_the_rest(encoding: str, stop: int) -> None:
    data = csv_export(400, encoding)
    read = {"csv_encoding": encoding, "max_record_bytes": 4096}
    everything = numbered(open_records(io.BytesIO(data), "x.csv", **read))
    stream = open_records(io.BytesIO(data), "x.csv", **read)
    point = next(stream.resume_point_after(r.number) for r in stream if r.number == stop)
    assert point is not None
    assert point.line == stop + 1
    assert data[point.offset - 2 : point.offset] == b"\r\n"
    header = data[: point.header_end]
    assert header.endswith(b"properties.note\r\n")
    rest = PrefixedBody(header, io.BytesIO(data[point.offset :]).read)  # what a ranged read gives
    resumed = open_records(rest, "x.csv", resume=point, stream_at_resume=True, **read)
    expected = [entry for entry in everything if entry[0] > stop]
    assert numbered(resumed) == expected
    compressed = gzip.compress(data)  # gzip: decompressed again, the header kept, the rest skipped
    assert numbered(open_records(io.BytesIO(compressed), "x.csv.gz", resume=point, **read)) == expected


def test_a_resumed_csv_read_resumes_again_at_the_same_offsets() -> None:
    """Offsets stay in the object's terms across parts, not the resumed stream's."""
    data = csv_export(300)
    first = open_records(io.BytesIO(data), "x.csv", max_record_bytes=4096)
    point = next(first.resume_point_after(r.number) for r in first if r.number == 100)
    assert point is not None
    rest = PrefixedBody(data[: point.header_end], io.BytesIO(data[point.offset :]).read)
    second = open_records(rest, "x.csv", resume=point, stream_at_resume=True, max_record_bytes=4096)
    again = next(second.resume_point_after(r.number) for r in second if r.number == 250)
    whole = open_records(io.BytesIO(data), "x.csv", max_record_bytes=4096)
    direct = next(whole.resume_point_after(r.number) for r in whole if r.number == 250)
    assert again == direct


def test_a_csv_in_a_multi_byte_encoding_has_no_resume_point() -> None:
    data = "userId,event\r\nu1,見た\r\nu2,x\r\n".encode("shift_jis")
    stream = open_records(io.BytesIO(data), "x.csv", csv_encoding="shift_jis")
    assert [stream.resume_point_after(r.number) for r in stream] == [None, None]


csv_cell = st.one_of(
    st.text(
        st.characters(codec="utf-8", blacklist_categories=("Cs",), blacklist_characters='",\r\n'), max_size=6
    ),
    st.sampled_from(
        ['"a,b"', '"say ""hi"""', '"two\nlines"', '"cr\r\nlf"', "5'11\"", '"open', "x" * 80, "\r"]
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.lists(csv_cell, min_size=1, max_size=3), min_size=1, max_size=20),
    newline=st.sampled_from(["\n", "\r\n"]),
    data=st.data(),
)
def test_every_csv_resume_point_gives_exactly_the_rest(
    rows: list[list[str]], newline: str, data: st.DataObject
) -> None:
    """Whatever the cells hold (line breaks in quotes, stray quotes, bare CRs, over-long
    lines), resuming after any record yields exactly the records after it."""
    content = ("a,b,c" + newline + newline.join(",".join(row) for row in rows) + newline).encode()
    read = {"max_record_bytes": 64}
    everything = numbered(open_records(io.BytesIO(content), "x.csv", **read))
    if not everything:
        return
    stop = data.draw(st.sampled_from([number for number, _, _ in everything]))
    stream = open_records(io.BytesIO(content), "x.csv", **read)
    point = next(stream.resume_point_after(r.number) for r in stream if r.number == stop)
    assert point is not None
    rest = PrefixedBody(content[: point.header_end], io.BytesIO(content[point.offset :]).read)
    resumed = open_records(rest, "x.csv", resume=point, stream_at_resume=True, **read)
    assert numbered(resumed) == [entry for entry in everything if entry[0] > stop]
