"""What a reader yields: one source record, parsed or not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    reason: str | None = None  # a reason code from rejects.REASONS when unreadable
    detail: str | None = None  # human-readable, never containing record content
    raw: str | None = None  # an excerpt of the unreadable text, for the rejects file only


def excerpt(raw: bytes | str) -> str:
    """A bounded, printable excerpt of raw input for the rejects file."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text[:RAW_EXCERPT_CHARS]
