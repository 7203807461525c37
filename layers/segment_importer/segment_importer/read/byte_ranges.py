"""One large uncompressed NDJSON or CSV object (a span-splittable format), cut into byte
ranges read in parallel.

The result must be exactly what one sequential read gives: the same records, the same
record numbers (message ids and reject positions derive from them), nothing read twice.

- **Spans.** The object is cut into nominal spans of a fixed size (`plan_spans`). Each is
  aligned to line starts (`AlignedSpan`): it starts after the first newline at or after its
  nominal start - 1, and ends after the first newline at or after its nominal end - 1, so
  the aligned spans of consecutive nominal spans tile the object without gaps or overlaps.
- **Survey.** A first, cheap pass over every span (in parallel) counts its newlines, so a
  span's first line number is 1 + the newlines of the spans before it. NDJSON needs nothing
  more: its reader takes one line as one record, whatever the line holds.
- **Proof for CSV.** A CSV line is a record only if no quoted field holds a newline. The
  survey proves, per span, that `csv.reader` fed the span's lines takes exactly one line
  per row, with one empty line after the span so that a quote left open at its end is caught
  too (`csv_span_problem`). If every span's proof holds, every span starts at a record
  boundary: span 0 starts at one (the start of the object); if span k starts at one, its
  parse is the sequential parse, every record starting in it is one line, so the record
  holding span k+1's first newline ends there, and span k+1 starts at a boundary. If any
  proof fails, the file is split sequentially instead.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from segment_importer.read.csv_rows import reader_lines
from segment_importer.read.detect import is_separator_row
from segment_importer.read.formats import (
    MAX_RECORD_BYTES,
    RecordStream,
    ResumePoint,
    csv_field_limit,
    open_records,
)
from segment_importer.read.registry import reader_for

_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"
# Bytes that must mean the same in the CSV's text encoding as in ASCII for a byte scan of
# newlines to find the lines the csv reader sees (UTF-16, say, fails this).
_ASCII_PROBE = '\n\r",;\t'


def plan_spans(size: int, span_bytes: int, max_spans: int) -> list[tuple[int, int]]:
    """Nominal `(start, end)` spans covering `size` bytes: `span_bytes` each (made larger
    when that would give more than `max_spans`)."""
    if size <= 0 or span_bytes <= 0:
        return [(0, max(size, 0))]
    count = min(-(-size // span_bytes), max_spans)
    width = -(-size // count)
    return [(start, min(start + width, size)) for start in range(0, size, width)]


class AlignedSpan(io.RawIOBase):
    """The bytes of one span aligned to line starts, read from a body that starts at `origin`.

    `origin` is `start - 1` for a span that does not start the object (so a newline right
    before the nominal start is seen), else 0. `start`, `end` and `newlines` describe the
    aligned span; `end` is known once the span has been read to its end.
    """

    def __init__(self, read: Callable[[int], bytes], nominal: tuple[int, int], size: int) -> None:
        super().__init__()
        self._read = read
        self._nominal_end = nominal[1]
        self._size = size
        self._position = max(nominal[0] - 1, 0)  # of the next byte `read` returns
        self._pending = b""
        self._done = False
        self.start = 0 if nominal[0] == 0 else -1
        self.end = -1
        self.newlines = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.take(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def take(self, size: int) -> bytes:
        """Up to `size` bytes of the aligned span; b"" at its end."""
        while not self._pending and not self._done:
            self._pending = self._next_piece()
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def _next_piece(self) -> bytes:
        chunk = self._read(_CHUNK)
        here = self._position
        self._position += len(chunk)
        if not chunk:
            self._finish(here)
            return b""
        if self.start < 0:  # still looking for the first line start
            found = chunk.find(b"\n")
            if found < 0:
                return b""
            self.start = here + found + 1
            chunk, here = chunk[found + 1 :], here + found + 1
            if self.start >= self._nominal_end:  # no line starts in this span
                self._finish(self.start)
                return b""
        # The span ends after the first newline at or after nominal end - 1.
        look_from = max(self._nominal_end - 1 - here, 0)
        if look_from < len(chunk):
            found = chunk.find(b"\n", look_from)
            if found >= 0:
                chunk = chunk[: found + 1]
                self._finish(here + found + 1)
        self.newlines += chunk.count(b"\n")
        return chunk

    def _finish(self, end: int) -> None:
        self._done = True
        if self.start < 0:  # no newline at all after the nominal start: nothing starts here
            self.start = min(end, self._size)
        self.end = max(end, self.start)

    def read_to_end(self) -> None:
        """Read (and discard) the rest of the span, so `end` and `newlines` are known."""
        while self.take(_CHUNK):
            pass


@dataclass(frozen=True, slots=True)
class CsvHeader:
    """Where a CSV's header is: its physical line number and the byte after its line."""

    line: int
    end: int


def csv_header(head: bytes, delimiter: str, encoding: str) -> CsvHeader | None:
    """The header of a CSV whose head is `head`, if it can be found as one plain line.

    None when the encoding is not ASCII-compatible, or when the header is not provably one
    line (it holds a quote, or its line does not end within `head`): the file is then split
    sequentially.
    """
    if not ascii_compatible(encoding):
        return None
    lines = head.split(b"\n")
    lines.pop()  # unfinished, or empty after the last newline
    offset = 0
    for number, line in enumerate(lines, start=1):
        offset += len(line) + 1
        if b'"' in line or b"\r" in line.rstrip(b"\r"):
            return None
        text = line.removeprefix(_BOM) if number == 1 else line
        row = text.decode(encoding, "surrogateescape").rstrip("\r").split(delimiter)
        if number == 1 and is_separator_row(row, delimiter):
            continue  # Excel's `sep=` line, before the header
        if any(cell.strip() for cell in row):
            return CsvHeader(number, offset)
    return None


def ascii_compatible(encoding: str) -> bool:
    try:
        return codecs.encode(_ASCII_PROBE, encoding) == _ASCII_PROBE.encode()
    except (LookupError, UnicodeError):
        return False


def csv_span_problem(span: io.RawIOBase, delimiter: str, encoding: str, limit: int) -> str | None:
    """Why the span's rows cannot be proven to be one line each, or None when they are."""
    csv_field_limit(limit)
    text = io.TextIOWrapper(
        io.BufferedReader(span, _CHUNK), encoding=encoding, errors="surrogateescape", newline=""
    )
    problems: list[str] = []
    reader = csv.reader(_span_lines(reader_lines(text.readline, limit), problems), delimiter=delimiter)
    lines = 0
    try:
        for _ in reader:
            lines += 1
            if reader.line_num != lines:
                return "a quoted field holds a line break"
    except csv.Error:
        return "a quoted field is too long to read or never closes"
    return problems[0] if problems else None


def _span_lines(lines: Iterator[str], problems: list[str]) -> Iterator[str]:
    """The span's lines, then one empty line (a quote left open at the end takes it in);
    a line ending in a bare CR is a problem (the csv module ends a row there)."""
    for line in lines:
        if line[-1] == "\r":
            problems.append("a line ends in a bare carriage return")
        yield line
    yield "\n"


@dataclass(frozen=True, slots=True)
class SpanSurvey:
    """One span's survey: its aligned bytes, its newlines, and (CSV) why it is unsafe."""

    start: int
    end: int
    lines: int
    problem: str | None = None

    def to_document(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "lines": self.lines, "problem": self.problem}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> SpanSurvey:
        return cls(document["start"], document["end"], document["lines"], document.get("problem"))


def spans_tile(surveys: list[SpanSurvey], size: int) -> bool:
    """Do the aligned spans cover the object exactly, in order?"""
    edges = [0] + [survey.end for survey in surveys]
    return (
        all(survey.start == edge for survey, edge in zip(surveys, edges, strict=False)) and edges[-1] == size
    )


def first_lines(surveys: list[SpanSurvey]) -> list[int]:
    """The physical line number each span starts at."""
    numbers, total = [], 0
    for survey in surveys:
        numbers.append(total + 1)
        total += survey.lines
    return numbers


@dataclass(frozen=True, slots=True)
class SpanRead:
    """What the worker of one aligned span needs to read its records as a sequential read
    numbers them."""

    index: int
    count: int
    start: int  # aligned
    end: int
    first_line: int  # the physical line number at `start`
    format: str  # a `Format` value of a span-splittable reader
    header_line: int = 0  # CSV: the header's physical line number
    header_end: int = 0  # CSV: the byte after the header's line

    @property
    def csv_prefix(self) -> bool:
        """Whether the span is read after the header's bytes (a CSV span but the first)."""
        return reader_for(self.format).has_header and self.index > 0

    def start_point(self) -> ResumePoint | None:
        """Where reading the span starts, as a resumed read of the object; None for the first
        span (read as the object's start: its BOM and CSV header are there)."""
        if self.index == 0:
            return None
        if reader_for(self.format).has_header:  # numbered in data rows, after the header
            return ResumePoint(self.start, self.first_line - self.header_line, self.header_end)
        return ResumePoint(self.start, self.first_line)

    def to_document(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> SpanRead:
        return cls(**document)


def span_records(
    span: SpanRead,
    body: BinaryIO,
    key: str,
    *,
    encoding: str = "utf-8",
    resume: ResumePoint | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> RecordStream:
    """The records of an aligned span, numbered as a sequential read numbers them.

    `body` holds the span's bytes from `point.offset` (the span's start, or `resume`'s for a
    continued span), after the CSV header's bytes when `point.header_end` says so, where
    `point` is `resume or span.start_point()`; the first span's body starts the object.
    """
    point = resume or span.start_point()
    return open_records(
        body,
        key,
        max_record_bytes=max_record_bytes,
        resume=point,
        stream_at_resume=point is not None,
        csv_encoding=encoding,
        known_format=span.format,
    )


class PrefixedBody(io.RawIOBase):
    """`prefix`, then whatever `read` returns: a CSV header in front of a span's bytes."""

    def __init__(self, prefix: bytes, read: Callable[[int], bytes]) -> None:
        super().__init__()
        self._prefix = prefix
        self._read = read

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return self._read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        if len(data) > len(buffer):
            data, self._prefix = data[: len(buffer)], data[len(buffer) :]
        buffer[: len(data)] = data
        return len(data)
