"""Streaming readers for export files: NDJSON, JSON arrays and CSV/TSV, plain or gzip.

`open_records(stream, key)` sniffs the object and returns a `RecordStream`, an iterable of
`SourceRecord`. NDJSON is read here; CSV in `csv_records`, JSON arrays in
`json_array_records`. Memory stays flat in the file size: the source is read in large chunks
(1 MiB) and only one record (bounded by `max_record_bytes`) is held at a time.

Detection, content first and the key's extension only as a hint:

* gzip when the data starts with the gzip magic bytes, whatever the extension (a `.gz`
  without them is read as plain). Multi-member gzip (concatenated members) is supported.
  Data expanding more than MAX_GZIP_EXPANSION-fold (past 64 MiB) is read no further: a
  decompression bomb ends in a `file_unreadable` record instead of hours of zeros.
* bzip2 and Zstandard likewise, by their magic bytes (see `compression`), under the same
  expansion bound. (Parquet and ZIP are read from the object itself, with ranged reads:
  `parquet`, `zip_archive`; this stream reader refuses them.)
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

import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import ijson
import orjson

from segment_importer.read.compression import compression_of, damage_errors, decompressor, describe
from segment_importer.read.csv_rows import CsvPosition, csv_field_limit, csv_records
from segment_importer.read.json_array import MAX_JSON_DEPTH, ijson_backend, json_array_records
from segment_importer.read.records import (
    RAW_EXCERPT_CHARS,
    DamagedError,
    FileFormatError,
    ResumePoint,
    SourceRecord,
    excerpt,
    unreadable,
)

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_RECORD_BYTES",
    "FileFormatError",
    "PlainShape",
    "RecordStream",
    "ResumePoint",
    "csv_field_limit",
    "open_records",
    "plain_shape",
]

MAX_RECORD_BYTES = 1 << 20  # the default bound of one record
_CHUNK = 1 << 20  # reads from the source and the decompressor
_SNIFF_CHUNK = 1 << 16
_SCAN_BYTES = 1 << 16  # how much of the head is searched for a document's array key
_EXCERPT_BYTES = RAW_EXCERPT_CHARS * 4  # enough bytes for any excerpt; avoids decoding more
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
DOCUMENT_ARRAY_KEYS = ("batch", "events", "data")
# A gzip member of zeros expands about 1,000-fold; real exports expand 5- to 50-fold. Past
# the floor, a file expanding more than this is read no further (a decompression bomb).
MAX_GZIP_EXPANSION = 400
_EXPANSION_FLOOR = 64 << 20
_DEPTH_STEP = {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1}

# What GzipFile raises for damaged data. Source errors (network) are deliberately absent.
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)
_EXTENSIONS = {"csv": "csv", "tsv": "tsv", "json": "json", "ndjson": "ndjson", "jsonl": "ndjson"}


def _damage(exc: BaseException, kind: str = "gzip") -> DamagedError:
    """A decompressor's error as a fixed description: GzipFile's own messages may quote data
    bytes, so the error is described by its type."""
    if kind != "gzip":
        return DamagedError(describe(kind, exc))
    if isinstance(exc, EOFError):
        return DamagedError("the gzip data is truncated")
    if isinstance(exc, gzip.BadGzipFile):
        return DamagedError("the gzip data is corrupt (bad header, checksum, length or trailing data)")
    return DamagedError("the gzip data is corrupt (invalid deflate data)")


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
        csv_position: CsvPosition | None = None,
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
    elif compression_of(head):
        compression, source, head = _decompressed(stream.read, head, resume, stream_at_resume, cap)
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
        records = json_array_records(io.BufferedReader(source, _CHUNK), prefix, max_record_bytes)
    else:
        delimiter = "\t" if hint == "tsv" else _header_delimiter(head)
        content = io.BufferedReader(source, _CHUNK)
        position = CsvPosition(bom, resume)
        first = resume.line if resume else first_row
        records = csv_records(content, delimiter, max_record_bytes, csv_encoding, first, position)
        return RecordStream(fmt, compression, records, csv_position=position)
    return RecordStream(fmt, compression, records)


def _decompressed(
    read_stored: Callable[[int], bytes], head: bytes, resume: ResumePoint | None, at_resume: bool, cap: int
) -> tuple[str, _Source, bytes]:
    """A bzip2 or Zstandard object's content (see `compression`), guarded as gzip is."""
    kind = compression_of(head) or ""
    damage = damage_errors(kind)
    compressed = _CountingReader(read_stored, len(head))
    read = decompressor(kind, _Source(compressed.read, head).take)
    read = _ExpansionGuard(read, compressed, kind).read
    head = _skip_to(read, resume, b"") if resume and not at_resume else b""
    head, error = _sniff(read, head, cap, damage, kind)
    source = _Source(read, head.removeprefix(_BOM), error, damage=damage, kind=kind)
    return kind, source, head


@dataclass(frozen=True, slots=True)
class PlainShape:
    """What the head of an uncompressed object says about the whole of it."""

    format: str  # "ndjson" | "json_array" | "csv"
    delimiter: str  # CSV only ("" otherwise)


def plain_shape(head: bytes, key: str) -> PlainShape | None:
    """The format and delimiter `open_records` would read an object with, from its head;
    None for compressed data. The same detection as `open_records` (FileFormatError for binary files)."""
    if head.startswith(_GZIP_MAGIC) or compression_of(head):
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
    raised as DamagedError, which the readers turn into a `file_unreadable` record; anything
    else (the network) passes through. Damage met while sniffing is raised after the head,
    where the reader meets it in order, so everything before it is still yielded.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        head: bytes = b"",
        error: DamagedError | None = None,
        damage: tuple[type[BaseException], ...] = (),
        kind: str = "gzip",
    ) -> None:
        super().__init__()
        self._read = read
        self._head = head
        self._error = error
        self._damage = damage
        self._kind = kind  # the compression the damage errors are described for

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
            raise _damage(exc, self._kind) from exc

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

    __slots__ = ("_compressed", "_kind", "_read", "total")

    def __init__(self, read: Callable[[int], bytes], compressed: _CountingReader, kind: str = "gzip") -> None:
        self._read = read
        self._compressed = compressed
        self._kind = kind
        self.total = 0

    def read(self, size: int) -> bytes:
        data = self._read(size)
        self.total += len(data)
        if self.total > _EXPANSION_FLOOR and self.total > MAX_GZIP_EXPANSION * self._compressed.total:
            raise DamagedError(
                f"the {self._kind} data expands more than {MAX_GZIP_EXPANSION}-fold ({self.total:,} bytes"
                f" from {self._compressed.total:,}); the rest is not read (a decompression bomb?)"
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


def _sniff(
    read: Callable[[int], bytes],
    head: bytes,
    cap: int,
    damage: tuple[type[BaseException], ...] = _GZIP_ERRORS,
    kind: str = "gzip",
) -> tuple[bytes, DamagedError | None]:
    """Read until the head holds the first content line (or `cap` bytes, or the end).

    Damaged compressed data is returned, not raised: the reader meets it after the head.
    """
    try:
        while len(head) < cap and not _first_line_complete(head):
            data = read(_SNIFF_CHUNK)
            if not data:
                break
            head += data
    except damage as exc:
        return head, _damage(exc, kind)
    except DamagedError as exc:
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
    (b"PAR1", "a Parquet file: Parquet is read as an S3 object of its own, not inside an archive"),
    (b"Obj\x01", "an Avro file: export it as NDJSON or CSV"),
    (
        b"PK\x03\x04",
        "a ZIP archive (or an Excel workbook): archives are read as S3 objects of their own,"
        " never nested; save a workbook's sheet as CSV",
    ),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls): save the sheet as CSV"),
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
        for event, value in ijson_backend.basic_parse(content):
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
        except DamagedError as exc:
            yield unreadable(number + 1, f"the file breaks after line {number}: {exc}")
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
        if lines and len(lines[0]) <= 1 and lines.count(b"") + lines.count(b"\r") == len(lines):
            number += len(lines)  # only blank lines (a gzip bomb of them?): counted, never parsed
        elif lines and max(map(len, lines)) > limit:  # rare: take the careful path for this chunk
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
