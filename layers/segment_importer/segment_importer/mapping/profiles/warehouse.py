"""Segment's warehouse tables (one per call type, columns flattened to snake_case): a row
with a warehouse-only column is a warehouse row, and its `context_*` columns nest back into
`context`. Used by the Segment profile, which reads archives and warehouse rows alike.

The tables have no `type` column (the table is the type): a row's call type comes from the
columns only its table has (`event`/`event_text`: tracks and the per-event tables, checked
first, as those tables also hold one column per event property, such as `group_id`,
`previous_id`, `url` or `name`; then `previous_id`: aliases; `group_id`: groups; `url` or
`path`: pages; `name` without a reserved identify trait column such as `email`: screens;
none of those: identifies). A `type` column of a row with an event is the event's property
unless it says `track` (a union of tables has no event in its other tables' rows). A job's
`type` other than `track`, or the file's table name, wins over this guess (the mapper sets
it, as a GivenCallType, before the profile runs). Identify and group rows get Segment's
camelCase reserved traits back (`first_name` -> `firstName`, `created_at` -> `createdAt` in
ISO 8601); `context_library_*` nest to `context.library`,
which the mapper keeps as `context.sourceLibrary`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from segment_importer.job import CALL_TYPES
from segment_importer.mapping.profiles.context_paths import nest
from segment_importer.mapping.timestamps import TimestampError, normalize_timestamp

# Segment warehouse columns that are load bookkeeping, not event data.
WAREHOUSE_ONLY_FIELDS = frozenset({"uuid_ts", "loaded_at"})
# Columns that only Segment's warehouse tables have: a row with one is a warehouse row.
WAREHOUSE_MARKERS = frozenset({"received_at", "uuid_ts", "loaded_at", "context_library_name"})
# The warehouse flattens `context.page.url` to `context_page_url`: Segment's context objects
# and top-level fields, to nest the columns back (leaves are camelCased, as Segment's are).
_CONTEXT_OBJECTS = frozenset(
    {
        "app",
        "campaign",
        "device",
        "library",
        "location",
        "network",
        "os",
        "page",
        "referrer",
        "screen",
        "traits",
    }
)
# Segment's reserved identify traits (segment.com/docs/connections/spec/identify/#traits)
# that an identifies table has as columns and a screens table does not: with one of them a
# `name` column is the user's name (a trait), not a screen's name.
IDENTIFY_TRAIT_COLUMNS = frozenset(
    {"email", "first_name", "last_name", "username", "phone", "birthday", "gender", "avatar"}
)
_CONTEXT_FIELDS = {"user_agent": "userAgent", "group_id": "groupId", "instance_id": "instanceId"}
# Segment's warehouse tables by name (segment.com/docs/connections/storage/warehouses/schema/)
# and the call type of their rows. `users` holds each user's latest traits: its `id` is the
# userId (not a messageId) and its `received_at` the time of those traits.
TABLE_CALL_TYPES = {
    "tracks": "track",
    "identifies": "identify",
    "pages": "page",
    "screens": "screen",
    "groups": "group",
    "aliases": "alias",
    "users": "identify",
}
USERS_TABLE = "users"
# Tables whose rows repeat another table's rows, with the same id but fewer columns: Segment's
# (and RudderStack's) `tracks` has every track call without its properties, which are in the
# per-event table; Heap Connect's `all_events` does the same for Heap's per-event tables.
SHADOW_TABLES = frozenset({"tracks", "all_events"})
# Segment's reserved traits that the warehouse snake_cases (the others are one word), by the
# call whose spec reserves them (segment.com/docs/connections/spec/identify/#traits, /group/#traits).
_RESERVED_TRAIT_COLUMNS = {
    "identify": {"first_name": "firstName", "last_name": "lastName", "created_at": "createdAt"},
    "group": {"created_at": "createdAt"},
}
# A shadow table's name as a word of the file's name: `tracks.csv`, `prod.tracks_0000_part_00`.
_SHADOW_NAME = re.compile(rf"(?:^|[^a-z0-9])({'|'.join(sorted(SHADOW_TABLES))})(?:[^a-z0-9]|$)")
_NAME_WORDS = re.compile(r"[^a-z0-9]+")


def table_of_file(key: str) -> str | None:
    """The warehouse table a file exports, by its name: `identifies.csv`, `prod.pages.csv.gz`,
    `tracks_0000_part_00` (Redshift UNLOAD), `zip!users.ndjson` (an archive member); None when
    the name names no table, or more than one."""
    name = key.rsplit("/", 1)[-1].rsplit("!", 1)[-1].lower()
    tables = {word for word in _NAME_WORDS.split(name) if word in TABLE_CALL_TYPES}
    return tables.pop() if len(tables) == 1 else None


class GivenCallType(str):
    """A warehouse row's call type from the job or the file's table name, not from a column:
    the mapper inserts it as `type`, and it is never taken for an event's `type` property."""

    __slots__ = ()


def shadow_table_warning(key: str) -> str | None:
    """The report's warning for a file exporting a table whose rows repeat the per-event
    tables' rows without their properties (SHADOW_TABLES), or None."""
    name = key.rsplit("/", 1)[-1].rsplit("!", 1)[-1].lower()
    found = _SHADOW_NAME.search(name)
    if found is None:
        return None
    return (
        f"the file is named like a warehouse `{found.group(1)}` table (Segment's or RudderStack's "
        "`tracks`, Heap Connect's `all_events`): if it is one, its rows carry no event properties and "
        "share their ids, so their messageIds, with the rows of the per-event tables, and Segment keeps "
        "the first message of an id. Import the per-event tables first (a local run sends this file "
        "after the others), or leave this table out"
    )


def is_shadow_table(key: str) -> bool:
    """Does the file export a table that repeats the per-event tables' rows (SHADOW_TABLES)?"""
    return shadow_table_warning(key) is not None


def from_users_table(record: dict[str, Any]) -> None:
    """A `users` row as an identify: `id` is the user, `received_at` the time of its traits."""
    if "id" in record and "user_id" not in record and "userId" not in record:
        record["user_id"] = record.pop("id")
    if "received_at" in record and "timestamp" not in record:
        record["timestamp"] = record["received_at"]


def from_warehouse_columns(record: dict[str, Any]) -> None:
    """A warehouse row's flattened `context_*` columns back into `context`, and a `type`
    column that is not a call type (the warehouse keeps one table per call type, so such a
    column is an event property) into the properties."""
    context = record.get("context", {})
    if isinstance(context, dict):  # one that is not an object is left to validation
        for key in [key for key in record if key.startswith("context_")]:
            path = _context_path(key.removeprefix("context_"))
            if key not in WAREHOUSE_ONLY_FIELDS and nest(context, path, record[key]):
                del record[key]
        if context:
            record["context"] = context
    call_type = record.get("type")
    if call_type is not None and _is_property_type(str(call_type).strip().lower(), record):
        properties = record.setdefault("properties", {})
        if isinstance(properties, dict) and "type" not in properties:
            properties["type"] = record.pop("type")
    if "type" not in record:
        record["type"] = _table_call_type(record)
    reserved = _RESERVED_TRAIT_COLUMNS.get(str(record["type"]).strip().lower())
    if reserved and not record.keys().isdisjoint(reserved):
        _camel_reserved_traits(record, reserved)


def _is_property_type(call_type: str, record: dict[str, Any]) -> bool:
    """A `type` column that is not a call type, or is one other than `track` in a row with an
    event (a per-event table's property `type`, say "page"): the event's property."""
    if call_type not in CALL_TYPES:
        return True
    return call_type != "track" and not isinstance(record["type"], GivenCallType) and _has_event(record)


def _has_event(record: dict[str, Any]) -> bool:
    return record.get("event") not in (None, "") or record.get("event_text") not in (None, "")


def _camel_reserved_traits(record: dict[str, Any], reserved: dict[str, str]) -> None:
    """`first_name` -> `firstName`, `created_at` -> `createdAt` (as ISO 8601 when it is a
    time: the warehouse writes `2020-12-01 10:00:00 UTC`), unless the row has both spellings.
    A `createdAt` set here leaves the mapper's own created-at rule
    (spellings.keep_created_at_trait) nothing to do."""
    for column, trait in reserved.items():
        if column in record and trait not in record:
            value = record.pop(column)
            record[trait] = _as_iso_8601(value) if trait == "createdAt" else value


def _as_iso_8601(value: Any) -> Any:
    """A warehouse time (`2020-12-01 10:00:00 UTC`) as ISO 8601, which the spec asks of
    `createdAt`; a value already ISO 8601 (`2020-01-02T03:04:05Z`, `2020-01-02`), or not a
    time, as written."""
    if not isinstance(value, str):
        return value
    try:
        if " " not in value.strip():
            datetime.fromisoformat(value)
            return value
    except ValueError:
        pass
    try:
        return normalize_timestamp(value)
    except TimestampError:
        return value  # a trait, not the call's time: kept as it is


def _table_call_type(record: dict[str, Any]) -> str:
    """The call type of a warehouse row by the columns of its table (see the module doc)."""
    if "event" in record or "event_text" in record:
        return "track"  # first: a per-event table has a column per property (`group_id`, `url`)
    if "previous_id" in record:
        return "alias"
    if "group_id" in record:
        return "group"
    if "url" in record or "path" in record:
        return "page"
    if "name" in record and record.keys().isdisjoint(IDENTIFY_TRAIT_COLUMNS):
        return "screen"
    return "identify"


def _context_path(flat: str) -> tuple[str, ...]:
    """`page_url` -> (page, url); `device_ad_tracking_enabled` -> (device, adTrackingEnabled);
    `user_agent` -> (userAgent,); a name it does not know stays as it is."""
    if flat in _CONTEXT_FIELDS:
        return (_CONTEXT_FIELDS[flat],)
    head, _, rest = flat.partition("_")
    if head in _CONTEXT_OBJECTS and rest:
        return (head, rest if head == "traits" else _camel(rest))
    return (flat,)


def _camel(snake: str) -> str:
    first, *others = snake.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in others)
