"""Streaming readers for export files: NDJSON, JSON arrays and CSV/TSV, plain or gzip.

`open_records(stream, key)` sniffs the object and returns a `RecordStream`, an iterable of
`SourceRecord`. Memory stays flat in the file size: the source is read in large chunks
(1 MiB) and only one record (bounded by `max_record_bytes`) is held at a time.

Detection, content first and the key's extension only as a hint:

* gzip when the data starts with the gzip magic bytes, whatever the extension (a `.gz`
  without them is read as plain). Multi-member gzip (concatenated members) is supported.
  Data expanding more than MAX_GZIP_EXPANSION-fold (past 64 MiB) is read no further: a
  decompression bomb ends in a `file_unreadable` record instead of hours of zeros.
* Then the decompressed text, after a UTF-8 BOM and whitespace: `[` is a JSON array, `{` is
  NDJSON, anything else is CSV. Mixpanel exports named `.json` are NDJSON, so the extension
  never decides the format of a non-empty file.
* `{` whose first line is not a complete JSON object, and whose top-level object has a
  `batch`, `events` or `data` array (looked up in the sniffed head only), is a pretty-printed
  single document such as `{"batch": [ ... ]}`: the items of that array are streamed and the
  format is reported as `json_array`. The decision is made on the first line only; a first
  line that is simply broken (no such array key) keeps the file NDJSON, so a corrupt first
  record costs one record, not the file.
* The extension gives the CSV delimiter (`.tsv` is tab-separated; otherwise a header line with
  tabs and no commas is too) and the format of a file with no content at all.

Record numbers (`SourceRecord.number`) are stable across re-reads: the physical line for
NDJSON (blank lines count, as in an editor), the element index + 1 for JSON arrays, and the
data row ordinal for CSV (1 = the first row after the header; blank rows count too).

Unreadable records are yielded with a reason code from `reasons.REASONS`, never raised. When
the rest of a file cannot be read (a truncated or corrupt gzip stream, a JSON array that
breaks), a last record with reason `file_unreadable` says where, and iteration stops. Errors
from the source itself (network, S3) are raised as they are: they are transient, not a
property of the file. A CSV header that cannot work (empty or duplicate names, not UTF-8)
raises `FileFormatError` from `open_records`.

Personal data stays out of logs: `detail` and exception messages never contain record
content; `raw` (a bounded excerpt) is the only place it goes.

Per format:

* NDJSON: parsed with orjson; a line over `max_record_bytes` is skipped (`record_too_large`)
  without being held whole. Bad lines cost one record each.
* JSON array: streamed with ijson (yajl2_c backend, `use_float=True`). An element still open
  after `max_record_bytes` (+ one 64 KiB buffer) ends the file, as does any syntax error,
  because a JSON stream cannot be resynchronised. Known limit of that backend: an integer
  outside the signed 64-bit range is a syntax error ("integer overflow") there, while NDJSON
  reads it. Nesting deeper than MAX_JSON_DEPTH ends the file too: ijson's memory grows with
  the square of the depth.
* CSV: the `csv` module (excel dialect, lenient quoting), header row first; empty cells are
  omitted from `fields`. Lines are read at most `max_record_bytes` characters at a time; a
  row spanning lines (quoted newlines) over the limit is `record_too_large`. The csv module's
  field size limit is process-wide: it is raised to `max_record_bytes`, never lowered. A
  quote that never closes runs to the end of the file (or to that limit, which ends the file).
  An over-long header line fails the file at once, without reading to its end.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate, compress
from typing import Any, BinaryIO, Protocol

import ijson
import orjson

from .records import RAW_EXCERPT_CHARS, SourceRecord, excerpt

__all__ = [
    "MAX_RECORD_BYTES",
    "FileFormatError",
    "PlainShape",
    "RecordStream",
    "csv_field_limit",
    "open_records",
    "plain_shape",
]

try:  # the C backend is several times faster than the pure-Python one
    _ijson: Any = ijson.get_backend("yajl2_c")
except ImportError:  # pragma: no cover - depends on how ijson was built
    _ijson = ijson

MAX_RECORD_BYTES = 1 << 20  # the default bound of one record
_CHUNK = 1 << 20  # reads from the source and the decompressor
_SNIFF_CHUNK = 1 << 16
_IJSON_BUF = 1 << 16
_SCAN_BYTES = 1 << 16  # how much of the head is searched for a document's array key
_EXCERPT_BYTES = RAW_EXCERPT_CHARS * 4  # enough bytes for any excerpt; avoids decoding more
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
DOCUMENT_ARRAY_KEYS = ("batch", "events", "data")
# Hostile input. ijson's prefixes cost memory quadratic in the nesting depth (20,000 levels
# take about 1 GB), so JSON arrays nested deeper than orjson reads NDJSON are not parsed on.
MAX_JSON_DEPTH = 1024
# A gzip member of zeros expands about 1,000-fold; real exports expand 5- to 50-fold. Past
# the floor, a file expanding more than this is read no further (a decompression bomb).
MAX_GZIP_EXPANSION = 400
_EXPANSION_FLOOR = 64 << 20
_DEPTH_STEP = {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1}
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'"[]{}')  # every byte but these
_OPEN_AS_2 = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")

# What GzipFile raises for damaged data. Source errors (network) are deliberately absent.
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)
_SURROGATES = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of invalid UTF-8
_YAJL_MESSAGE = re.compile(r"(?:lexical|parse) error: [A-Za-z0-9 ,'()\[\]{}-]{1,80}")
_EXTENSIONS = {"csv": "csv", "tsv": "tsv", "json": "json", "ndjson": "ndjson", "jsonl": "ndjson"}


class FileFormatError(ValueError):
    """The file cannot be read at all (e.g. a CSV header with duplicate names)."""


class _DamagedError(Exception):
    """The compressed data is damaged; the message is a fixed description, never data."""

    @classmethod
    def of(cls, exc: BaseException) -> _DamagedError:
        # GzipFile's own messages may quote data bytes: describe by type instead.
        if isinstance(exc, EOFError):
            return cls("the gzip data is truncated")
        if isinstance(exc, gzip.BadGzipFile):
            return cls("the gzip data is corrupt (bad header, checksum, length or trailing data)")
        return cls("the gzip data is corrupt (invalid deflate data)")


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a continued read starts: the content bytes before it (decompressed bytes for
    gzip; the object's own bytes otherwise) and the number of the record there (NDJSON: its
    line; CSV: its data row). A CSV read also needs its header again: the bytes before
    `header_end` are read first."""

    offset: int
    line: int
    header_end: int = 0  # CSV only


class _Position:
    """The NDJSON reader's current block of lines, so a stop can be turned into an offset."""

    __slots__ = ("base", "first", "lines")

    def __init__(self, base: int) -> None:
        self.base = base  # content bytes before the block
        self.first = 0  # the number of the block's first line
        self.lines: list[bytes] = []

    def mark(self, base: int, first: int, lines: list[bytes]) -> None:
        self.base, self.first, self.lines = base, first, lines


class RecordStream:
    """The records of one export file, read lazily; iterable once."""

    __slots__ = ("_csv_position", "_position", "_records", "_used", "compression", "format")

    def __init__(
        self,
        fmt: str,
        compression: str,
        records: Iterator[SourceRecord],
        position: _Position | None = None,
        csv_position: _CsvPosition | None = None,
    ) -> None:
        self.format = fmt  # "ndjson" | "json_array" | "csv"
        self.compression = compression  # "gzip" | "none"
        self._records = records
        self._position = position
        self._csv_position = csv_position
        self._used = False

    def __iter__(self) -> Iterator[SourceRecord]:
        # The records come from a stream: a second pass would silently yield nothing.
        if self._used:
            raise RuntimeError("a RecordStream can be iterated only once")
        self._used = True
        return self._records

    def resume_point_after(self, number: int) -> ResumePoint | None:
        """Where a later read can start right after record `number`, the last one yielded
        (NDJSON; CSV in an encoding whose byte lengths are known), else None."""
        if self._csv_position is not None:
            return self._csv_position.after(number)
        position = self._position
        if position is None or not position.first <= number < position.first + len(position.lines):
            return None
        done = position.lines[: number - position.first + 1]
        return ResumePoint(position.base + sum(map(len, done)) + len(done), number + 1)


def open_records(
    stream: BinaryIO,
    key: str,
    *,
    max_record_bytes: int = MAX_RECORD_BYTES,
    resume: ResumePoint | None = None,
    stream_at_resume: bool = False,
    csv_encoding: str = "utf-8",
    known_format: str | None = None,
    first_row: int = 1,
) -> RecordStream:
    """Sniff `stream` (anything with `read(n)` returning bytes) and return its records.

    `key` is the object key or file name; only its extension is used, as a hint.
    Raises FileFormatError for a CSV whose header cannot work.
    `resume` continues an NDJSON read at a line (see `RecordStream.resume_point_after`): the
    stream is read from its start and the content before the point skipped, unless
    `stream_at_resume` says the stream already starts there (a ranged read of a plain file).
    `csv_encoding` decodes CSV (spreadsheets saved as Windows-1252, say); JSON is UTF-8.
    A CSV `resume` reads the header (the bytes before `resume.header_end`) first, then goes on
    at `resume.offset`; with `stream_at_resume` the stream holds exactly those bytes.
    `known_format` skips detection (a byte range of a file whose format was already detected:
    its first line may be a broken one). `first_row` numbers a CSV range's rows from there.
    """
    if max_record_bytes < 1:
        raise ValueError("max_record_bytes must be positive")
    hint = _extension_hint(key)
    cap = max_record_bytes + _SNIFF_CHUNK
    head = _read_at_least(stream.read, len(_GZIP_MAGIC))
    if head.startswith(_GZIP_MAGIC):
        compression = "gzip"
        compressed = _CountingReader(stream.read, len(head))
        # BufferedReader: the decompressor asks for small pieces; the source should get big reads.
        raw = io.BufferedReader(_Source(compressed.read, head), _CHUNK)
        # read1: salvage all data before damage
        read = _ExpansionGuard(gzip.GzipFile(fileobj=raw, mode="rb").read1, compressed).read
        head = _skip_to(read, resume, b"") if resume and not stream_at_resume else b""
        head, error = _sniff(read, head, cap)
        source = _Source(read, head.removeprefix(_BOM), error, damage=_GZIP_ERRORS)
    else:
        compression = "none"
        if resume and not stream_at_resume:
            head = _skip_to(stream.read, resume, head)
        head, _ = _sniff(stream.read, head, cap)
        source = _Source(stream.read, head.removeprefix(_BOM))
    bom = len(_BOM) if head.startswith(_BOM) else 0
    head = head.removeprefix(_BOM)
    fmt, doc_key = (known_format, None) if known_format else _detect(head, hint)
    if resume and not (fmt == "ndjson" or (fmt == "csv" and resume.header_end)):
        raise FileFormatError(f"only NDJSON and CSV can be resumed; this part reads as {fmt}")
    if fmt == "ndjson":
        position = _Position(resume.offset if resume else bom)
        first = resume.line - 1 if resume else 0
        records = _ndjson_records(source.take, max_record_bytes, first, position)
        return RecordStream(fmt, compression, records, position)
    elif fmt == "json_array":
        prefix = f"{doc_key}.item" if doc_key else "item"
        records = _json_records(io.BufferedReader(source, _CHUNK), prefix, max_record_bytes)
    else:
        delimiter = "\t" if hint == "tsv" else _header_delimiter(head)
        content = io.BufferedReader(source, _CHUNK)
        position = _CsvPosition(bom, resume)
        first = resume.line if resume else first_row
        records = _csv_records(content, delimiter, max_record_bytes, csv_encoding, first, position)
        return RecordStream(fmt, compression, records, csv_position=position)
    return RecordStream(fmt, compression, records)


@dataclass(frozen=True, slots=True)
class PlainShape:
    """What the head of an uncompressed object says about the whole of it."""

    format: str  # "ndjson" | "json_array" | "csv"
    delimiter: str  # CSV only ("" otherwise)


def plain_shape(head: bytes, key: str) -> PlainShape | None:
    """The format and delimiter `open_records` would read an object with, from its head;
    None for gzip. The same detection as `open_records` (FileFormatError for binary files)."""
    if head.startswith(_GZIP_MAGIC):
        return None
    hint = _extension_hint(key)
    content = head.removeprefix(_BOM)
    fmt, _ = _detect(content, hint)
    if fmt != "csv":
        return PlainShape(fmt, "")
    return PlainShape(fmt, "\t" if hint == "tsv" else _header_delimiter(content))


# --- the source ---------------------------------------------------------------------------


class _Source(io.RawIOBase):
    """A raw stream over any `read(n)`: the sniffed head first, then the rest.

    botocore's StreamingBody has `read(n)` but no `readinto`, so it cannot go into an
    io.BufferedReader directly. The `damage` exceptions of `read` (a decompressor's) are
    raised as _DamagedError, which the readers turn into a `file_unreadable` record; anything
    else (the network) passes through. Damage met while sniffing is raised after the head,
    where the reader meets it in order, so everything before it is still yielded.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        head: bytes = b"",
        error: _DamagedError | None = None,
        damage: tuple[type[BaseException], ...] = (),
    ) -> None:
        super().__init__()
        self._read = read
        self._head = head
        self._error = error
        self._damage = damage

    def readable(self) -> bool:
        return True

    def take(self, size: int) -> bytes:
        """Up to `size` bytes (more if the head is longer); b"" at the end."""
        if self._head:
            data, self._head = self._head, b""
            return data
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        try:
            return self._read(size)
        except self._damage as exc:
            raise _DamagedError.of(exc) from exc

    def readinto(self, buffer: Any) -> int:
        data = self.take(len(buffer))
        if len(data) > len(buffer):  # the head, or a source that ignores `size`
            data, self._head = data[: len(buffer)], data[len(buffer) :] + self._head
        buffer[: len(data)] = data
        return len(data)


class _CountingReader:
    """Counts the bytes read from the compressed source."""

    __slots__ = ("_read", "total")

    def __init__(self, read: Callable[[int], bytes], already: int) -> None:
        self._read = read
        self.total = already

    def read(self, size: int) -> bytes:
        data = self._read(size)
        self.total += len(data)
        return data


class _ExpansionGuard:
    """Stops decompressing once the output passes MAX_GZIP_EXPANSION times the input."""

    __slots__ = ("_compressed", "_read", "total")

    def __init__(self, read: Callable[[int], bytes], compressed: _CountingReader) -> None:
        self._read = read
        self._compressed = compressed
        self.total = 0

    def read(self, size: int) -> bytes:
        data = self._read(size)
        self.total += len(data)
        if self.total > _EXPANSION_FLOOR and self.total > MAX_GZIP_EXPANSION * self._compressed.total:
            raise _DamagedError(
                f"the gzip data expands more than {MAX_GZIP_EXPANSION}-fold ({self.total:,} bytes from"
                f" {self._compressed.total:,}); the rest is not read (a decompression bomb?)"
            )
        return data


def _discard(read: Callable[[int], bytes], count: int, head: bytes = b"") -> bytes:
    """Read past `count` bytes (those in `head` first); returns what was read beyond them."""
    if len(head) >= count:
        return head[count:]
    count -= len(head)
    while count > 0:
        data = read(min(count, _CHUNK))
        if not data:
            return b""
        count -= len(data)
    return b""


def _skip_to(read: Callable[[int], bytes], resume: ResumePoint, head: bytes) -> bytes:
    """Read past the content before `resume.offset` (keeping a CSV's header bytes first);
    returns what was read beyond it."""
    if not resume.header_end:
        return _discard(read, resume.offset, head)
    header = head + _read_at_least(read, resume.header_end - len(head))
    rest = _discard(read, resume.offset - resume.header_end, header[resume.header_end :])
    return header[: resume.header_end] + rest


def _read_at_least(read: Callable[[int], bytes], size: int) -> bytes:
    """At least `size` bytes unless the stream ends first (reads may come back short)."""
    head = b""
    while len(head) < size:
        data = read(_SNIFF_CHUNK)
        if not data:
            break
        head += data
    return head


def _sniff(read: Callable[[int], bytes], head: bytes, cap: int) -> tuple[bytes, _DamagedError | None]:
    """Read until the head holds the first content line (or `cap` bytes, or the end).

    Damaged gzip data is returned, not raised: the reader meets it after the head.
    """
    try:
        while len(head) < cap and not _first_line_complete(head):
            data = read(_SNIFF_CHUNK)
            if not data:
                break
            head += data
    except _GZIP_ERRORS as exc:
        return head, _DamagedError.of(exc)
    except _DamagedError as exc:
        return head, exc
    return head, None


def _content_start(head: bytes) -> bytes:
    return head.removeprefix(_BOM).lstrip()


def _first_line_complete(head: bytes) -> bool:
    content = _content_start(head)
    return bool(content) and (content[:1] == b"[" or b"\n" in content)


# --- detection ----------------------------------------------------------------------------


def _extension_hint(key: str) -> str | None:
    """The format the key's extension suggests (csv, tsv, json or ndjson), ignoring a .gz."""
    name = key.rsplit("/", 1)[-1].lower().removesuffix(".gz")
    _, dot, extension = name.rpartition(".")
    return _EXTENSIONS.get(extension) if dot else None


# Files people export that are not text: say what they are instead of rejecting every "row".
_BINARY_FORMATS = (
    (b"PAR1", "a Parquet file: export it as NDJSON or CSV (e.g. with DuckDB or your warehouse's unload)"),
    (b"Obj\x01", "an Avro file: export it as NDJSON or CSV"),
    (b"PK\x03\x04", "a ZIP archive (or an Excel workbook): unzip it, or save the sheet as CSV"),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls): save the sheet as CSV"),
    (b"BZh", "a bzip2 file: recompress it with gzip, or drop it uncompressed"),
    (b"\x28\xb5\x2f\xfd", "a Zstandard file: recompress it with gzip, or drop it uncompressed"),
)


def _refuse_binary(head: bytes) -> None:
    for magic, what in _BINARY_FORMATS:
        if head.startswith(magic):
            raise FileFormatError(f"this is {what}")


def _detect(head: bytes, hint: str | None) -> tuple[str, str | None]:
    """(format, top-level array key of a single JSON document, or None)."""
    _refuse_binary(head)
    content = head.lstrip()
    if not content:  # nothing but whitespace: nothing to sniff, so believe the extension
        return ("csv" if hint in ("csv", "tsv") else "ndjson"), None
    if content[:1] == b"[":
        return "json_array", None
    if content[:1] != b"{":
        return "csv", None
    try:  # a complete object on the first line: NDJSON (even when it is the only line)
        orjson.loads(content.partition(b"\n")[0])
    except orjson.JSONDecodeError:
        pass
    else:
        return "ndjson", None
    doc_key = _document_array_key(content[:_SCAN_BYTES])
    return ("json_array", doc_key) if doc_key else ("ndjson", None)


def _document_array_key(content: bytes) -> str | None:
    """The first top-level key in DOCUMENT_ARRAY_KEYS whose value is an array, if the
    (possibly cut) JSON text shows one."""
    # basic_parse, not parse: parse's prefixes cost memory quadratic in the nesting depth.
    key, depth = None, 0
    try:
        for event, value in _ijson.basic_parse(content):
            if event == "map_key" and depth == 1:
                key = value
            elif event == "start_array" and depth == 1 and key in DOCUMENT_ARRAY_KEYS:
                return key
            depth += _DEPTH_STEP.get(event, 0)
            if depth == 0:  # the top-level object ended without such an array
                return None
    except (ijson.JSONError, UnicodeDecodeError):  # the head ends mid-document, or is not JSON
        pass
    return None


def _header_delimiter(head: bytes) -> str:
    """Comma, unless the header line has no comma but tabs, or semicolons (as spreadsheets in
    locales with a decimal comma save CSV)."""
    line = _content_start(head).partition(b"\n")[0].rstrip(b"\r")
    if b"," in line:
        return ","
    if b"\t" in line:
        return "\t"
    names = line.split(b";")
    return ";" if len(names) > 1 and all(name.strip() for name in names) else ","


# --- shared record helpers ----------------------------------------------------------------


def _unreadable(number: int, detail: str) -> SourceRecord:
    return SourceRecord(number, reason="file_unreadable", detail=detail)


# --- NDJSON -------------------------------------------------------------------------------


def _ndjson_records(
    take: Callable[[int], bytes], limit: int, number: int = 0, position: _Position | None = None
) -> Iterator[SourceRecord]:
    """One record per line, parsed in place from 1 MiB chunks (the hot path).

    Splitting a chunk with bytes.split and looping over the list costs less per line than
    readline() calls, and the size check is one max() per chunk instead of one per line.
    A line longer than `limit` is never held whole: once the unfinished tail of a chunk
    passes the limit it is dropped and the reader skips to the next newline.
    """
    loads, decode_error, record = orjson.loads, orjson.JSONDecodeError, SourceRecord
    # `number`: the last physical line read. `consumed`: content bytes before `tail`.
    consumed = position.base if position else 0
    tail = b""  # an unfinished line carried to the next chunk
    skipping = False  # inside an oversized line, already reported
    while True:
        try:
            chunk = take(_CHUNK)
        except _DamagedError as exc:
            yield _unreadable(number + 1, f"the file breaks after line {number}: {exc}")
            return
        if not chunk:
            break
        if skipping:
            end = chunk.find(b"\n")
            if end < 0:
                consumed += len(chunk)
                continue
            consumed += end + 1
            chunk, skipping = chunk[end + 1 :], False
        block = tail + chunk if tail else chunk
        lines = block.split(b"\n")
        tail = lines.pop()
        if position is not None:  # before any line is yielded: the consumer may stop on one
            position.mark(consumed, number + 1, lines)
        if lines and max(map(len, lines)) > limit:  # rare: take the careful path for this chunk
            yield from _ndjson_lines(lines, number, limit)
            number += len(lines)
        else:
            for line in lines:
                number += 1
                try:
                    value = loads(line)
                except decode_error as exc:
                    rejected = _rejected_line(number, line, exc)
                    if rejected is not None:
                        yield rejected
                    continue
                if type(value) is dict:
                    yield record(number, value)
                else:
                    yield _not_an_object(number, line)
        consumed += len(block) - len(tail)
        if len(tail) > limit + 1:  # +1: a CR whose LF is in the next chunk
            number += 1
            yield _too_large(number, tail, limit)
            consumed += len(tail)
            tail, skipping = b"", True
    if tail and not skipping:
        if position is not None:
            position.mark(consumed, number + 1, [tail])
        yield from _ndjson_lines([tail], number, limit)


def _ndjson_lines(lines: list[bytes], number: int, limit: int) -> Iterator[SourceRecord]:
    """The careful per-line path: size check first, then parse. `number` is the line before."""
    for line in lines:
        number += 1
        if len(line) > limit and len(line.removesuffix(b"\r")) > limit:
            yield _too_large(number, line, limit)
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            rejected = _rejected_line(number, line, exc)
            if rejected is not None:
                yield rejected
            continue
        yield SourceRecord(number, value) if type(value) is dict else _not_an_object(number, line)


def _rejected_line(number: int, line: bytes, exc: orjson.JSONDecodeError) -> SourceRecord | None:
    """The record for a line orjson refused; None for a blank line (skipped, still counted)."""
    if not line.strip():
        return None
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        detail = f"line {number} is not valid UTF-8 (byte {bad.start + 1})"
        return SourceRecord(number, reason="invalid_utf8", detail=detail, raw=excerpt(line))
    # orjson's messages are fixed texts with a position, never input.
    detail = f"line {number} is not valid JSON: {exc.msg} at column {exc.colno}"
    return SourceRecord(number, reason="invalid_json", detail=detail, raw=excerpt(line))


def _not_an_object(number: int, line: bytes) -> SourceRecord:
    detail = f"line {number} is JSON but not an object"
    return SourceRecord(number, reason="not_an_object", detail=detail, raw=excerpt(line.strip()))


def _too_large(number: int, start: bytes, limit: int) -> SourceRecord:
    detail = f"line {number} is longer than {limit} bytes"
    return SourceRecord(number, reason="record_too_large", detail=detail, raw=excerpt(start[:_EXCERPT_BYTES]))


# --- JSON array ---------------------------------------------------------------------------


class _ElementTooLargeError(Exception):
    """Raised into ijson by _SizeGuard to stop it building an oversized element."""


class _TooDeepError(Exception):
    """Raised into ijson by _SizeGuard before it reads data nested deeper than MAX_JSON_DEPTH."""


class _SizeGuard:
    """Refuses to feed ijson once more than `limit` bytes pass without an element ending,
    or data nested deeper than MAX_JSON_DEPTH.

    ijson builds each element whole; this bounds the memory one element can take. The
    reader sets `mark` each time an element comes out (ijson yields every element finished
    in a buffer before reading the next one, so the bound is within one buffer). The depth
    is checked on each buffer before ijson gets it.
    """

    __slots__ = ("_depth", "_read", "limit", "mark", "position")

    def __init__(self, read: Callable[[int], bytes], limit: int) -> None:
        self._read = read
        self.limit = limit
        self.position = 0
        self.mark = 0
        self._depth = _DepthScanner()

    def read(self, size: int) -> bytes:
        if self.position - self.mark > self.limit:
            raise _ElementTooLargeError
        data = self._read(size)
        self.position += len(data)
        if data and self._depth.deepest(data) > MAX_JSON_DEPTH:
            raise _TooDeepError
        return data


class _DepthScanner:
    """The nesting depth of a JSON text fed in pieces, at C speed (no tokenizing).

    Only quotes, brackets and backslashes matter: escaped backslashes and quotes are dropped,
    then every byte but quotes and brackets, then pairs of adjacent quotes (a string without
    brackets: dropping two neighbouring quotes never changes which brackets are inside a
    string), then the brackets inside the strings left. What remains are the structural
    brackets. Text that is not JSON gives a meaningless depth; ijson reports its error.
    """

    __slots__ = ("_carry", "_in_string", "depth")

    def __init__(self) -> None:
        self.depth = 0
        self._in_string = False
        self._carry = b""  # a backslash whose escaped byte is in the next piece

    def deepest(self, data: bytes) -> int:
        """Feed the next piece; returns the greatest depth in it: exact above MAX_JSON_DEPTH,
        an upper bound below."""
        if self._carry:
            data, self._carry = self._carry + data, b""
        if b"\\" in data:
            if data.endswith(b"\\") and (len(data) - len(data.rstrip(b"\\"))) % 2:
                data, self._carry = data[:-1], b"\\"
            data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
        marks = data.translate(None, _NOT_STRUCTURE)
        if b'""' in marks:
            marks = marks.replace(b'""', b"")
        if b'"' in marks:
            parts = marks.split(b'"')
            brackets = b"".join(parts[1 if self._in_string else 0 :: 2])
            self._in_string ^= len(parts) % 2 == 0
        elif self._in_string:
            return self.depth
        else:
            brackets = marks
        start = self.depth
        opens = brackets.count(b"[") + brackets.count(b"{")
        self.depth = start + 2 * opens - len(brackets)
        if start + opens <= MAX_JSON_DEPTH:
            return start + opens
        return max(accumulate((step - 1 for step in brackets.translate(_OPEN_AS_2)), initial=start))


def _json_records(content: io.BufferedReader, prefix: str, limit: int) -> Iterator[SourceRecord]:
    """The elements of the array at `prefix` ("item": the top-level array), one by one.

    A JSON stream cannot be resynchronised after a syntax error, so the first one ends the
    file with a `file_unreadable` record.
    """
    # read1, not read: a read that fails midway would drop the good bytes it had gathered.
    guard = _SizeGuard(content.read1, limit + _IJSON_BUF)
    count = 0
    try:
        for value in _ijson.items(guard, prefix, use_float=True, buf_size=_IJSON_BUF):
            count += 1
            guard.mark = guard.position
            if type(value) is dict:
                yield SourceRecord(count, value)
            else:
                detail = f"element {count} is JSON but not an object"
                yield SourceRecord(count, reason="not_an_object", detail=detail, raw=_json_excerpt(value))
    except _ElementTooLargeError:
        detail = f"JSON array element {count + 1} is larger than {limit} bytes; the rest cannot be read"
        yield _unreadable(count + 1, detail)
    except _TooDeepError:
        detail = f"JSON array element {count + 1} is nested deeper than {MAX_JSON_DEPTH} levels"
        yield _unreadable(count + 1, detail + "; the rest cannot be read")
    except _DamagedError as exc:
        yield _unreadable(count + 1, f"JSON array breaks after record {count}: {exc}")
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        yield _unreadable(count + 1, f"JSON array breaks after record {count}: {_json_problem(exc)}")


def _json_problem(exc: Exception) -> str:
    """yajl's message without the excerpt of input it appends."""
    found = _YAJL_MESSAGE.search(str(exc))
    if found:
        return found.group(0).rstrip(" .")
    return "incomplete JSON" if isinstance(exc, ijson.IncompleteJSONError) else "malformed JSON"


def _json_excerpt(value: Any) -> str:
    try:
        return excerpt(orjson.dumps(value))
    except TypeError:  # e.g. an integer beyond 64 bits, or nested deeper than orjson writes
        pass
    try:
        return excerpt(repr(value))
    except RecursionError:
        return "(a value nested too deeply to show)"


# --- CSV ----------------------------------------------------------------------------------


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
        self.broken: _DamagedError | None = None
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
        except _DamagedError as exc:
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
            except _DamagedError as exc:
                flags.broken = exc
                return
            line = "\n"
        yield line


class _CsvPosition:
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


def _csv_records(
    content: io.BufferedReader,
    delimiter: str,
    limit: int,
    encoding: str = "utf-8",
    first_row: int = 1,
    position: _CsvPosition | None = None,
) -> Iterator[SourceRecord]:
    """Read the header now (so header problems raise from open_records), rows lazily."""
    csv_field_limit(limit)
    # surrogateescape: invalid UTF-8 becomes one rejected row, not a decoding error.
    text = io.TextIOWrapper(content, encoding=encoding, errors="surrogateescape", newline="")
    flags = _LineFlags()
    byte_length = _byte_length(encoding)
    lines = _csv_lines(text.readline, limit, flags, byte_length or len)
    reader = csv.reader(lines, delimiter=delimiter)
    header = _csv_header(reader, flags)
    position = position or _CsvPosition(0, None)
    position.header_read(flags.consumed, counted=byte_length is not None)
    return _csv_rows(reader, header, flags, delimiter, limit, first_row - 1, position)


def csv_field_limit(limit: int) -> None:
    """Let the csv module read fields of `limit` characters. Its limit is process-wide, so it
    is only ever raised; rows are held to the record limit by the readers themselves."""
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


def _csv_header(reader: _CsvReader, flags: _LineFlags) -> list[str] | None:
    """The first non-blank row, stripped and checked; None for an empty or unreadable file."""
    try:
        for row in reader:
            if flags.broken:
                return None
            if flags.bad_utf8:
                raise FileFormatError("the CSV header is not valid UTF-8")
            if flags.too_large is not None:
                raise FileFormatError("the CSV header line is longer than the record size limit")
            header = [name.strip() for name in row]
            if any(header):
                _check_header(header)
                flags.in_header = False
                return header
    except csv.Error:
        raise FileFormatError("the CSV header cannot be parsed") from None
    return None


def _check_header(header: list[str]) -> None:
    # Positions, not names: a header can itself be personal data (a pasted data row).
    empty = [str(i + 1) for i, name in enumerate(header) if not name]
    if empty:
        raise FileFormatError(f"the CSV header has empty column names (columns {', '.join(empty)})")
    if len(set(header)) != len(header):
        seen: set[str] = set()
        repeated = []
        for i, name in enumerate(header):
            if name in seen:
                repeated.append(str(i + 1))
            seen.add(name)
        raise FileFormatError(f"the CSV header has duplicate column names (columns {', '.join(repeated)})")


def _csv_rows(
    reader: _CsvReader,
    header: list[str] | None,
    flags: _LineFlags,
    delimiter: str,
    limit: int,
    number: int = 0,
    position: _CsvPosition | None = None,
) -> Iterator[SourceRecord]:
    if header is None:
        if flags.broken is not None:
            yield _unreadable(1, f"the file breaks before the CSV header: {flags.broken}")
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
            if flags.dirty:
                rejected = _flagged_row(number, row, flags, delimiter)
                flags.reset()
                if rejected is not None:
                    yield rejected
                if flags.broken is not None:
                    return
            elif line_count - lines_before > 1 and sum(map(len, row)) > limit:
                detail = f"row {number} is longer than {limit} bytes"
                raw = excerpt(delimiter.join(row)[:RAW_EXCERPT_CHARS])
                yield SourceRecord(number, reason="record_too_large", detail=detail, raw=raw)
            elif len(row) == width:
                # Empty cells mean "no value": compress keeps the (name, cell) pairs whose cell
                # is non-empty, in C. Rows without empty cells skip it.
                if "" in row:
                    fields = dict(compress(zip(header, row, strict=False), row))
                else:
                    fields = dict(zip(header, row, strict=False))
                if fields:
                    yield record(number, fields)
            elif "".join(row).strip():  # a wrong-length row that is not just blank
                detail = f"row {number} has {len(row)} fields; the header has {width}"
                raw = excerpt(delimiter.join(row))
                yield SourceRecord(number, reason="csv_field_count", detail=detail, raw=raw)
    except csv.Error:  # a quoted field over csv's own limit: there is no telling where rows restart
        detail = f"CSV row {number + 1} has a quoted field too long to read (or one that never closes)"
        yield _unreadable(number + 1, detail + "; the rest of the file is not read")
        return
    if flags.broken is not None:
        detail = f"the file breaks after CSV row {number}: {flags.broken}"
        yield _unreadable(number + 1, detail)


def _flagged_row(number: int, row: list[str], flags: _LineFlags, delimiter: str) -> SourceRecord | None:
    """The record for a row the line source flagged (damage, size or encoding)."""
    if flags.broken is not None:
        detail = f"the file breaks in CSV row {number}: {flags.broken}"
        return _unreadable(number, detail)
    if flags.too_large is not None:
        detail = f"row {number} has a line longer than the record size limit"
        return SourceRecord(number, reason="record_too_large", detail=detail, raw=flags.too_large)
    raw = excerpt(_unescape(delimiter.join(row)))
    return SourceRecord(number, reason="invalid_utf8", detail=f"row {number} is not valid UTF-8", raw=raw)
