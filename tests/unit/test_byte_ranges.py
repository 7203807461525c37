"""Byte ranges: aligned spans tile the file, and reading them gives exactly the sequential read.

The properties are checked on generated files (hypothesis) as well as on the hard cases:
blank lines, CRLF, a BOM, broken lines, lines longer than the record limit, quoted CSV
fields with and without line breaks, bare carriage returns.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_importer.read.byte_ranges import (
    AlignedSpan,
    PrefixedBody,
    SpanRead,
    SpanSurvey,
    csv_header,
    csv_span_problem,
    first_lines,
    plan_spans,
    span_records,
    spans_tile,
)
from segment_importer.read.formats import open_records, plain_shape
from segment_importer.read.records import SourceRecord

LIMIT = 200  # record limit in these tests, so over-long lines are cheap to make


def survey(
    data: bytes, nominal: tuple[int, int], *, csv_delimiter: str = "", encoding: str = "utf-8"
) -> SpanSurvey:
    origin = max(nominal[0] - 1, 0)
    span = AlignedSpan(io.BytesIO(data[origin:]).read, nominal, len(data))
    problem = csv_span_problem(span, csv_delimiter, encoding, LIMIT) if csv_delimiter else None
    span.read_to_end()
    return SpanSurvey(span.start, span.end, span.newlines, problem)


def surveys_of(
    data: bytes, span_bytes: int, csv_delimiter: str = "", encoding: str = "utf-8"
) -> list[SpanSurvey]:
    spans = plan_spans(len(data), span_bytes, max_spans=1000)
    return [survey(data, nominal, csv_delimiter=csv_delimiter, encoding=encoding) for nominal in spans]


def numbered(records: Iterable[SourceRecord]) -> list[tuple]:
    return [(r.number, r.fields, r.reason) for r in records]


def sequential(data: bytes, key: str, encoding: str = "utf-8") -> list[tuple]:
    return numbered(open_records(io.BytesIO(data), key, max_record_bytes=LIMIT, csv_encoding=encoding))


def ranged(data: bytes, key: str, surveys: list[SpanSurvey], encoding: str = "utf-8") -> list[tuple]:
    shape = plain_shape(data[:4096], key)
    assert shape is not None
    header = csv_header(data, shape.delimiter, encoding) if shape.format == "csv" else None
    records = []
    for index, (found, first) in enumerate(zip(surveys, first_lines(surveys), strict=True)):
        span = SpanRead(
            index,
            len(surveys),
            found.start,
            found.end,
            first,
            shape.format,
            header.line if header else 0,
            header.end if header else 0,
        )
        body = io.BytesIO(data[found.start : found.end])
        stream = PrefixedBody(data[: span.header_end], body.read) if span.csv_prefix else body
        records += numbered(span_records(span, stream, key, encoding=encoding, max_record_bytes=LIMIT))
    return records


# --- spans ---------------------------------------------------------------------------------


def test_plan_spans_covers_the_object_and_caps_the_count() -> None:
    assert plan_spans(10, 4, 100) == [(0, 4), (4, 8), (8, 10)]
    assert plan_spans(100, 1, 4) == [(0, 25), (25, 50), (50, 75), (75, 100)]
    assert plan_spans(0, 4, 10) == [(0, 0)]


def test_a_span_starts_after_the_newline_before_its_nominal_start() -> None:
    data = b"aaaa\nbbbb\ncccc\n"
    assert [(s.start, s.end, s.lines) for s in surveys_of(data, 5)] == [(0, 5, 1), (5, 10, 1), (10, 15, 1)]
    found = [survey(data, nominal) for nominal in [(0, 7), (7, 14), (14, 15)]]
    assert [(s.start, s.end, s.lines) for s in found] == [(0, 10, 2), (10, 15, 1), (15, 15, 0)]


def test_a_line_longer_than_a_span_leaves_that_span_empty() -> None:
    data = b"a\n" + b"x" * 50 + b"\nb\n"
    found = surveys_of(data, 10)
    assert spans_tile(found, len(data))
    assert sum(s.lines for s in found) == 3
    assert [s.start == s.end for s in found].count(True) >= 3


line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=30)
ndjson_line = st.one_of(
    line_text.map(lambda text: json.dumps({"t": text})),
    st.just(""),
    st.just("{broken"),
    st.just("[1]"),
    st.just(json.dumps({"big": "x" * (LIMIT + 20)})),
    line_text,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(ndjson_line, min_size=1, max_size=40),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    trailing=st.booleans(),
    span_bytes=st.integers(1, 300),
)
def test_ndjson_spans_read_exactly_what_the_sequential_read_does(
    lines: list[str], newline: str, bom: bool, trailing: bool, span_bytes: int
) -> None:
    lines[0] = json.dumps({"first": True})  # the format is detected on the first line
    data = (("\ufeff" if bom else "") + newline.join(lines) + (newline if trailing else "")).encode()
    found = surveys_of(data, span_bytes)
    assert spans_tile(found, len(data))
    assert ranged(data, "events.ndjson", found) == sequential(data, "events.ndjson")


# --- CSV -----------------------------------------------------------------------------------

cell = st.one_of(
    st.text(st.characters(codec="ascii", blacklist_characters='",\r\n'), max_size=8),
    st.just('"quoted, with comma"'),
    st.just('"say ""hi"""'),
    st.just('"two\nlines"'),
    st.just("5'11\""),
    st.just('"open'),
    st.just("x" * (LIMIT + 5)),
    st.just("Café Crème"),  # cp1252: one byte each, not UTF-8
)


def csv_text(rows: list[list[str]], newline: str, delimiter: str = ",") -> bytes:
    body = newline.join(delimiter.join(row) for row in rows)
    return delimiter.join(("userId", "event", "note")).encode() + (newline + body + newline).encode("cp1252")


# Comma, semicolon (spreadsheets of decimal-comma locales) and tab (.tsv) separated.
DIALECTS = {",": "events.csv", ";": "events.csv", "\t": "events.tsv"}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.lists(cell, min_size=3, max_size=3), min_size=1, max_size=25),
    newline=st.sampled_from(["\n", "\r\n"]),
    span_bytes=st.integers(1, 200),
    delimiter=st.sampled_from(sorted(DIALECTS)),
)
def test_csv_spans_whose_proofs_hold_read_exactly_what_the_sequential_read_does(
    rows: list[list[str]], newline: str, span_bytes: int, delimiter: str
) -> None:
    data = csv_text(rows, newline, delimiter)
    key = DIALECTS[delimiter]
    found = surveys_of(data, span_bytes, csv_delimiter=delimiter, encoding="cp1252")
    assert spans_tile(found, len(data))
    if any(s.problem for s in found):
        return  # the file is split sequentially: nothing to compare
    assert ranged(data, key, found, "cp1252") == sequential(data, key, "cp1252")


@pytest.mark.parametrize("span_bytes", [1, 5, 13, 40, 1000])
def test_a_quoted_line_break_anywhere_fails_some_span_proof(span_bytes: int) -> None:
    data = b'userId,event\nu1,"Signed\nUp"\nu2,Viewed\n"u3",Bought\n'
    assert any(s.problem for s in surveys_of(data, span_bytes, csv_delimiter=","))


def test_a_quote_left_open_at_a_spans_end_fails_its_proof() -> None:
    data = b'userId,event\nu1,"Signed\nUp"\n'
    first = survey(data, (0, 20), csv_delimiter=",")  # ends after `u1,"Signed\n`
    assert first.problem == "a quoted field holds a line break"


def test_bare_carriage_returns_fail_the_proof() -> None:
    data = b"userId,event\ru1,Signed Up\ru2,Viewed\r"
    assert any(s.problem for s in surveys_of(data, 10, csv_delimiter=","))


def test_quoted_fields_on_one_line_pass_the_proof() -> None:
    data = b'userId,event,properties.items\nu1,"Signed, Up","[{""sku"": 1}]"\nu2,Viewed,\n'
    assert not any(s.problem for s in surveys_of(data, 12, csv_delimiter=","))


def test_the_header_is_found_after_a_bom_and_blank_lines() -> None:
    data = "\ufeff\n \nuserId;event\nu1;x\n".encode()
    assert csv_header(data, ";", "utf-8").line == 3  # type: ignore[union-attr]
    assert csv_header(data, ";", "utf-8").end == data.index(b"u1")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("head", "encoding"),
    [
        (b'"userId","event"\nu1,x\n', "utf-8"),  # a quoted header could span lines
        (b"userId,event", "utf-8"),  # the header line does not end in the head
        (b"userId,event\n", "utf-16"),  # newlines are not single bytes
    ],
)
def test_a_header_that_cannot_be_proven_one_line_means_sequential(head: bytes, encoding: str) -> None:
    assert csv_header(head, ",", encoding) is None
