"""What a job's `drop`, `hash` and `set` may do to a field, checked when the job is read
(ShapingError names the key): nothing that makes a message Segment drops (answering 200),
nothing that undoes what the mapper guarantees, nothing that sends history without its time.
"""

from __future__ import annotations

from typing import Any

from segment_importer.job import JobOptionsError
from segment_importer.mapping.timestamps import (
    ImplausibleTimestampError,
    TimeReader,
    TimestampError,
    format_timestamp,
    parse_iso_timestamp,
)
from segment_importer.mapping.validation import (
    ARCHIVE_ONLY_FIELDS,
    CONTEXT_OBJECTS,
    ID_FIELDS,
    OBJECT_FIELDS,
    TEXT_FIELDS,
)

# The importer's own fields, never changed by a job (the id is what Segment dedupes by, the
# library names the importer), and an archive's bookkeeping, stripped from every message and
# never put back (Segment's guide: re-sent messages carry no sentAt, messageId, projectId).
PROTECTED_PATHS = frozenset({"type", "messageId", "context.library"}) | ARCHIVE_ONLY_FIELDS
# Fields Segment requires: `drop` would make every message invalid (hash or set them instead).
REQUIRED_PATHS = frozenset({"userId", "anonymousId", "event", "groupId", "previousId"})
# The event's time: without it Segment stamps years of history with the time it arrives.
TIME_PATH = "timestamp"
# The times a `set` may give: ISO 8601 within the job's timestampRange, as the mapper takes them.
TIME_PATHS = frozenset({TIME_PATH, "originalTimestamp"})
# Fields whose value is text or an object: a `set` must give that, a `hash` (text) only text.
TEXT_PATHS = ID_FIELDS | TEXT_FIELDS
OBJECT_PATHS = frozenset(OBJECT_FIELDS) | {f"context.{name}" for name in CONTEXT_OBJECTS}
INTEGRATIONS = "integrations"
# Fields of some call types only (Segment's spec: `event` is a track call's): a `set` of one
# is applied to those calls alone, never added to the others (QA2 O12: identify got `event`).
CALL_TYPE_FIELDS = {
    "event": frozenset({"track"}),
    "name": frozenset({"page", "screen"}),
    "category": frozenset({"page", "screen"}),
    "groupId": frozenset({"group"}),
    "previousId": frozenset({"alias"}),
}


class ShapingError(JobOptionsError):
    """A shaping key of the job is not valid; the message names the key and what it must be."""


def check_path(name: str, path: str, *, may_be_required: bool) -> None:
    """A dot path of `drop` (`may_be_required` False), `hash.paths` or `set`."""
    if not path or any(not part for part in path.split(".")):
        raise ShapingError(f"'{name}': {path!r} is not a dot path such as \"context.ip\"")
    if any(_within(path, protected) or _within(protected, path) for protected in PROTECTED_PATHS):
        raise ShapingError(
            f"'{name}': {path!r} is or holds the importer's own field and cannot be changed as a "
            'whole (change the fields in it, e.g. "context.source")'
        )
    if not may_be_required and path in REQUIRED_PATHS:
        raise ShapingError(
            f"'{name}': {path!r} is required by Segment; hash or set it instead of dropping it"
        )
    if name != "set" and path == TIME_PATH:
        raise ShapingError(
            f"'{name}': {path!r} is the event's time: without it Segment would stamp the history "
            "with the time it arrives (filter by time with 'filter.since' and 'filter.until')"
        )
    if name == "hash.paths" and (path in OBJECT_PATHS or _within(path, INTEGRATIONS)):
        raise ShapingError(f"'{name}': {path!r} is an object or a setting; hash the text fields in it")


def set_value(path: str, value: Any, timestamp_range: list[str] | None = None) -> Any:
    """A `set` value checked against the field it sets (ShapingError), a time in Segment's form
    (`timestamp_range`: the job's timestampRange, None for the default)."""
    if path in TEXT_PATHS and not (isinstance(value, str) and value.strip()):
        raise ShapingError(f"'set': {path!r} must be set to non-empty text, not {value!r}")
    if path in OBJECT_PATHS and not isinstance(value, dict):
        raise ShapingError(f"'set': {path!r} must be set to an object, not {value!r}")
    settings = value if path == INTEGRATIONS else {path: value} if path.count(".") == 1 else {}
    if _within(path, INTEGRATIONS) and not all(isinstance(v, bool | dict) for v in settings.values()):
        raise ShapingError(f"'set': {path!r}: a destination's setting is true, false or an object")
    if path in TIME_PATHS:
        return _set_time(path, value, timestamp_range)
    return value


def _set_time(path: str, value: Any, timestamp_range: list[str] | None) -> str:
    """A time a `set` gives every message: ISO 8601 text (an epoch number was taken, then
    ignored) within the job's timestampRange (1970 or 9999 went out with OK, while the same
    time in an export is rejected as implausible_timestamp)."""
    try:
        text = format_timestamp(parse_iso_timestamp(value))
        return TimeReader(plausible=timestamp_range).normalize(text)
    except ImplausibleTimestampError as error:
        raise ShapingError(f"'set': {path!r} {value!r}: {error}") from None
    except TimestampError:
        epoch = " (an epoch number is not taken)" if _is_number(value) else ""
        raise ShapingError(
            f"'set': {path!r} must be set to an ISO 8601 time such as \"2021-03-04T05:06:07Z\", not "
            f"{value!r}{epoch}"
        ) from None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    try:
        float(value)
    except (ValueError, OverflowError):
        return False
    return True


def _within(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(f"{ancestor}.")
