"""CSV and TSV rows as records, read with the csv module (see docs/formats.md for the rules).

Lines are bounded one by one before the csv module sees them, and their bytes are counted,
so a stop after a row can become the byte offset of the next (`CsvPosition`).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import compress
from typing import Protocol

from segment_importer.read.csv_header import header_names
from segment_importer.read.detect import csv_delimiter, is_separator_row, separator_mismatch
from segment_importer.read.opening import CHUNK, Content
from segment_importer.read.reader import Format, ReadOptions
from segment_importer.read.records import (
    RAW_EXCERPT_CHARS,
    DamagedError,
    FileFormatError,
    RecordStream,
    ResumePoint,
    SourceRecord,
    excerpt,
    unreadable,
)
from segment_importer.track import reasons

# A cell that is exactly this is a null, like an empty cell: MySQL's `SELECT ... INTO OUTFILE`
# and Snowflake's unload write NULL so. (`NULL` as a word is left alone: it can be data.)
NULL_MARKER = "\\N"
_SURROGATES = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of invalid UTF-8


class _CsvReader(Protocol):
    """What csv.reader returns (its type is private)."""

    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...
    def __next__(self) -> list[str]: ...


class _LineFlags:
    """What the line source saw while the csv reader assembled the current row."""

    __slots__ = ("bad_utf8", "broken", "consumed", "dirty", "in_header", "too_large")

    def __init__(self) -> None:
        self.reset()
        self.broken: DamagedError | None = None
        self.in_header = True  # an over-long header fails the file: no need to read to its end
        self.consumed = 0  # content bytes of the lines given to the csv reader so far

    def reset(self) -> None:
        self.dirty = False  # any of the below: the one check on the hot path
        self.bad_utf8 = False
        self.too_large: str | None = None  # an excerpt of the oversized line


def _csv_lines(
    readline: Callable[[int], str], limit: int, flags: _LineFlags, byte_length: Callable[[str], int]
) -> Iterator[str]:
    """Lines for csv.reader, with each one's size bounded and its UTF-8 checked.

    An oversized line is replaced by an empty one (and flagged) after skipping to its end, so
    memory stays bounded. A decompression error ends the lines (flagged): the csv reader
    sees the end of the file and the records generator reports the damage. The bytes of
    every line are counted before it is given out: csv.reader takes a line only when its
    row needs one, so when a row comes out, `flags.consumed` is where the next row starts.
    """
    size = limit + 2  # room for CRLF
    while True:
        try:
            line = readline(size)
        except DamagedError as exc:
            flags.broken, flags.dirty = exc, True
            return
        if not line:
            return
        if line.isascii():
            flags.consumed += len(line)
        else:
            flags.consumed += byte_length(line)
            if _SURROGATES.search(line):
                flags.bad_utf8 = flags.dirty = True
        if len(line) > limit and line[-1] not in "\r\n":
            flags.too_large, flags.dirty = excerpt(_unescape(line[:RAW_EXCERPT_CHARS])), True
            if flags.in_header:
                yield "\n"
                return
            try:
                while line and line[-1] not in "\r\n":
                    line = readline(size)
                    flags.consumed += byte_length(line)
            except DamagedError as exc:
                flags.broken = exc
                return
            line = "\n"
        yield line


def reader_lines(readline: Callable[[int], str], limit: int) -> Iterator[str]:
    """The data lines exactly as the CSV reader hands them to the csv module (over-long ones
    skipped to their end), without its checks: what a byte range's survey must parse."""
    flags = _LineFlags()
    flags.in_header = False
    return _csv_lines(readline, limit, flags, len)


class CsvPosition:
    """Where the CSV reader is in the object, so a stop after a row can become an offset.

    Offsets are counted in content bytes through `_csv_lines`. A resumed read holds the
    header's bytes, then the object's from `resume.offset`: an offset after the header maps
    to `data_base` + the bytes read after the header.
    """

    __slots__ = ("bom", "consumed", "data_base", "header_bytes", "header_end", "row")

    def __init__(self, bom: int, resume: ResumePoint | None) -> None:
        self.bom = bom
        self.header_end = resume.header_end if resume else 0  # known once the header is read
        self.data_base = resume.offset if resume else 0
        self.header_bytes = 0  # content bytes up to the header's end
        self.row = -1  # the last row read (-1: offsets unknown in this encoding)
        self.consumed = 0  # content bytes up to that row's end

    def header_read(self, consumed: int, *, counted: bool) -> None:
        self.header_bytes = consumed
        if not self.header_end:
            self.header_end = self.data_base = self.bom + consumed
        if counted:
            self.row = 0

    def after(self, number: int) -> ResumePoint | None:
        if self.row != number or number < 0:
            return None
        offset = self.data_base + self.consumed - self.header_bytes
        return ResumePoint(offset, number + 1, self.header_end)


@dataclass(frozen=True, slots=True)
class CsvReader:
    """CSV and TSV: a header row, then one record per row."""

    format: Format = Format.CSV
    label: str = "CSV"
    resumable: bool = True  # after the header's bytes (see CsvPosition)
    span_splittable: bool = True
    has_header: bool = True
    records_span_lines: bool = True  # a quoted cell may hold line breaks
    cells_are_text: bool = True

    def open(self, content: Content, options: ReadOptions) -> RecordStream:
        """Reads the header now (FileFormatError when it cannot work), rows lazily."""
        delimiter = csv_delimiter(content.head, content.hint)
        buffered = io.BufferedReader(content.source, CHUNK)
        resume = options.resume
        position = CsvPosition(content.bom, resume)
        first = resume.line if resume else options.first_row
        stream = RecordStream(self.format.value, content.compression, iter(()), position)
        records = csv_records(
            buffered, delimiter, options.max_record_bytes, options.csv_encoding, first, position, stream
        )
        stream.wrap(lambda _: records)
        return stream


CSV_READER = CsvReader()


def _byte_length(encoding: str) -> Callable[[str], int] | None:
    """How many bytes a decoded line was, for the encodings where that is exact: UTF-8, and
    those that decode every byte to one character (cp1252, Latin-1...). None otherwise."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return None
    if name in ("utf-8", "utf-8-sig"):
        return lambda line: len(line.encode("utf-8", "surrogateescape"))
    try:
        single_byte = len(bytes(range(256)).decode(encoding, "surrogateescape")) == 256
    except UnicodeError:
        return None
    return len if single_byte else None


def _unescape(text: str) -> bytes:
    """The original bytes of text decoded with surrogateescape."""
    return text.encode("utf-8", "surrogateescape")


def csv_records(
    content: io.BufferedReader,
    delimiter: str,
    limit: int,
    encoding: str = "utf-8",
    first_row: int = 1,
    position: CsvPosition | None = None,
    stream: RecordStream | None = None,
) -> Iterator[SourceRecord]:
    """Read the header now (so header problems raise from open_records), rows lazily; the
    column names and what was tolerated in the header go to `stream`."""
    csv_field_limit(limit)
    # surrogateescape: invalid UTF-8 becomes one rejected row, not a decoding error.
    text = io.TextIOWrapper(content, encoding=encoding, errors="surrogateescape", newline="")
    flags = _LineFlags()
    byte_length = _byte_length(encoding)
    lines = _csv_lines(text.readline, limit, flags, byte_length or len)
    reader = csv.reader(lines, delimiter=delimiter)
    header = _csv_header(reader, flags, delimiter)
    named = 0
    if header is not None:
        header, named = header_names(header, stream.warnings if stream is not None else [])
        if stream is not None:
            stream.columns = list(header)
            stream.delimiter = delimiter
    position = position or CsvPosition(0, None)
    position.header_read(flags.consumed, counted=byte_length is not None)
    return _csv_rows(reader, header, flags, delimiter, limit, first_row - 1, position, named)


def csv_field_limit(limit: int) -> None:
    """Let the csv module read fields of `limit` characters. Its limit is process-wide, so it
    is only ever raised; rows are held to the record limit by the readers themselves."""
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


def _csv_header(reader: _CsvReader, flags: _LineFlags, delimiter: str) -> list[str] | None:
    """The first non-blank row, stripped and checked; None for an empty or unreadable file."""
    separator_line = False
    try:
        for index, row in enumerate(reader):
            if index == 0 and is_separator_row(row, delimiter):
                separator_line = True
                continue  # Excel's `sep=` line, read by `csv_delimiter`
            if flags.broken:
                return None
            if flags.bad_utf8:
                raise FileFormatError("the CSV header is not valid UTF-8")
            if flags.too_large is not None:
                raise FileFormatError("the CSV header line is longer than the record size limit")
            # A BOM after the `sep=` line (the tool that added the line put it before the BOM).
            header = [name.strip() for name in row]
            if header and separator_line:
                header[0] = header[0].removeprefix("\ufeff").strip()
            if any(header):
                flags.in_header = False
                if separator_line and (mismatch := separator_mismatch(header, delimiter)):
                    raise FileFormatError(mismatch)
                return header
    except csv.Error:
        raise FileFormatError("the CSV header cannot be parsed") from None
    return None


def _csv_rows(
    reader: _CsvReader,
    header: list[str] | None,
    flags: _LineFlags,
    delimiter: str,
    limit: int,
    number: int = 0,
    position: CsvPosition | None = None,
    named: int = 0,
) -> Iterator[SourceRecord]:
    if header is None:
        if flags.broken is not None:
            yield unreadable(1, f"the file breaks before the CSV header: {flags.broken}")
        return
    width = len(header)
    record = SourceRecord
    line_count = reader.line_num
    track = position is not None and position.row >= 0
    try:
        for row in reader:
            number += 1
            if track:  # before the row's record is yielded: the consumer may stop on it
                position.row, position.consumed = number, flags.consumed  # type: ignore[union-attr]
            # Lines are bounded one by one; only a row spanning lines (quoted newlines) can
            # outgrow the limit, and csv.reader's line count says when a row did.
            lines_before, line_count = line_count, reader.line_num
            if flags.dirty or line_count - lines_before > 1 or len(row) != width:  # rare rows: one test
                unusual = _unusual_row(
                    number, row, flags, line_count - lines_before > 1, named, width, delimiter, limit
                )
                if unusual is not _USUAL:
                    if unusual is not None:
                        yield unusual
                    if flags.broken is not None:
                        return
                    continue
            if NULL_MARKER in row:  # warehouse unloads (MySQL, Snowflake) write NULL as \N
                row = ["" if cell == NULL_MARKER else cell for cell in row]
            # Empty cells mean "no value": compress keeps the (name, cell) pairs whose cell is
            # non-empty, in C (zip stops at a short row's end: trailing unnamed cells left out).
            fields = dict(compress(zip(header, row, strict=False), row))
            if fields:
                yield record(number, fields)
    except csv.Error:  # a quoted field over csv's own limit: there is no telling where rows restart
        detail = f"CSV row {number + 1} has a quoted field too long to read (or one that never closes)"
        yield unreadable(number + 1, detail + "; the rest of the file is not read")
        return
    if flags.broken is not None:
        detail = f"the file breaks after CSV row {number}: {flags.broken}"
        yield unreadable(number + 1, detail)


_USUAL = SourceRecord(0)  # what _unusual_row says of a row to read as any other


def _unusual_row(
    number: int,
    row: list[str],
    flags: _LineFlags,
    spanning: bool,
    named: int,
    width: int,
    delimiter: str,
    limit: int,
) -> SourceRecord | None:
    """The reject for a row the line source flagged, that spans lines and is too long or
    looks unclosed, or that has the wrong number of fields; None for a row to leave out (a
    flagged one with nothing to report, a blank one); `_USUAL` for a row that is fine after
    all (a spanning row within bounds, one that leaves trailing unnamed cells out)."""
    if flags.dirty:
        rejected = _flagged_row(number, row, flags, delimiter)
        flags.reset()
        return rejected
    if spanning and (problem := _spanning_row_problem(number, row, width, delimiter, limit)):
        return problem
    if len(row) == width or named <= len(row) < width:  # trailing unnamed cells may be left out
        return _USUAL
    if "".join(row).strip():  # a wrong-length row that is not just blank
        detail = f"row {number} has {len(row)} fields; the header has {width}"
        return SourceRecord(
            number, reason=reasons.CSV_FIELD_COUNT, detail=detail, raw=excerpt(delimiter.join(row))
        )
    return None


def _spanning_row_problem(
    number: int, row: list[str], width: int, delimiter: str, limit: int
) -> SourceRecord | None:
    """The reject for a row read over several lines (rare) that is over the limit, or that
    looks like a quote never closed; None when the row is fine."""
    if sum(map(len, row)) > limit:
        detail = f"row {number} is longer than {limit} bytes"
        raw = excerpt(delimiter.join(row)[:RAW_EXCERPT_CHARS])
        return SourceRecord(number, reason=reasons.RECORD_TOO_LARGE, detail=detail, raw=raw)
    if _holds_rows(row, width, delimiter):
        detail = (
            f"row {number} has a quoted cell whose line breaks hold what look like more rows "
            "(a quote never closed?); those rows are not read"
        )
        raw = excerpt(delimiter.join(row))
        return SourceRecord(number, reason=reasons.CSV_UNCLOSED_QUOTE, detail=detail, raw=raw)
    return None


def _holds_rows(row: list[str], width: int, delimiter: str) -> bool:
    """Whether a row read over several lines has, after a line break inside a cell, a line with
    a whole row's worth of delimiters: a stray quote swallowing the rows after it, which the
    csv module reads as one long cell. Checked only for rows spanning lines (rare), and for
    three columns or more (a two-column note with a comma in it is not suspect)."""
    if width < 3:
        return False
    return any(
        line.count(delimiter) >= width - 1
        for cell in row
        if "\n" in cell or "\r" in cell
        for line in cell.splitlines()[1:]
    )


def _flagged_row(number: int, row: list[str], flags: _LineFlags, delimiter: str) -> SourceRecord | None:
    """The record for a row the line source flagged (damage, size or encoding)."""
    if flags.broken is not None:
        detail = f"the file breaks in CSV row {number}: {flags.broken}"
        return unreadable(number, detail)
    if flags.too_large is not None:
        detail = f"row {number} has a line longer than the record size limit"
        return SourceRecord(number, reason=reasons.RECORD_TOO_LARGE, detail=detail, raw=flags.too_large)
    raw = excerpt(_unescape(delimiter.join(row)))
    return SourceRecord(
        number, reason=reasons.INVALID_UTF8, detail=f"row {number} is not valid UTF-8", raw=raw
    )
