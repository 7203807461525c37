"""What the readers yield and share: a source record, parsed or not; where a read resumes;
the errors a file can raise."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from segment_importer.track import reasons

# Raw text kept for a rejected record is cut here: the rejects file must stay bounded.
RAW_EXCERPT_CHARS = 4096


@dataclass(slots=True)
class SourceRecord:
    """One record of an export file.

    `number` is the 1-based position of the record in the file (NDJSON: the line number;
    CSV: the data row, header excluded; JSON array: the element). It is stable across
    re-reads of the same object, so message ids derived from it are stable too.
    Exactly one of `fields` and `reason` is set.
    """

    number: int
    fields: dict[str, Any] | None = None
    reason: str | None = None  # a reason code from reasons.REASONS when unreadable
    detail: str | None = None  # human-readable, never containing record content
    raw: str | None = None  # an excerpt of the unreadable text, for the rejects file only


def excerpt(raw: bytes | str) -> str:
    """A bounded, printable excerpt of raw input for the rejects file."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text[:RAW_EXCERPT_CHARS]


# Not JSON, but what common tools write: named in a reject, so the user knows what to fix
# (the NDJSON and JSON array readers say the same).
NOT_JSON_NUMBER_CAUSE = (
    "NaN and Infinity are not JSON, though Python's json.dumps and pandas write them for"
    " missing or infinite floats: write null in their place"
)
LONE_SURROGATE_CAUSE = (
    "a lone UTF-16 surrogate escape such as \\ud800, written by JavaScript for a string cut"
    " in the middle of a character: Segment cannot carry it; fix or drop the text"
)


class FileFormatError(ValueError):
    """The file cannot be read at all (e.g. a CSV header with an empty column name)."""


class DamagedError(Exception):
    """The compressed data is damaged; the message is a fixed description, never data."""


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a continued read starts: the content bytes before it (decompressed bytes for
    gzip; the object's own bytes otherwise) and the number of the record there (NDJSON: its
    line; CSV: its data row). A CSV read also needs its header again: the bytes before
    `header_end` are read first."""

    offset: int
    line: int
    header_end: int = 0  # CSV only


def unreadable(number: int, detail: str) -> SourceRecord:
    """The last record of a file whose rest cannot be read."""
    return SourceRecord(number, reason=reasons.FILE_UNREADABLE, detail=detail)


class ReadPosition(Protocol):
    """Where a reader is, so a stop after a record can become a `ResumePoint`."""

    def after(self, number: int) -> ResumePoint | None: ...


class RecordStream:
    """The records of one export file, read lazily; iterable once."""

    __slots__ = (
        "_position",
        "_records",
        "_used",
        "columns",
        "compression",
        "delimiter",
        "format",
        "warnings",
    )

    def __init__(
        self,
        fmt: str,
        compression: str,
        records: Iterator[SourceRecord],
        position: ReadPosition | None = None,
    ) -> None:
        self.format = fmt  # a `reader.Format` value: "ndjson" | "json_array" | "csv" | "parquet"
        self.compression = compression  # "gzip" | "bzip2" | "zstd" | "none"
        self._records = records
        self._position = position
        self._used = False
        self.warnings: list[str] = []  # what the reader tolerated (a repeated CSV column name)
        self.columns: list[str] = []  # a CSV's column names in order (as read: `name_2` for a repeat)
        self.delimiter = ""  # a CSV's cell separator, once its header is read

    def __iter__(self) -> Iterator[SourceRecord]:
        # The records come from a stream: a second pass would silently yield nothing.
        if self._used:
            raise RuntimeError("a RecordStream can be iterated only once")
        self._used = True
        return self._records

    def wrap(self, transform: Callable[[Iterator[SourceRecord]], Iterator[SourceRecord]]) -> None:
        """Pass the records through `transform` (before they are iterated)."""
        self._records = transform(self._records)

    def without_resume_points(self) -> None:
        """No later read starts at an offset of this one (its offsets are not the object's)."""
        self._position = None

    def resume_point_after(self, number: int) -> ResumePoint | None:
        """Where a later read can start right after record `number`, the last one yielded
        (NDJSON; CSV in an encoding whose byte lengths are known), else None."""
        return self._position.after(number) if self._position is not None else None
