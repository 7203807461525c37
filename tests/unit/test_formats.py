"""Streaming readers: real bytes in, SourceRecords out."""

from __future__ import annotations

import gzip
import io
import random
import re
import tracemalloc
import zlib
from pathlib import Path

import orjson
import pytest

from segment_importer.read.formats import FileFormatError, RecordStream, open_records
from segment_importer.read.records import RAW_EXCERPT_CHARS, SourceRecord
from segment_importer.track.reasons import REASONS

SECRET = "jane.doe@example.com"  # stands for personal data: must never reach detail or messages


class BodyLike:
    """Like botocore's StreamingBody: read(amt) and nothing else; short reads on purpose."""

    def __init__(self, data: bytes, most: int = 7) -> None:
        self._data = data
        self._pos = 0
        self._most = most
        self.bytes_read = 0

    def read(self, amt: int | None = None) -> bytes:
        size = self._most if amt is None else min(amt, self._most)
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        self.bytes_read += len(chunk)
        return chunk


class LazyStream:
    """A large stream made on demand from (piece, repeat) parts, never held whole."""

    def __init__(self, *parts: tuple[bytes, int]) -> None:
        self._parts = list(parts)
        self.bytes_read = 0

    def read(self, amt: int) -> bytes:
        out = bytearray()
        while self._parts and len(out) < amt:
            piece, repeat = self._parts[0]
            take = min(repeat, max(1, (amt - len(out)) // len(piece)))
            out += piece * take
            if take == repeat:
                self._parts.pop(0)
            else:
                self._parts[0] = (piece, repeat - take)
        self.bytes_read += len(out)
        return bytes(out)


def records(data: bytes, key: str = "export", **kwargs: int) -> list[SourceRecord]:
    return check(list(open_records(io.BytesIO(data), key, **kwargs)))


def check(recs: list[SourceRecord]) -> list[SourceRecord]:
    """Invariants every reader keeps, checked on every test's output."""
    numbers = [r.number for r in recs]
    assert numbers == sorted(set(numbers)), numbers
    for r in recs:
        assert (r.fields is None) != (r.reason is None)
        if r.reason is not None:
            assert r.reason in REASONS
            assert r.detail
            assert SECRET not in r.detail
        else:
            assert isinstance(r.fields, dict)
            assert r.detail is None
            assert r.raw is None
    assert all(r.reason != "file_unreadable" for r in recs[:-1])
    return recs


def summary(recs: list[SourceRecord]) -> list[tuple[int, object]]:
    return [(r.number, r.fields if r.reason is None else r.reason) for r in recs]


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def ndjson(*objs: object) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objs)


# --- detection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key", "fmt"),
    [
        (b'{"a": 1}\n', "x.ndjson", "ndjson"),
        (b'{"a": 1}\n', "mixpanel-export.json", "ndjson"),
        (b'[{"a": 1}]', "x.json", "json_array"),
        (b'[{"a": 1}]', "x.csv", "json_array"),  # content wins over the extension
        (b"a,b\n1,2\n", "x.json", "csv"),
        (b"a,b\n1,2\n", "x", "csv"),
        (b"  \n\t\n[]", "x", "json_array"),
        (b"\xef\xbb\xbf  [1]", "x", "json_array"),
        (b"", "x.csv", "csv"),
        (b"", "x.tsv.gz", "csv"),
        (b"", "x.json", "ndjson"),
        (b"\n\n", "x", "ndjson"),
    ],
)
def test_format_is_detected_from_content(data: bytes, key: str, fmt: str) -> None:
    for blob, compression in ((data, "none"), (gz(data), "gzip")):
        stream = open_records(io.BytesIO(blob), key)
        assert (stream.format, stream.compression) == (fmt, compression)
        check(list(stream))


def test_gzip_is_detected_by_magic_not_extension() -> None:
    data = ndjson({"a": 1})
    assert open_records(io.BytesIO(gz(data)), "x.ndjson").compression == "gzip"
    plain = open_records(io.BytesIO(data), "x.ndjson.gz")
    assert plain.compression == "none"
    assert summary(check(list(plain))) == [(1, {"a": 1})]


def test_record_stream_is_iterable_once() -> None:
    stream = open_records(io.BytesIO(ndjson({"a": 1})), "x")
    assert isinstance(stream, RecordStream)
    assert len(list(stream)) == 1
    with pytest.raises(RuntimeError, match="once"):
        iter(stream)


def test_max_record_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        open_records(io.BytesIO(b""), "x", max_record_bytes=0)


# --- NDJSON -------------------------------------------------------------------------------


def test_ndjson_plain_and_gzip() -> None:
    data = ndjson({"type": "track", "n": 1}, {"type": "identify", "traits": {"x": [1, 2.5, None]}})
    expected = [(1, {"type": "track", "n": 1}), (2, {"type": "identify", "traits": {"x": [1, 2.5, None]}})]
    assert summary(records(data)) == expected
    assert summary(records(gz(data), "x.ndjson.gz")) == expected


def test_ndjson_multi_member_gzip() -> None:
    data = gz(ndjson({"a": 1}, {"a": 2})) + gz(ndjson({"a": 3})) + gz(b"") + gz(ndjson({"a": 4}))
    assert summary(records(data)) == [(1, {"a": 1}), (2, {"a": 2}), (3, {"a": 3}), (4, {"a": 4})]


def test_ndjson_numbers_are_physical_lines_with_blank_lines_skipped() -> None:
    data = b'\n{"a": 1}\n\n   \n\t\r\n{"a": 2}\n\n'
    assert summary(records(data)) == [(2, {"a": 1}), (6, {"a": 2})]


def test_ndjson_bom_crlf_and_missing_final_newline() -> None:
    data = b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}\r\n{"a": 3}'
    assert summary(records(data)) == [(1, {"a": 1}), (2, {"a": 2}), (3, {"a": 3})]
    assert summary(records(gz(data))) == [(1, {"a": 1}), (2, {"a": 2}), (3, {"a": 3})]


def test_ndjson_bad_lines_are_rejected_and_good_ones_still_come() -> None:
    data = (
        b'{"a": 1}\n'
        + f'{{"email": "{SECRET}", oops}}\n'.encode()
        + b'{"a": 3}\n'
        + b'{"name": "caf\xe9"}\n'  # latin-1, not UTF-8
        + b"[1, 2]\n"
        + b'"just a string"\n'
        + b'{"a": 7}\n'
    )
    recs = records(data)
    assert summary(recs) == [
        (1, {"a": 1}),
        (2, "invalid_json"),
        (3, {"a": 3}),
        (4, "invalid_utf8"),
        (5, "not_an_object"),
        (6, "not_an_object"),
        (7, {"a": 7}),
    ]
    assert SECRET in (recs[1].raw or "")
    assert "line 2" in (recs[1].detail or "")
    assert recs[3].raw == '{"name": "caf\ufffd"}'
    assert recs[4].raw == "[1, 2]"


def test_ndjson_raw_excerpt_is_bounded() -> None:
    data = b'{"a": "' + b"x" * (3 * RAW_EXCERPT_CHARS) + b"\n"  # unterminated string
    (rec,) = records(data)
    assert rec.reason == "invalid_json"
    assert len(rec.raw or "") == RAW_EXCERPT_CHARS


def test_ndjson_oversized_line_is_skipped_and_later_records_come() -> None:
    big = orjson.dumps({"blob": "x" * 50_000})
    data = ndjson({"a": 1}) + big + b"\n" + ndjson({"a": 3}, {"a": 4})
    recs = records(data, max_record_bytes=1000)
    assert summary(recs) == [(1, {"a": 1}), (2, "record_too_large"), (3, {"a": 3}), (4, {"a": 4})]
    assert recs[1].raw == big[:RAW_EXCERPT_CHARS].decode()
    assert "1000" in (recs[1].detail or "")
    # The same through gzip and through a stream that returns a few bytes at a time.
    assert summary(records(gz(data), max_record_bytes=1000)) == summary(recs)
    body = BodyLike(data, most=333)
    assert summary(check(list(open_records(body, "x", max_record_bytes=1000)))) == summary(recs)


def test_ndjson_line_at_the_limit_is_accepted() -> None:
    line = orjson.dumps({"k": "x" * 92})
    assert len(line) == 100
    data = line + b"\r\n" + line + b"x\n" + line
    assert [r.reason for r in records(data, max_record_bytes=100)] == [None, "record_too_large", None]


def test_ndjson_oversized_line_memory_stays_flat() -> None:
    size = 32 << 20
    parts = [(b'{"a": 1}\n', 1), (b'{"b": "', 1), (b"x" * 4096, size // 4096), (b'"}\n{"c": 3}\n', 1)]
    stream = LazyStream(*parts)
    tracemalloc.start()
    try:
        recs = check(list(open_records(stream, "big.ndjson", max_record_bytes=1000)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary(recs) == [(1, {"a": 1}), (2, "record_too_large"), (3, {"c": 3})]
    assert stream.bytes_read > size
    assert peak < 8 << 20, peak


def test_ndjson_large_file_memory_stays_flat() -> None:
    line = orjson.dumps({"type": "track", "event": "Viewed", "userId": "u1", "properties": {"n": 1}}) + b"\n"
    stream = LazyStream((line, 400_000))  # ~30 MB
    tracemalloc.start()
    try:
        count = sum(1 for r in open_records(stream, "x.ndjson") if r.fields)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 400_000
    assert peak < 16 << 20, peak


def test_ndjson_named_json_is_read_line_by_line() -> None:
    data = ndjson({"event": "A", "properties": {"time": 1}}, {"event": "B", "properties": {"time": 2}})
    stream = open_records(io.BytesIO(data), "mixpanel/2024-01-01.json")
    assert stream.format == "ndjson"
    assert [r.fields["event"] for r in check(list(stream)) if r.fields] == ["A", "B"]


def test_ndjson_broken_first_line_stays_ndjson() -> None:
    data = b'{"a": "unterminated\n{"b": 2}\n{"c": 3}\n'
    stream = open_records(io.BytesIO(data), "x.json")
    assert stream.format == "ndjson"
    assert summary(check(list(stream))) == [(1, "invalid_json"), (2, {"b": 2}), (3, {"c": 3})]


def test_truncated_gzip_yields_what_it_can_then_file_unreadable() -> None:
    data = ndjson(*({"n": i, "pad": "y" * 50} for i in range(2000)))
    cut = gz(data)[:-200]
    salvaged = zlib.decompressobj(31).decompress(cut).count(b"\n")
    recs = records(cut, "x.ndjson.gz")
    assert [r.fields for r in recs[:-1]] == [{"n": i, "pad": "y" * 50} for i in range(salvaged)]
    last = recs[-1]
    assert (last.number, last.reason, last.raw) == (salvaged + 1, "file_unreadable", None)
    assert "truncated" in (last.detail or "")


def test_corrupt_gzip_yields_file_unreadable() -> None:
    blob = bytearray(gz(ndjson(*({"n": i} for i in range(5000)))))
    blob[len(blob) // 2 : len(blob) // 2 + 8] = b"\xff" * 8
    recs = records(bytes(blob))
    assert recs[-1].reason == "file_unreadable"
    assert "corrupt" in (recs[-1].detail or "")


def test_gzip_with_trailing_garbage_yields_everything_then_file_unreadable() -> None:
    recs = records(gz(ndjson({"a": 1}, {"a": 2})) + SECRET.encode())
    assert summary(recs) == [(1, {"a": 1}), (2, {"a": 2}), (3, "file_unreadable")]


@pytest.mark.parametrize("key", ["x.csv", "x.json", "x"])
def test_gzip_magic_without_a_gzip_stream_is_unreadable(key: str) -> None:
    assert summary(records(b"\x1f\x8b" + SECRET.encode(), key)) == [(1, "file_unreadable")]


def test_empty_gzip_yields_nothing() -> None:
    assert records(gz(b"")) == []


# --- JSON array ---------------------------------------------------------------------------


def test_json_array_plain_and_gzip() -> None:
    data = b'[\n  {"a": 1, "f": 1.5, "big": 9223372036854775807},\n  {"b": [true, null]}\n]\n'
    expected = [(1, {"a": 1, "f": 1.5, "big": 9223372036854775807}), (2, {"b": [True, None]})]
    assert summary(records(data, "x.json")) == expected
    assert summary(records(gz(data), "x.json.gz")) == expected
    assert summary(records(gz(data[:20]) + gz(data[20:]), "x.json.gz")) == expected
    assert type(records(data)[0].fields["f"]) is float  # type: ignore[index]


def test_json_array_integer_beyond_64_bits_stops_the_file() -> None:
    # A known limit of ijson's C backend with use_float=True (NDJSON has no such limit).
    recs = records(b'[{"a": 1}, {"id": 12345678901234567890}, {"a": 3}]')
    assert summary(recs) == [(1, {"a": 1}), (2, "file_unreadable")]
    assert recs[-1].detail == "JSON array breaks after record 1: parse error: integer overflow"


def test_json_array_bom_and_empty() -> None:
    assert summary(records(b'\xef\xbb\xbf[{"a": 1}]')) == [(1, {"a": 1})]
    assert records(b"[]") == []
    assert records(b"  [ ]  \n") == []


def test_json_array_non_objects_are_rejected() -> None:
    recs = records(b'[{"a": 1}, 2, "s", [3], null, {"b": 2}]')
    assert summary(recs) == [
        (1, {"a": 1}),
        (2, "not_an_object"),
        (3, "not_an_object"),
        (4, "not_an_object"),
        (5, "not_an_object"),
        (6, {"b": 2}),
    ]
    assert [r.raw for r in recs[1:5]] == ["2", '"s"', "[3]", "null"]


def test_truncated_json_array_stops_with_file_unreadable() -> None:
    recs = records(f'[{{"a": 1}}, {{"a": 2}}, {{"email": "{SECRET}'.encode())
    assert summary(recs) == [(1, {"a": 1}), (2, {"a": 2}), (3, "file_unreadable")]
    assert recs[-1].detail is not None
    assert recs[-1].detail.startswith("JSON array breaks after record 2")


def test_json_array_syntax_error_stops_with_file_unreadable() -> None:
    recs = records(f'[{{"a": 1}}, {{"email": {SECRET}}}, {{"a": 3}}]'.encode())
    assert summary(recs) == [(1, {"a": 1}), (2, "file_unreadable")]
    assert recs[-1].detail == "JSON array breaks after record 1: lexical error: invalid char in json text"


def test_json_array_truncated_gzip() -> None:
    data = b"[" + b",".join(orjson.dumps({"n": i, "pad": "z" * 40}) for i in range(3000)) + b"]"
    recs = records(gz(data)[:-100])
    assert recs[-1].reason == "file_unreadable"
    assert [r.fields["n"] for r in recs[:-1]] == list(range(len(recs) - 1))  # type: ignore[index]
    assert len(recs) > 2000


def test_json_array_huge_element_is_refused_without_reading_it_all() -> None:
    stream = LazyStream((b'[{"a": 1}, {"b": "', 1), (b"x" * 4096, 16_384), (b'"}, {"c": 3}]', 1))
    recs = check(list(open_records(stream, "x.json", max_record_bytes=1000)))
    assert summary(recs) == [(1, {"a": 1}), (2, "file_unreadable")]
    assert "larger than 1000 bytes" in (recs[-1].detail or "")
    assert stream.bytes_read < 4 << 20


@pytest.mark.parametrize("array_key", ["batch", "events", "data"])
def test_pretty_printed_document_streams_its_array(array_key: str) -> None:
    doc = {"writeKey": "k", "context": {"data": [9]}, array_key: [{"a": 1}, 2, {"b": 2}], "sentAt": "t"}
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    for blob in (data, gz(data)):
        stream = open_records(io.BytesIO(blob), "batch.json")
        assert stream.format == "json_array"
        # A Segment /batch body's shared context is merged in; other wrappers' keys are not.
        shared = {"context": {"data": [9]}} if array_key == "batch" else {}
        assert summary(check(list(stream))) == [
            (1, {"a": 1, **shared}),
            (2, "not_an_object"),
            (3, {"b": 2, **shared}),
        ]


def test_pretty_printed_document_truncated() -> None:
    data = b'{\n  "batch": [\n    {"a": 1},\n    {"a": 2},\n    {"a"'
    assert summary(records(data)) == [(1, {"a": 1}), (2, {"a": 2}), (3, "file_unreadable")]


def test_single_line_wrapper_is_read_as_its_array() -> None:
    # A file that is one line holding a wrapper of records (a capture batch written compactly)
    # is that array, as it is pretty-printed; a line that is an event stays one NDJSON record.
    assert summary(records(b'{"api_key": "k", "batch": [{"a": 1}, {"a": 2}]}\n')) == [
        (1, {"a": 1}),
        (2, {"a": 2}),
    ]
    event = {"event": "E", "batch": [{"a": 1}]}
    assert summary(records(orjson.dumps(event) + b"\n")) == [(1, event)]
    assert summary(records(b'{"data": [{"a": 1}]}\n{"data": [{"a": 2}]}\n')) == [
        (1, {"data": [{"a": 1}]}),
        (2, {"data": [{"a": 2}]}),
    ]


def test_a_document_whose_records_are_one_a_line_is_read_as_its_array() -> None:
    """QA3 Q5: PostHog's events API page, `{"next": ..., "results": [` then one event a line,
    each but the last ending in a comma. The last line (no comma) looked like NDJSON's
    complete object after a broken first line: 5 of 6 "records" were rejected."""
    for opening in (b'{"next": "https://app.posthog.com/api/x", "results": [', b'{"results": ['):
        data = opening + b'\n{"event": "A", "n": 1},\n{"event": "B", "n": 2},\n{"event": "C", "n": 3}\n]}\n'
        assert summary(records(data, "events.json")) == [
            (1, {"event": "A", "n": 1}),
            (2, {"event": "B", "n": 2}),
            (3, {"event": "C", "n": 3}),
        ]
    # NDJSON with a broken first line is still NDJSON: one reject, the rest read.
    broken = b'{"event": "A", "n": \n{"event": "B", "n": 2}\n{"event": "C", "n": 3}\n'
    assert [number for number, _ in summary(records(broken, "events.ndjson"))] == [1, 2, 3]
    assert summary(records(broken, "events.ndjson"))[1:] == [
        (2, {"event": "B", "n": 2}),
        (3, {"event": "C", "n": 3}),
    ]


# --- CSV ----------------------------------------------------------------------------------


def test_csv_plain_and_gzip() -> None:
    data = b"type,userId,event\ntrack,u1,Signed Up\nidentify,u2,\n"
    expected = [
        (1, {"type": "track", "userId": "u1", "event": "Signed Up"}),
        (2, {"type": "identify", "userId": "u2"}),
    ]
    assert summary(records(data, "x.csv")) == expected
    assert summary(records(gz(data), "x.csv.gz")) == expected
    assert summary(records(gz(data[:30]) + gz(data[30:]), "x.csv.gz")) == expected


def test_csv_bom_crlf_quotes_and_embedded_newlines() -> None:
    data = (
        b'\xef\xbb\xbf id ,"name" ,note\r\n'
        b'1,"Doe, Jane","she said ""hi""\r\nthen left"\r\n'
        b'2,"",plain\r\n'
        b"3,,\r\n"
    )
    assert summary(records(data, "x.csv")) == [
        (1, {"id": "1", "name": "Doe, Jane", "note": 'she said "hi"\r\nthen left'}),
        (2, {"id": "2", "note": "plain"}),
        (3, {"id": "3"}),
    ]


def test_csv_whitespace_cells_are_kept() -> None:
    assert summary(records(b"a,b\n , x \n", "x.csv")) == [(1, {"a": " ", "b": " x "})]


@pytest.mark.parametrize(
    ("data", "key"),
    [(b"a\tb\n1\t2,5\n", "x.tsv"), (b"a\tb\n1\t2,5\n", "x.txt"), (b"a\tb\n1\t2,5\n", "x.tsv.gz")],
)
def test_tsv(data: bytes, key: str) -> None:
    assert summary(records(data, key)) == [(1, {"a": "1", "b": "2,5"})]


def test_tab_in_a_comma_header_stays_comma() -> None:
    assert summary(records(b"a\tx,b\n1,2\n", "x")) == [(1, {"a\tx": "1", "b": "2"})]


def test_csv_field_count_mismatch_and_blank_rows() -> None:
    data = f"a,b\n1,2\n\n3\n,\n4,5,{SECRET}\n   \n6,7\n".encode()
    recs = records(data, "x.csv")
    assert summary(recs) == [
        (1, {"a": "1", "b": "2"}),
        (3, "csv_field_count"),
        (5, "csv_field_count"),
        (7, {"a": "6", "b": "7"}),
    ]
    assert recs[2].raw == f"4,5,{SECRET}"
    assert recs[1].detail == "row 3 has 1 fields; the header has 2"


def test_csv_invalid_utf8_row_is_rejected_and_others_kept() -> None:
    data = b"name,city\nJos\xe9,Paris\nAnn,Z\xc3\xbcrich\n\xff\xfe,x\n"
    recs = records(data, "x.csv")
    assert summary(recs) == [(1, "invalid_utf8"), (2, {"name": "Ann", "city": "Zürich"}), (3, "invalid_utf8")]
    assert recs[0].raw == "Jos\ufffd,Paris"


def test_csv_invalid_utf8_inside_multiline_row() -> None:
    data = b'a,b\n"x\ny\xff",1\n2,3\n'
    assert summary(records(data, "x.csv")) == [(1, "invalid_utf8"), (2, {"a": "2", "b": "3"})]


def test_csv_oversized_line_is_skipped() -> None:
    data = b"a,b\n1,2\n" + b"x" * 50_000 + b",y\n3,4\n"
    recs = records(data, "x.csv", max_record_bytes=1000)
    assert summary(recs) == [(1, {"a": "1", "b": "2"}), (2, "record_too_large"), (3, {"a": "3", "b": "4"})]
    assert set(recs[1].raw or "") == {"x"}
    assert 1000 <= len(recs[1].raw or "") <= RAW_EXCERPT_CHARS


def test_csv_multiline_row_over_the_limit_is_too_large() -> None:
    data = b'a,b\n1,2\n3,"' + b"more text\n" * 500 + b'"\n4,5\n'
    recs = records(data, "x.csv", max_record_bytes=1000)
    assert summary(recs) == [(1, {"a": "1", "b": "2"}), (2, "record_too_large"), (3, {"a": "4", "b": "5"})]
    assert (recs[1].raw or "").startswith("3,more text\n")


def test_csv_unterminated_quote() -> None:
    # The open quote runs to the end of the file (csv's lenient mode), held to the record limit.
    data = b'a,b\n1,2\n3,"never closed\n' + b"4,5\n" * 50
    recs = records(data, "x.csv", max_record_bytes=100)
    assert summary(recs) == [(1, {"a": "1", "b": "2"}), (2, "record_too_large")]
    assert summary(records(data[:40], "x.csv")) == [
        (1, {"a": "1", "b": "2"}),
        (2, {"a": "3", "b": "never closed\n" + "4,5\n" * 4}),
    ]


def test_csv_unterminated_quote_does_not_swallow_memory() -> None:
    stream = LazyStream((b'a,b\n1,2\n3,"never closed\n', 1), (b"more text\n", 1 << 20))
    recs = check(list(open_records(stream, "x.csv", max_record_bytes=1000)))
    assert summary(recs) == [(1, {"a": "1", "b": "2"}), (2, "file_unreadable")]
    assert stream.bytes_read < 4 << 20


def test_csv_truncated_gzip() -> None:
    data = b"n,pad\n" + b"".join(b"%d,%s\n" % (i, b"p" * 40) for i in range(3000))
    recs = records(gz(data)[:-100], "x.csv.gz")
    assert recs[-1].reason == "file_unreadable"
    assert [r.fields["n"] for r in recs[:-1]] == [str(i) for i in range(len(recs) - 1)]  # type: ignore[index]


@pytest.mark.parametrize("data", [b"", b"a,b\n", b"a,b", b"\xef\xbb\xbfa,b\r\n", b"\n\n", b"a,b\n\n\n"])
def test_csv_without_data_rows_yields_nothing(data: bytes) -> None:
    assert records(data, "x.csv") == []
    assert records(gz(data), "x.csv.gz") == []


def test_csv_leading_blank_lines_before_header() -> None:
    assert summary(records(b"\n\na,b\n1,2\n", "x.csv")) == [(1, {"a": "1", "b": "2"})]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (f"{SECRET},,x", "empty column names (columns 2)"),
        (f" ,{SECRET},x", "empty column names (columns 1)"),
    ],
)
def test_csv_bad_header_raises_without_content(header: str, message: str) -> None:
    data = f"{header}\n1,2,3\n".encode()
    with pytest.raises(FileFormatError, match=re.escape(message)) as caught:
        open_records(io.BytesIO(data), "x.csv")
    assert SECRET not in str(caught.value)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(FileFormatError):
        open_records(io.BytesIO(gz(data)), "x.csv.gz")


@pytest.mark.parametrize(
    ("first_line", "found"),
    [
        (
            "ajs-1|u1|Order Completed|2021-03-04 05:06:07|2021-03-04 05:06:08",
            "column 4 a time, column 5 a time",
        ),
        (f"{SECRET},Signed Up,1614834367", "column 1 an email address, column 3 an epoch time"),
        (
            "0b9f7c4e-1d2a-4c3b-9e8f-7a6b5c4d3e2f,u1,https://example.com/x",
            "column 1 an id (a UUID), column 3 a URL",
        ),
    ],
)
def test_a_file_without_a_header_row_says_so_not_a_reject_per_row(first_line: str, found: str) -> None:
    """Redshift's UNLOAD without HEADER: the first event was read as column names and every
    other row rejected for a missing timestamp, which said nothing about the real cause."""
    data = f"{first_line}\n{first_line}\n".encode()
    with pytest.raises(FileFormatError, match="no header row") as caught:
        open_records(io.BytesIO(data), "tracks_0000_part_00")
    assert found in str(caught.value)
    assert SECRET not in str(caught.value)
    assert "Order Completed" not in str(caught.value)


@pytest.mark.parametrize(
    "header", ["user_id,2021,2022,2023", "id,created_at,2021-03-04,email", "url,ip,uuid"]
)
def test_headers_that_merely_name_times_or_years_are_headers(header: str) -> None:
    assert len(records(f"{header}\n1,2,3,4\n".encode(), "x.csv")) == 1


def test_csv_header_not_utf8_raises() -> None:
    with pytest.raises(FileFormatError, match="UTF-8"):
        open_records(io.BytesIO(b"n\xe4me,x\n1,2\n"), "x.csv")


# --- sources ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        (ndjson({"a": 1}, {"a": 2}), "x.ndjson", [{"a": 1}, {"a": 2}]),
        (b'[{"a": 1}, {"a": 2}]', "x.json", [{"a": 1}, {"a": 2}]),
        (b'{"batch": [\n{"a": 1}, {"a": 2}]}', "x.json", [{"a": 1}, {"a": 2}]),
        (b"a\n1\n2\n", "x.csv", [{"a": "1"}, {"a": "2"}]),
    ],
)
def test_stream_with_only_read_and_short_reads(data: bytes, key: str, expected: list[dict]) -> None:
    for blob in (data, gz(data)):
        assert [r.fields for r in check(list(open_records(BodyLike(blob, most=3), key)))] == expected


def test_real_files(tmp_path: Path) -> None:
    path = tmp_path / "export.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        f.write("type,userId\r\n")
        f.writelines(f"track,u{i}\r\n" for i in range(10_000))
    with open(path, "rb") as f:
        stream = open_records(f, path.name)
        assert (stream.format, stream.compression) == ("csv", "gzip")
        got = check(list(stream))
    assert len(got) == 10_000
    assert got[-1].fields == {"type": "track", "userId": "u9999"}


class FailingBody(BodyLike):
    """A body whose connection drops after `good` bytes."""

    def __init__(self, data: bytes, good: int) -> None:
        super().__init__(data, most=1 << 20)
        self._good = good

    def read(self, amt: int | None = None) -> bytes:
        if self.bytes_read >= self._good:
            raise ConnectionError("connection reset")
        return super().read(min(amt or self._good, self._good - self.bytes_read))


@pytest.mark.parametrize("compress", [False, True])
def test_source_errors_are_raised_not_turned_into_records(compress: bool) -> None:
    # A dropped connection is transient (retry the file); it is not a property of the file.
    data = ndjson(*({"n": i, "pad": "q" * 30} for i in range(5000)))
    blob = gz(data) if compress else data
    seen = []
    with pytest.raises(ConnectionError):  # from open_records or from iteration
        seen.extend(open_records(FailingBody(blob, len(blob) // 2), "x.ndjson"))
    assert all(r.reason is None for r in seen)


@pytest.mark.parametrize("before", [50, 2_999])
def test_a_json_array_too_deep_at_one_element_keeps_every_element_before_it(before: int) -> None:
    """The depth guard stops ijson at the bracket too many, not at the buffer holding it."""
    element = b'{"userId":"u","event":"E","properties":{"n":[1,2,3]}}'
    deep = b'{"x":' + b"[" * 1100 + b"]" * 1100 + b"}"
    data = b"[" + b",".join([element] * before + [deep] + [element] * 8) + b"]"
    got = records(data, "export.json")
    assert [r.number for r in got if r.fields is not None] == list(range(1, before + 1))
    (last,) = [r for r in got if r.fields is None]
    assert last.reason == "file_unreadable"
    assert last.number == before + 1
    assert f"element {before + 1} is nested deeper than 1024 levels" in (last.detail or "")


def test_a_json_array_nested_too_deep_at_its_first_bytes_says_so() -> None:
    (last,) = records(b"[" * 2000 + b"]" * 2000, "export.json")
    assert (last.reason, last.number) == ("file_unreadable", 1)
    assert "nested deeper than 1024 levels" in (last.detail or "")


def test_a_stray_quote_that_swallows_rows_is_rejected_not_read_as_one_cell() -> None:
    data = (
        b"userId,event,timestamp,title\n"
        b"u1,E,2021-03-04T10:00:00Z,ok\n"
        b'u4,E,2021-03-04T10:00:00Z,"open quote\n'
        b"u5,E,2021-03-04T10:00:00Z,x\n"
        b"u6,E,2021-03-04T10:00:00Z,y\n"
        b'u7,E,2021-03-04T10:00:00Z,"z"\n'
        b"u8,E,2021-03-04T10:00:00Z,w\n"
    )
    got = records(data, "export.csv")
    assert [(r.number, r.fields["userId"]) for r in got if r.fields] == [(1, "u1"), (3, "u8")]
    (swallowed,) = [r for r in got if r.fields is None]
    assert (swallowed.number, swallowed.reason) == (2, "csv_unclosed_quote")
    assert "u5,E" in (swallowed.raw or "")


def test_a_quoted_note_with_line_breaks_and_commas_is_still_one_cell() -> None:
    data = b'userId,event,timestamp,note\nu1,E,2021-03-04T10:00:00Z,"line one, with a comma\nline two"\n'
    (record,) = records(data, "export.csv")
    assert record.fields is not None
    assert record.fields["note"] == "line one, with a comma\nline two"


def test_a_csv_null_marker_is_an_empty_cell() -> None:
    data = b"userId,anonymousId,event,plan\n\\N,a2,Signed Up,\\N\nu3,\\N,Signed Up,pro\nu4,a4,E,\\\\N2\n"
    got = [r.fields for r in records(data, "unload.csv")]
    assert got == [
        {"anonymousId": "a2", "event": "Signed Up"},
        {"userId": "u3", "event": "Signed Up", "plan": "pro"},
        {"userId": "u4", "anonymousId": "a4", "event": "E", "plan": "\\\\N2"},
    ]


# --- JSON documents whatever their layout --------------------------------------------------

PRETTY = orjson.OPT_INDENT_2  # how jq and json.dumps(indent=2) print a document


def test_a_pretty_printed_object_is_one_record_not_a_line_each() -> None:
    # Read line by line, every line was invalid_json and the one event was lost.
    event = {"type": "track", "userId": "u1", "event": "E", "properties": {"tags": ["a", "b"], "n": 1}}
    for blob in (orjson.dumps(event, option=PRETTY), gz(orjson.dumps(event, option=PRETTY))):
        stream = open_records(io.BytesIO(blob), "event.json")
        assert stream.format == "json_array"
        assert summary(check(list(stream))) == [(1, event)]


def test_pretty_printed_objects_one_after_another_are_records() -> None:
    # `jq . export.ndjson` prints each line's object over several lines.
    events = [{"event": "A", "userId": "u1"}, {"event": "B", "userId": "u2", "list": [{"x": 1}]}]
    blob = b"\n".join(orjson.dumps(event, option=PRETTY) for event in events) + b"\n"
    assert summary(records(blob, "x.json")) == [(1, events[0]), (2, events[1])]


@pytest.mark.parametrize("array_key", ["results", "records", "rows", "sessions"])
def test_a_document_holding_one_array_of_records_is_read_as_it(array_key: str) -> None:
    doc = {"count": 2, "next": None, array_key: [{"a": 1}, {"a": 2}], "tags": ["x"]}
    assert summary(records(orjson.dumps(doc, option=PRETTY), "page.json")) == [(1, {"a": 1}), (2, {"a": 2})]


def test_a_document_with_an_empty_results_array_has_no_records() -> None:
    assert summary(records(orjson.dumps({"results": [], "next": None}, option=PRETTY))) == []


def test_a_document_holding_several_arrays_of_records_is_refused_naming_them() -> None:
    doc = {"events": [{"a": 1}], "people": [{"b": 2}]}
    for blob in (orjson.dumps(doc, option=PRETTY), orjson.dumps(doc) + b"\n"):
        with pytest.raises(FileFormatError, match=r"2 arrays of records \(events, people\)"):
            open_records(io.BytesIO(blob), "export.json")


# --- CSV headers as spreadsheets and unloads write them -----------------------------------


def test_a_repeated_column_name_is_read_as_name_2_with_a_warning() -> None:
    # It failed the whole file; now both columns are imported and the report says how.
    data = b"userId,email,plan,email, plan\nu1,a@example.com,pro,b@example.com,free\n"
    stream = open_records(io.BytesIO(data), "x.csv")
    fields = {
        "userId": "u1",
        "email": "a@example.com",
        "plan": "pro",
        "email_2": "b@example.com",
        "plan_2": "free",
    }
    assert summary(check(list(stream))) == [(1, fields)]
    assert stream.warnings == [
        "the CSV header repeats column 'email' (columns 2 and 4): column 4 is read as 'email_2'; "
        "a job's `columns` can rename it",
        "the CSV header repeats column 'plan' (columns 3 and 5): column 5 is read as 'plan_2'; "
        "a job's `columns` can rename it",
    ]


def test_a_repeated_name_skips_a_name_already_taken() -> None:
    data = b"a,a_2,a\n1,2,3\n"
    assert summary(records(data, "x.csv")) == [(1, {"a": "1", "a_2": "2", "a_3": "3"})]


@pytest.mark.parametrize(
    "data",
    [
        b"userId,event,\nu1,E,\nu2,F\n",  # Excel's trailing empty column; short rows too
        b"userId;event;\nu1;E;\nu2;F;\n",  # a `;` header with a trailing `;`
        b"userId,event,,\nu1,E,,\nu2,F\n",
    ],
)
def test_trailing_empty_header_columns_are_tolerated(data: bytes) -> None:
    assert summary(records(data, "x.csv")) == [
        (1, {"userId": "u1", "event": "E"}),
        (2, {"userId": "u2", "event": "F"}),
    ]


def test_a_cell_under_a_trailing_unnamed_column_is_kept_as_column_n() -> None:
    assert summary(records(b"userId,event,\nu1,E,note\n", "x.csv")) == [
        (1, {"userId": "u1", "event": "E", "column_3": "note"})
    ]


# --- files none of whose records can be read ----------------------------------------------


def test_a_file_whose_first_thousand_lines_hold_no_record_fails_saying_what_it_looks_like() -> None:
    # Python dict reprs dumped one per line: each line a reject, the run said OK.
    data = b"".join(b"{'event': 'E', 'userId': 'u%d'}\n" % n for n in range(1500))
    recs = records(data, "dump.json")
    assert [r.reason for r in recs[:-1]] == ["invalid_json"] * 1000
    last = recs[-1]
    assert (last.number, last.reason) == (1001, "file_unreadable")
    assert last.detail == (
        "the first 1000 records hold no record that could be read (1000 invalid_json): the file looks like "
        "JSON that is not one object per line nor one document; the rest is not read"
    )
    assert "u1" not in last.detail


def test_a_csv_with_a_title_above_its_header_fails_saying_so() -> None:
    data = b"Sales report 2021\n" + b"".join(b"u%d,Signed Up,2021-03-04\n" % n for n in range(1200))
    last = records(data, "report.csv")[-1]
    assert last.reason == "file_unreadable"
    assert "1000 csv_field_count" in (last.detail or "")
    assert "a title above the header" in (last.detail or "")


def test_one_good_record_among_the_first_thousand_keeps_the_file_going() -> None:
    data = b"{'bad': 1}\n" * 999 + b'{"good": 1}\n' + b"{'bad': 2}\n" * 2000
    recs = records(data, "x.ndjson")
    assert len(recs) == 3000
    assert recs[999].fields == {"good": 1}
    assert {r.reason for r in recs if r.fields is None} == {"invalid_json"}


def test_integers_beyond_64_bits_are_kept_exactly_as_strings() -> None:
    # orjson reads 2^64 as the float 1.8446744073709552e+19: the id's last digits were lost.
    line = (
        b'{"id": 18446744073709551616, "neg": -9223372036854775809, "max": 18446744073709551615,'
        b' "small": 7, "text": "123456789012345678901234", "f": 1.5,'
        b' "nested": [{"n": 123456789012345678901234567}]}\n'
    )
    [record] = records(b'{"a": 1}\n' + line)[1:]
    assert record.fields == {
        "id": "18446744073709551616",
        "neg": "-9223372036854775809",
        "max": 18446744073709551615,
        "small": 7,
        "text": "123456789012345678901234",
        "f": 1.5,
        "nested": [{"n": "123456789012345678901234567"}],
    }


def test_a_pipe_delimited_unload_is_split_on_pipes() -> None:
    """QA: Redshift UNLOAD's default `|` was read as one column; every row rejected."""
    data = b"user_id|event|timestamp\nu1|Played|2021-01-01T00:00:00Z\n"
    records = open_records(io.BytesIO(data), "tracks_000")
    assert [r.fields for r in records] == [
        {"user_id": "u1", "event": "Played", "timestamp": "2021-01-01T00:00:00Z"}
    ]


def test_an_orc_file_is_refused_with_what_it_is() -> None:
    with pytest.raises(FileFormatError, match="an ORC file"):
        list(open_records(io.BytesIO(b"ORC\x0a\x0b" + bytes(200)), "userdata1_orc"))


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"\\ude00\\ud83d", b"ab\\udc00"])
def test_a_lone_surrogate_in_a_json_array_is_not_sent_changed(escape: bytes) -> None:
    """QA2 F10: yajl read a lone surrogate escape as "?", and the record was sent changed with an
    OK verdict; NDJSON rejects such a line. QA2 O9: then the file stopped there, and the elements
    after it were lost. Now that element is rejected naming the cause, and the rest are read."""
    good = b'{"userId": "g", "event": "E", "note": "\\ud83d\\ude00 and \\\\ud800"}'
    bad = b'{"userId": "s", "event": "E", "v": "' + escape + b'"}'
    recs = records(b"[" + good + b", " + good + b", " + bad + b", " + good + b"]", "export.json")
    assert [r.fields["note"] for r in recs[:2]] == ["\U0001f600 and \\ud800"] * 2
    assert (recs[2].number, recs[2].reason) == (3, "invalid_json")
    assert "lone UTF-16 surrogate" in recs[2].detail
    assert (recs[3].number, recs[3].fields) == (4, recs[0].fields)
    assert len(recs) == 4


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity", b"[1, NaN]", b'{"x": Infinity}'])
def test_nan_or_infinity_in_a_json_array_rejects_that_element_and_the_rest_are_read(value: bytes) -> None:
    """QA2 O9: the reject said only "lexical error: invalid char in json text" (NDJSON names
    NaN and Infinity), and the elements after it were never read."""
    good = b'{"userId": "g", "event": "E", "note": "NaN and Infinity in text are data"}'
    bad = b'{"userId": "n", "event": "E", "v": ' + value + b"}"
    recs = records(b"[" + good + b", " + bad + b", " + good + b"]", "export.json")
    assert recs[0].fields["note"] == "NaN and Infinity in text are data"
    assert (recs[1].number, recs[1].reason) == (2, "invalid_json")
    assert recs[1].detail.startswith(
        "JSON array element 2 is not valid JSON: it holds NaN or Infinity (NaN and"
    )
    assert "write null in their place" in recs[1].detail
    assert (recs[2].number, recs[2].fields) == (3, recs[0].fields)
    assert len(recs) == 3


def test_bad_elements_anywhere_in_json_arrays_cost_only_themselves() -> None:
    """Elements holding NaN, Infinity or a lone surrogate escape, at any place in any buffer
    of a top-level array or a document's array, beside look-alikes inside strings: each is
    rejected as its own line of NDJSON would be (orjson is the reference), every other read."""
    rng = random.Random(7)
    bad_values = [
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b'"\\ud800"',
        b'"x\\udfff"',
        b"[1, NaN]",
        b'{"q": "\\ud83d"}',
    ]
    good_values = [
        b'"NaN"',
        b'"Infinity text"',
        b'"\\\\ud800"',
        b'"\\ud83d\\ude00"',
        b'"]}\\"{["',
        b"1.5",
        b"null",
    ]
    for _ in range(60):
        elements = [
            b'{"i": %d, "pad": "%s", "v": %s}'
            % (
                i,
                b"x" * rng.choice([0, 10, 3000, 40000]),
                rng.choice(bad_values if rng.random() < 0.3 else good_values),
            )
            for i in range(rng.randint(1, 40))
        ]
        body = b"[" + rng.choice([b",", b", ", b"\n,\n  "]).join(elements) + b"]"
        if key := rng.choice(["", "events"]):
            body = b'{"%s": %s, "next_page": null}' % (key.encode(), body)
        found = records(body, "export.json")
        assert [r.number for r in found] == list(range(1, len(elements) + 1))
        for record, element in zip(found, elements, strict=True):
            try:
                expected = orjson.loads(element)
            except orjson.JSONDecodeError:
                assert record.reason == "invalid_json", record.detail
            else:
                assert record.fields == expected


def test_other_breaks_in_a_json_array_are_not_called_nan() -> None:
    recs = records(b'[{"userId": "g", "event": "E"}, {"userId": "n", "v": nan}]', "export.json")
    assert recs[1].detail == "JSON array breaks after record 1: lexical error: invalid string in json text"
