"""Before mapping: the record inside a line (wrapped records), the job's null spellings and
trimming of CSV cells, upper-case column names folded, and the job's column renames.

Upper-case names: Snowflake folds unquoted identifiers to upper case, so a table unloaded
from it (Segment's warehouse, Amplitude's Snowflake export) has `EVENT_TEXT`, `USER_ID`,
`$INSERT_ID`. A record whose names are all upper case has its names lower-cased, so the
profiles know them; a name with a lower-case letter (`userId`, `Event Name`) keeps every
name of its record as written.

Wrapped records: some exports put each event inside an envelope, e.g. every line
`{"data": {...event...}, "metadata": {...}}` (stream and webhook archives) or an event
inside `EventPayload` (queue and event-bus dead-letter dumps). The job's `recordPath` names
the record inside each line in dot notation (`data`, `EventPayload.event`); without one,
the well-known envelopes below are detected per line.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from functools import lru_cache
from typing import Any

from segment_importer.mapping.profiles.spellings import canonical_field
from segment_importer.mapping.timestamps import TimeReader, TimestampError

# Envelope key -> the keys an envelope may hold besides it (nothing else, or it is an event).
_ENVELOPES = {
    # Also Airbyte's record messages (`{"stream", "data", "emitted_at"}`, as its connectors'
    # expected_records.jsonl and JSONL destinations write them) and raw tables' `_airbyte_data`.
    "data": frozenset({"data", "metadata", "meta", "id", "attributes", "stream", "emitted_at", "namespace"}),
    "_airbyte_data": frozenset(
        {
            "_airbyte_data",
            "_airbyte_ab_id",
            "_airbyte_emitted_at",
            "_airbyte_raw_id",
            "_airbyte_extracted_at",
            "_airbyte_loaded_at",
            "_airbyte_meta",
            "_airbyte_generation_id",
        }
    ),
    "EventPayload": frozenset({"EventPayload", "EventType", "EventTime", "EventId", "Source", "Metadata"}),
}
_EVENT_FIELDS = frozenset({"type", "event", "userId", "anonymousId", "event_type", "event_name"})


class RecordPathError(ValueError):
    """A line has no object at the job's `recordPath`."""


def record_at(fields: dict[str, Any], record_path: str) -> dict[str, Any]:
    """The record a line holds: at `record_path`, else inside a well-known envelope, else
    the line itself."""
    if record_path:
        node: Any = fields
        for name in record_path.split("."):
            node = node.get(name) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise RecordPathError(f"the line has no object at recordPath {record_path!r}")
        return node
    if fields.keys().isdisjoint(_ENVELOPES) or not _EVENT_FIELDS.isdisjoint(fields):
        return fields
    for key, allowed in _ENVELOPES.items():
        inner = fields.get(key)
        if isinstance(inner, dict) and allowed.issuperset(fields):
            return inner
    return fields


def folded_case(fields: dict[str, Any], renames: dict[str, str | None]) -> dict[str, Any]:
    """`fields` with its names lower-cased when all are upper case (the module doc); a name
    the job renames stays as written, so the job's `columns` still find it."""
    if not _all_upper_case(tuple(fields)):
        return fields
    return {key if key in renames else key.lower(): value for key, value in fields.items()}


@lru_cache(maxsize=1024)
def _all_upper_case(keys: tuple[str, ...]) -> bool:
    """Cached per tuple of names: a file's rows share theirs."""
    return any(key != key.lower() for key in keys) and all(key == key.upper() for key in keys)


def renamed(fields: dict[str, Any], columns: dict[str, str | None]) -> dict[str, Any]:
    """The job's renames applied at once, each from the original record: a swap
    (`a` -> `b`, `b` -> `a`) or a chain (`a` -> `b`, `b` -> `c`) moves every value exactly
    once. A column renamed to null is dropped; a rename onto a column that is not itself
    renamed replaces it."""
    kept: dict[str, Any] = {}
    moved: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in columns:
            kept[key] = value
        elif columns[key]:
            moved[columns[key]] = value  # type: ignore[index]
    kept.update(moved)
    return kept


def rename_collisions(
    columns: dict[str, str | None], names: Iterable[str], segment_keys: frozenset[str]
) -> list[str]:
    """Where the job's renames would lose a value: a column mapped to a field that a column
    the job does not map (it keeps its name) fills too, directly (`a` -> `userId` beside a
    `userId` column) or where it lands (`a` -> `properties.b` beside a bare column `b`, which
    becomes properties.b, or traits.b for identify and group calls). `renamed` would keep one
    value and drop the other without a word, so the file (its header) or the record is refused
    instead, as two columns mapped to one field are. `segment_keys`: the message's own
    top-level keys, which land as they are."""
    present = set(names)
    landings: dict[str, str] = {}  # field path -> the kept column that fills it
    for name in present.difference(columns):
        for path in _landings(name, segment_keys):
            landings.setdefault(path, name)
    problems = []
    for column, target in columns.items():
        if not target or column not in present:
            continue
        kept = next((landings[path] for path in _landings(target, segment_keys) if path in landings), None)
        if kept is not None:
            problems.append(
                f"columns: {column!r} is mapped to {target!r}, which {kept!r} (not mapped, so it keeps "
                "its name) fills too: a record would keep one value and lose the other; map "
                f"{kept!r} as well, to a field of its own or to null to drop it"
            )
    return problems


def _landings(name: str, segment_keys: frozenset[str]) -> tuple[str, ...]:
    """The field paths a key (a column's name or a rename's target) fills: a bare name that is
    no Segment field becomes a property or a trait."""
    if "." in name or name in segment_keys:
        return (name,)
    return (name, f"properties.{name}", f"traits.{name}")


def cleaned_cells(fields: dict[str, Any], nulls: frozenset[str], *, trim: bool) -> dict[str, Any]:
    """CSV cells with surrounding whitespace stripped (`trim`) and the job's null spellings
    (`NULL`, `None`, ...) left out, as empty cells are."""
    cleaned = {}
    for name, cell in fields.items():
        if trim and isinstance(cell, str):
            cell = cell.strip()
            if not cell:
                continue
        if cell not in nulls:
            cleaned[name] = cell
    return cleaned


def with_formatted_times(record: dict[str, Any], times: TimeReader) -> dict[str, Any]:
    """Time-like fields in the job's `timestampFormat` (and `timezone`), rewritten as ISO 8601
    before the source profile reads them (the rest as they are)."""
    converted = dict(record)
    for key, value in record.items():
        if type(value) is str and canonical_field(key) in ("time", "timestamp", "originalTimestamp"):
            # Not in the format: kept as it is; the mapper's own parse reports it, or names the column.
            with suppress(TimestampError):
                converted[key] = times.normalize(value)
    return converted


def missing_time_detail(spec: dict[str, Any], message: dict[str, Any], timestamp_format: str | None) -> str:
    """Name a time-like column that was found but not read (its value is not quoted: the
    detail is logged and counted; the rejects file holds the record)."""
    candidates = {**spec, **(message.get("properties") or {})}
    found = next((key for key in candidates if canonical_field(key) == "time"), None)
    if found is None:
        return "no timestamp or originalTimestamp field"
    why = (
        f"does not match timestampFormat {timestamp_format!r}"
        if timestamp_format
        else "is not ISO 8601 or epoch seconds/milliseconds: give its format as timestampFormat"
    )
    return f"no timestamp or originalTimestamp field; column {found!r} looks like the event time but {why}"
