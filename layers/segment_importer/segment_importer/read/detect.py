"""Detection: which format an object's head is, content first and the key's extension only
as a hint (the rules are in docs/formats.md).

After a UTF-8 BOM and whitespace: `[` is a JSON array, `{` is NDJSON (or a pretty-printed
document with a `batch`, `events` or `data` array, read as a JSON array), anything else is
CSV. Binary files people export (Parquet, Avro, ZIP...) are named, not read as CSV.
"""

from __future__ import annotations

from dataclasses import dataclass

import ijson
import orjson

from segment_importer.read.json_array import ijson_backend
from segment_importer.read.opening import BOM, GZIP_MAGIC, content_start
from segment_importer.read.reader import Format
from segment_importer.read.records import FileFormatError

_SCAN_BYTES = 1 << 16  # how much of the head is searched for a document's array key
DOCUMENT_ARRAY_KEYS = ("batch", "events", "data")
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
    None for gzip. The same detection as `open_records` (FileFormatError for binary files)."""
    if head.startswith(GZIP_MAGIC):
        return None
    hint = extension_hint(key)
    content = head.removeprefix(BOM)
    fmt, _ = detect(content, hint)
    return PlainShape(fmt, csv_delimiter(content, hint) if fmt is Format.CSV else "")


def extension_hint(key: str) -> str | None:
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


def detect(head: bytes, hint: str | None) -> tuple[Format, str | None]:
    """(format, top-level array key of a single JSON document, or None)."""
    _refuse_binary(head)
    content = head.lstrip()
    if not content:  # nothing but whitespace: nothing to sniff, so believe the extension
        return _EMPTY_FILE_FORMATS.get(hint or "", Format.NDJSON), None
    if content[:1] == b"[":
        return Format.JSON_ARRAY, None
    if content[:1] != b"{":
        return Format.CSV, None
    try:  # a complete object on the first line: NDJSON (even when it is the only line)
        orjson.loads(content.partition(b"\n")[0])
    except orjson.JSONDecodeError:
        pass
    else:
        return Format.NDJSON, None
    doc_key = _document_array_key(content[:_SCAN_BYTES])
    return (Format.JSON_ARRAY, doc_key) if doc_key else (Format.NDJSON, None)


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


def header_delimiter(head: bytes) -> str:
    """Comma, unless the header line has no comma but tabs, or semicolons (as spreadsheets in
    locales with a decimal comma save CSV)."""
    line = content_start(head).partition(b"\n")[0].rstrip(b"\r")
    if b"," in line:
        return ","
    if b"\t" in line:
        return "\t"
    names = line.split(b";")
    return ";" if len(names) > 1 and all(name.strip() for name in names) else ","


def csv_delimiter(head: bytes, hint: str | None) -> str:
    """The delimiter of a CSV whose head (BOM removed) is `head`: tab for a `.tsv`, else what
    its header line says."""
    return "\t" if hint == "tsv" else header_delimiter(head)
