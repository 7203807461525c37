"""Segment's warehouse tables (one per call type, columns flattened to snake_case): a row
with a warehouse-only column is a warehouse row, and its `context_*` columns nest back into
`context`. Used by the Segment profile, which reads archives and warehouse rows alike.

The tables have no `type` column (the table is the type): a row's call type comes from the
columns only its table has (`previous_id`: aliases; `group_id`: groups; `event`/`event_text`: tracks; `url` or
`path`: pages; `name` without a reserved identify trait column such as `email`: screens;
none of those: identifies). A job's `type` other than `track` wins over this guess (the
mapper sets it before the profile runs); `context_library_*` nest to `context.library`,
which the mapper keeps as `context.sourceLibrary`."""

from __future__ import annotations

import re
from typing import Any

from segment_importer.job import CALL_TYPES
from segment_importer.mapping.profiles.context_paths import nest

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
_NAME_WORDS = re.compile(r"[^a-z0-9]+")


def table_of_file(key: str) -> str | None:
    """The warehouse table a file exports, by its name: `identifies.csv`, `prod.pages.csv.gz`,
    `tracks_0000_part_00` (Redshift UNLOAD), `zip!users.ndjson` (an archive member); None when
    the name names no table, or more than one."""
    name = key.rsplit("/", 1)[-1].rsplit("!", 1)[-1].lower()
    tables = {word for word in _NAME_WORDS.split(name) if word in TABLE_CALL_TYPES}
    return tables.pop() if len(tables) == 1 else None


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
    if call_type is not None and str(call_type).strip().lower() not in CALL_TYPES:
        properties = record.setdefault("properties", {})
        if isinstance(properties, dict) and "type" not in properties:
            properties["type"] = record.pop("type")
    if "type" not in record:
        record["type"] = _table_call_type(record)


def _table_call_type(record: dict[str, Any]) -> str:
    """The call type of a warehouse row by the columns of its table (see the module doc)."""
    if "previous_id" in record:
        return "alias"
    if "group_id" in record:
        return "group"
    if "event" in record or "event_text" in record:
        return "track"
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
