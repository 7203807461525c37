"""Opening an export file's records: `open_records(stream, key)` opens the object (gzip, BOM),
detects its format and hands it to that format's reader (`registry.READERS`).

The rules (detection, record numbers, what is rejected and how) are in docs/formats.md.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from segment_importer.read.csv_rows import csv_field_limit
from segment_importer.read.detect import (
    PlainShape,
    detect,
    extension_hint,
    plain_shape,
    refuse_wide_without_bom,
)
from segment_importer.read.json_array import MAX_JSON_DEPTH
from segment_importer.read.no_records import records_or_give_up, what_it_looks_like
from segment_importer.read.opening import MAX_GZIP_EXPANSION, open_content
from segment_importer.read.reader import Format, ReadOptions
from segment_importer.read.records import FileFormatError, RecordStream, ResumePoint
from segment_importer.read.registry import reader_for, resumable_labels

__all__ = [
    "MAX_GZIP_EXPANSION",
    "MAX_JSON_DEPTH",
    "MAX_RECORD_BYTES",
    "FileFormatError",
    "Format",
    "PlainShape",
    "RecordStream",
    "ResumePoint",
    "csv_field_limit",
    "open_records",
    "plain_shape",
]

MAX_RECORD_BYTES = 1 << 20  # the default bound of one record
_SNIFF_CHUNK = 1 << 16


def open_records(
    stream: Any,
    key: str,
    *,
    max_record_bytes: int = MAX_RECORD_BYTES,
    resume: ResumePoint | None = None,
    stream_at_resume: bool = False,
    csv_encoding: str = "utf-8",
    known_format: str | None = None,
    first_row: int = 1,
    dropped_columns: Collection[str] = (),
) -> RecordStream:
    """Sniff `stream` (a `handle.ObjectHandle`, or anything with `read(n)` returning bytes)
    and return its records.

    `key` is the object key or file name; only its extension is used, as a hint.
    Raises FileFormatError for a CSV whose header cannot work.
    `resume` continues a read at a record (see `RecordStream.resume_point_after`): the
    stream is read from its start and the content before the point skipped, unless
    `stream_at_resume` says the stream already starts there (a ranged read of a plain file).
    `csv_encoding` decodes CSV (spreadsheets saved as Windows-1252, say); JSON is UTF-8. Text
    with a UTF-16/32 byte order mark is decoded by it, whatever `csv_encoding` says.
    A CSV `resume` reads the header (the bytes before `resume.header_end`) first, then goes on
    at `resume.offset`; with `stream_at_resume` the stream holds exactly those bytes.
    `known_format` skips detection (a byte range of a file whose format was already detected:
    its first line may be a broken one). `first_row` numbers a CSV range's rows from there.
    `dropped_columns` (the job's columns mapped to null) are never read by a columnar reader.
    """
    if max_record_bytes < 1:
        raise ValueError("max_record_bytes must be positive")
    cap = max_record_bytes + _SNIFF_CHUNK
    content = open_content(stream, cap=cap, resume=resume, stream_at_resume=stream_at_resume)
    content.hint = extension_hint(key)
    if known_format:
        fmt = Format(known_format)
    else:
        if not resume:
            refuse_wide_without_bom(content.head, csv_encoding)
        fmt, content.doc_key = detect(content.head, content.hint)
    reader = reader_for(fmt)
    if resume and not (reader.resumable and (resume.header_end or not reader.has_header)):
        raise FileFormatError(f"only {resumable_labels()} can be resumed; this part reads as {fmt.value}")
    if content.encoding:  # decoded from UTF-16/32 by its BOM: the reader gets UTF-8 text
        csv_encoding = "utf-8"
    options = ReadOptions(max_record_bytes, resume, csv_encoding, first_row, frozenset(dropped_columns))
    stream = reader.open(content, options)
    if content.encoding:
        # Offsets are the UTF-8 text's, not the object's: later parts re-read and skip.
        stream.without_resume_points()
        stream.warnings.append(
            f"the file is {content.encoding} text (by its byte order mark): it is read decoded to UTF-8;"
            " a later part re-reads it from the start"
        )
    if not resume and first_row == 1:  # a whole file, from its start
        looks_like = what_it_looks_like(content.head, fmt)
        stream.wrap(lambda records: records_or_give_up(records, looks_like))
    return stream
