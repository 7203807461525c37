"""Field names as people spell them in spreadsheets and ad-hoc exports ("User ID", "userid",
"Event Name", "Timestamp"), renamed to Segment's where Segment's own are missing."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from segment_importer.mapping.timestamps import TimestampError, parse_timestamp

# Matched without case, spaces, dashes, dots or underscores.
_SPELLINGS = {
    "userid": "userId",
    "distinctid": "userId",  # PostHog and other Mixpanel-like exports
    "anonymousid": "anonymousId",
    "anonid": "anonymousId",
    "userpseudoid": "anonymousId",  # Google Analytics 4 (BigQuery export)
    "event": "event",
    "eventname": "event",
    "timestamp": "timestamp",
    "originaltimestamp": "originalTimestamp",
    "groupid": "groupId",
    "previousid": "previousId",
    "messageid": "messageId",
}
# Taken as the event time only when a record has no timestamp of its own.
_TIME_SPELLINGS = frozenset({"time", "eventtime", "eventtimestamp", "createdat", "occurredat", "datetime"})
_NOT_IN_NAMES = str.maketrans("", "", " _-.")


@lru_cache(maxsize=4096)
def canonical_field(name: str) -> str | None:
    """The Segment field a column name spells (`"User ID"` -> `userId`), if any."""
    folded = name.translate(_NOT_IN_NAMES).lower()
    if folded in _TIME_SPELLINGS:
        return "time"
    return _SPELLINGS.get(folded)


def respell(record: dict[str, Any], *, keep: str = "") -> None:
    """Rename columns spelled unlike Segment's fields, where the field itself is absent (never
    to `keep`: a field the record's shape says comes from elsewhere)."""
    fallback_times = []
    for key in list(record):
        canonical = canonical_field(key)
        if canonical == "time":
            fallback_times.append(key)
        elif canonical and canonical != key and canonical not in record and canonical != keep:
            record[canonical] = record.pop(key)
    # Only then a time-like column (`created_at`, `time`): a `Timestamp` column, renamed
    # above wherever it stands, is the event time.
    if "timestamp" in record or "originalTimestamp" in record:
        return
    for key in fallback_times:
        if _is_time(record[key]):
            record["timestamp"] = record.pop(key)
            return


def created_at_column(record: dict[str, Any]) -> tuple[str, Any] | None:
    """A top-level column spelling `createdAt` (`created_at`, `Created At`), and its value."""
    for key, value in record.items():
        if key.translate(_NOT_IN_NAMES).lower() == "createdat":
            return key, value
    return None


def keep_created_at_trait(message: dict[str, Any], column: tuple[str, Any]) -> None:
    """On an identify or group call a created-at column is Segment's reserved trait
    `createdAt` (when the account was created: Intercom's signup date, Customer.io's
    created_at), even when it was also taken as the call's time: it is not dropped."""
    key, value = column
    traits = message.setdefault("traits", {})
    if not isinstance(traits, dict) or ("createdAt" in traits and key != "createdAt"):
        return
    traits.pop(key, None)  # the column as written, moved in with the other columns
    traits["createdAt"] = value


def _is_time(value: Any) -> bool:
    try:
        parse_timestamp(value)
    except TimestampError:
        return False
    return True


def lacks_fields(record: dict[str, Any]) -> bool:
    """Cheap test: is a field Segment needs missing (so the names may be spelled otherwise)?"""
    return (
        ("userId" not in record and "anonymousId" not in record)
        or ("timestamp" not in record and "originalTimestamp" not in record)
        or ("event" not in record and "type" not in record)
    )
