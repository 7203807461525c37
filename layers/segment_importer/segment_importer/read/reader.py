"""What a format's reader is: a `Format`, the properties the pipeline asks instead of testing
format names, and one `open` that turns opened content into a `RecordStream`.

The pipeline never compares format strings: it asks the reader (`registry.reader_for`) whether
a part can resume at a byte offset, whether a plain file can be cut in byte ranges, and
whether its cells are text to be typed. A new format is one module with a reader object and
one line in `registry.READERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from segment_importer.read.records import ResumePoint

if TYPE_CHECKING:
    from segment_importer.read.opening import Content
    from segment_importer.read.records import RecordStream


class Format(StrEnum):
    """The formats an export file is read as; the values are what reports and the ledger hold."""

    NDJSON = "ndjson"
    JSON_ARRAY = "json_array"
    CSV = "csv"
    PARQUET = "parquet"
    SNOWPLOW_TSV = "snowplow_tsv"  # Snowplow enriched events: headerless TSV


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How one read goes: the record bound, where it resumes, CSV's encoding and first row."""

    max_record_bytes: int
    resume: ResumePoint | None = None
    csv_encoding: str = "utf-8"
    first_row: int = 1
    # Columns the job drops (`"columns": {"name": null}`): a columnar reader never reads them.
    dropped_columns: frozenset[str] = frozenset()


class Reader(Protocol):
    """One format's reader (a module-level object of the format's own module)."""

    @property
    def format(self) -> Format: ...

    @property
    def label(self) -> str:
        """How messages name the format ("NDJSON")."""
        ...

    @property
    def resumable(self) -> bool:
        """A later part can start reading at the byte offset after a record."""
        ...

    @property
    def span_splittable(self) -> bool:
        """A plain (uncompressed) file can be cut in byte ranges at line starts."""
        ...

    @property
    def has_header(self) -> bool:
        """The first line names the columns: a resumed read or a byte range reads it first,
        and record numbers count data rows after it."""
        ...

    @property
    def records_span_lines(self) -> bool:
        """A record may hold a line break (a quoted CSV cell), so a byte range's lines must be
        proven to be one record each."""
        ...

    @property
    def cells_are_text(self) -> bool:
        """Every value is a string standing for a typed one (CSV cells), to be coerced."""
        ...

    def open(self, content: Content, options: ReadOptions) -> RecordStream:
        """The records of `content` (the object opened and sniffed)."""
        ...
