"""Detection: which format an object's head is, content first and the key's extension only
as a hint (the rules are in docs/formats.md).

After a UTF-8 BOM and whitespace: `[` is a JSON array; `{` is NDJSON when its first line is
a complete object (or a later line is: a broken first record costs one record), otherwise a
JSON document whatever its layout (pretty-printed, as jq prints it): a document holding one
array of records (`{"batch": [...]}`, `{"results": [...]}`, `{"data": [...]}`) is read as
that array, one holding several is refused naming them, and one holding none is a record
itself (several such documents one after another are several records). A file that is a
single line holding one object that wraps records under a well-known key (DOCUMENT_ARRAY_KEYS)
is read as its array too. A first line that is a Snowplow enriched event (headerless TSV:
platform, collector time and event id in their places) is Snowplow TSV. Anything else is CSV.
Parquet is recognised by its magic bytes (and read); other binary files people export (Avro, ZIP
inside another file, Excel...) are named, not read as CSV.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

import ijson
import orjson

from segment_importer.read.compression import compression_of
from segment_importer.read.json_array import ijson_backend
from segment_importer.read.opening import BOM, GZIP_MAGIC, content_start, wide_encoding
from segment_importer.read.reader import Format
from segment_importer.read.records import FileFormatError
from segment_importer.read.snowplow_tsv import looks_like_enriched

PARQUET_MAGIC = b"PAR1"
_SCAN_BYTES = 1 << 16  # how much of the head is searched for a document's array key
# Keys whose array is the records even when it is empty (an API page with no results).
DOCUMENT_ARRAY_KEYS = ("batch", "events", "data", "results", "records", "items", "rows")
# A document with one of these keys is an event: its arrays are the event's data.
_EVENT_KEYS = frozenset(
    {
        "type",
        "event",
        "userId",
        "anonymousId",
        "event_type",
        "event_name",
        "messageId",
        "distinct_id",
        "properties",
    }
)
DOCUMENT_VALUES = ""  # the doc_key of a file of JSON documents that are records themselves
_NDJSON_PROBE_LINES = 50  # lines looked at for a complete object after a broken first line
_DEPTH_STEP = {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1}
# An empty file has nothing to sniff: its extension says what it is (NDJSON when it says nothing).
_EMPTY_FILE_FORMATS = {"csv": Format.CSV, "tsv": Format.CSV}
_EXTENSIONS = {"csv": "csv", "tsv": "tsv", "json": "json", "ndjson": "ndjson", "jsonl": "ndjson"}


@dataclass(frozen=True, slots=True)
class PlainShape:
    """What the head of an uncompressed object says about the whole of it."""

    format: Format
    delimiter: str  # CSV only ("" otherwise)


def plain_shape(head: bytes, key: str) -> PlainShape | None:
    """The format and delimiter `open_records` would read an object with, from its head;
    None for compressed data and UTF-16/32 text (neither can be cut in byte ranges). The same
    detection as `open_records` (FileFormatError for binary files)."""
    if head.startswith(GZIP_MAGIC) or compression_of(head) or wide_encoding(head):
        return None  # compressed, or UTF-16/32 text: its offsets are not the object's
    hint = extension_hint(key)
    content = head.removeprefix(BOM)
    fmt, _ = detect(content, hint)
    return PlainShape(fmt, csv_delimiter(content, hint) if fmt is Format.CSV else "")


_COMPRESSION_EXTENSIONS = (".gz", ".gzip", ".bz2", ".zst", ".zstd")


# Brotli (PostHog's S3 batch exports offer it: `<interval>.jsonl.br`) has no magic bytes, so
# its extension is the only tell; read as text, every "row" would be rejected as bad UTF-8.
_BROTLI_EXTENSIONS = (".br", ".brotli")
BROTLI_REFUSAL = (
    "this is brotli-compressed (.br): brotli is not supported:"
    " decompress with `brotli -d`, or export with gzip"
)


def extension_hint(key: str) -> str | None:
    """The format the key's extension suggests (csv, tsv, json or ndjson), ignoring the
    extension of a compression the reader opens (.gz, .bz2, .zst). A compression it cannot
    open (brotli) raises FileFormatError: both callers (open_records, plain_shape) must
    refuse the file before reading a byte of it as text."""
    name = key.rsplit("/", 1)[-1].lower()
    if name.endswith(_BROTLI_EXTENSIONS):
        raise FileFormatError(BROTLI_REFUSAL)
    for compressed in _COMPRESSION_EXTENSIONS:
        name = name.removesuffix(compressed)
    _, dot, extension = name.rpartition(".")
    return _EXTENSIONS.get(extension) if dot else None


# Files people export that are not text: say what they are instead of rejecting every "row".
_BINARY_FORMATS = (
    (b"Obj\x01", "an Avro file: export it as NDJSON or CSV"),
    (
        b"PK\x03\x04",
        "a ZIP archive (or an Excel workbook): an archive is read as an object of its own,"
        " never inside another file; save a workbook's sheet as CSV",
    ),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls): save the sheet as CSV"),
    (b"ORC", "an ORC file: export it as Parquet, NDJSON or CSV"),
)


def _refuse_binary(head: bytes) -> None:
    for magic, what in _BINARY_FORMATS:
        if head.startswith(magic):
            raise FileFormatError(f"this is {what}")


_WIDE_PROBE = 16  # bytes of the head looked at for UTF-16 text without a byte order mark


def refuse_wide_without_bom(head: bytes, encoding: str) -> None:
    """UTF-16 without a byte order mark (text with a NUL byte beside every character): read as
    UTF-8 it would be a reject per line. Text with its BOM is decoded (opening.as_utf8); a job
    whose `encoding` is UTF-16/32 reads it as CSV in that encoding."""
    probe = head[:_WIDE_PROBE]
    if len(probe) < 4 or _is_wide(encoding):
        return
    for order, zeros, chars in (("LE", probe[1::2], probe[0::2]), ("BE", probe[0::2], probe[1::2])):
        if not zeros.strip(b"\0") and all(0x09 <= byte < 0x7F for byte in chars):
            raise FileFormatError(
                f"this is UTF-16 {order} text without a byte order mark: convert it to UTF-8"
                f" (`iconv -f UTF-16{order} -t UTF-8`), or save it with its BOM"
            )


def _is_wide(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    except LookupError:
        return False


def detect(head: bytes, hint: str | None) -> tuple[Format, str | None]:
    """(format, the array key of a JSON document: a key, DOCUMENT_VALUES, or None for a
    top-level array and for the other formats)."""
    if head.startswith(PARQUET_MAGIC):
        return Format.PARQUET, None
    _refuse_binary(head)
    content = head.lstrip()
    if not content:  # nothing but whitespace: nothing to sniff, so believe the extension
        return _EMPTY_FILE_FORMATS.get(hint or "", Format.NDJSON), None
    if content[:1] == b"[":
        return Format.JSON_ARRAY, None
    if content[:1] != b"{":
        # From the raw head: an event's first field (app_id) may be empty, the line a tab.
        if looks_like_enriched(head.lstrip(b"\r\n").partition(b"\n")[0]):
            return Format.SNOWPLOW_TSV, None
        return Format.CSV, None
    first_line, _, rest = content.partition(b"\n")
    try:  # a complete object on the first line: NDJSON (even when it is the only line)
        first = orjson.loads(first_line)
    except orjson.JSONDecodeError:
        first = None
    if first is not None:
        key = _wrapper_key(first) if not rest.strip() else None  # one line: a wrapper object?
        return (Format.JSON_ARRAY, key) if key else (Format.NDJSON, None)
    # `{"results": [` opens a document's array on its first line; its records may then be
    # one a line, the last without a comma, which is not NDJSON's broken first line.
    opens_an_array = first_line.rstrip()[-1:] == b"["
    if not opens_an_array and _later_line_is_an_object(rest):
        return Format.NDJSON, None
    keys = _document_array_keys(content[:_SCAN_BYTES])
    if not keys and first_line.strip() != b"{":
        return Format.NDJSON, None  # a broken (or giant) first line, not a pretty-printed document
    if len(keys) > 1:
        raise FileFormatError(
            f"this is one JSON document holding {len(keys)} arrays of records ({', '.join(keys)}): "
            "export them to files of their own (e.g. with jq) and drop those"
        )
    return Format.JSON_ARRAY, keys[0] if keys else DOCUMENT_VALUES


def _wrapper_key(document: object) -> str | None:
    """The key of the one array of records a single-line object wraps under one of the
    well-known keys (`{"batch": [{...}]}`), if it is such a wrapper; a line that is an event
    is not, whatever arrays it holds."""
    if not isinstance(document, dict) or not _EVENT_KEYS.isdisjoint(document):
        return None
    if not any(_holds_records(key, document.get(key)) for key in DOCUMENT_ARRAY_KEYS):
        return None
    keys = [key for key, value in document.items() if _holds_records(key, value)]
    if len(keys) > 1:
        raise FileFormatError(
            f"this is one JSON object holding {len(keys)} arrays of records ({', '.join(keys)}): "
            "export them to files of their own (e.g. with jq) and drop those"
        )
    return keys[0] if keys else None


def _holds_records(key: str, value: object) -> bool:
    if not isinstance(value, list):
        return False
    return isinstance(value[0], dict) if value else key in DOCUMENT_ARRAY_KEYS


def _later_line_is_an_object(rest: bytes) -> bool:
    """NDJSON whose first line is broken: a later line (unindented) is a complete object.
    A pretty-printed document indents everything but its braces."""
    for line in rest.split(b"\n", _NDJSON_PROBE_LINES)[:_NDJSON_PROBE_LINES]:
        if line[:1] == b"{" and line.rstrip()[-1:] == b"}":
            try:
                if isinstance(orjson.loads(line), dict):
                    return True
            except orjson.JSONDecodeError:
                continue
    return False


def _document_array_keys(content: bytes) -> list[str]:
    """The top-level keys whose values are arrays of records (objects; or an empty array
    under a key of DOCUMENT_ARRAY_KEYS), as far as the (possibly cut) JSON text shows;
    none for a document with event keys (its arrays are the event's data)."""
    # basic_parse, not parse: parse's prefixes cost memory quadratic in the nesting depth.
    keys: list[str] = []
    key, depth, opened = None, 0, None
    try:
        for event, value in ijson_backend.basic_parse(content):
            if opened is not None:  # the event right after a top-level array opened
                if event == "start_map" or (event == "end_array" and opened in DOCUMENT_ARRAY_KEYS):
                    keys.append(opened)
                opened = None
            if event == "map_key" and depth == 1:
                if value in _EVENT_KEYS:
                    return []
                key = value
            elif event == "start_array" and depth == 1:
                opened = key
            depth += _DEPTH_STEP.get(event, 0)
            if depth == 0:  # the (first) document ended
                break
    except (ijson.JSONError, UnicodeDecodeError):  # the head ends mid-document, or is not JSON
        if opened is not None:  # it ends right after an array opened: nothing says it is data
            keys.append(opened)
    return keys


# Excel writes, and reads, a first line `sep=;` that names the delimiter; it is skipped before
# the header (csv_rows, byte_ranges: `is_separator_row`). Read as one too: quoted (`"sep=;"`),
# in upper case, after or before a BOM, with trailing spaces or a CR, with the delimiter
# repeated (`sep=;;`: a spreadsheet padding the line to its columns), and `sep=` naming none
# (the header line then says, as in a file without the line).
_SEPARATOR_NAMES = {",": "a comma", ";": "a semicolon", "\t": "a tab", "|": "a pipe"}


def excel_separator(line: str) -> str | None:
    """The delimiter a `sep=` line names ("" when it names none); None for any other line."""
    text = line.removeprefix("\ufeff").rstrip("\r\n")
    if len(text) > 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if text[:4].lower() != "sep=":
        return None
    rest = text[4:].rstrip(" ")
    if not rest:
        return ""
    delimiter = rest[0]
    if delimiter in '"\r\n' or rest.strip(delimiter):
        return None
    return delimiter


def is_separator_row(row: list[str], delimiter: str) -> bool:
    """Whether a first row, split by `delimiter`, is the `sep=` line that named it (or none)."""
    return excel_separator(delimiter.join(row)) in (delimiter, "")


def separator_mismatch(header: list[str], delimiter: str) -> str | None:
    """Why a header after a `sep=` line does not fit it: one name that another delimiter
    splits into named columns (every row was then one column, rejected missing_timestamp)."""
    if len(header) != 1:
        return None
    for other, name in _SEPARATOR_NAMES.items():
        names = header[0].split(other)
        if other != delimiter and len(names) > 1 and all(part.strip() for part in names):
            said = _SEPARATOR_NAMES.get(delimiter, repr(delimiter))
            return (
                f"the first line `sep={delimiter}` names {said} as the separator, but the header "
                f"line is separated by {name}: correct the sep= line or remove it"
            )
    return None


def _lines_after_separator(head: bytes) -> tuple[str | None, bytes]:
    """What a `sep=` first line names (None without one), and the header's line."""
    first, _, rest = content_start(head).partition(b"\n")
    named = excel_separator(first.decode("latin-1"))
    line = first if named is None else rest.removeprefix(BOM).partition(b"\n")[0]
    return named, line.rstrip(b"\r")


def header_delimiter(head: bytes) -> str:
    """What an Excel `sep=` first line names; else comma, unless the header line has no comma
    but tabs, pipes (Redshift UNLOAD's default), or semicolons (as spreadsheets in locales
    with a decimal comma save CSV)."""
    named, line = _lines_after_separator(head)
    if named:
        return named
    if b"," in line:
        return ","
    if b"\t" in line:
        return "\t"
    if b"|" in line and all(name.strip() for name in line.split(b"|")):
        return "|"  # Redshift UNLOAD's default delimiter
    names = line.rstrip(b"; \t").split(b";")  # a trailing `;` (an empty last column) is tolerated
    return ";" if len(names) > 1 and all(name.strip() for name in names) else ","


def csv_delimiter(head: bytes, hint: str | None) -> str:
    """The delimiter of a CSV whose head (BOM removed) is `head`: what a `sep=` line names,
    else tab for a `.tsv`, else what its header line says."""
    named, _ = _lines_after_separator(head)
    if named:
        return named
    return "\t" if hint == "tsv" else header_delimiter(head)
