"""Heap: Heap Connect tables (S3 or warehouse, as CSV or JSON): events (`all_events`,
`pageviews`, one table per defined event) and `users`.

Columns as Heap Connect and the Fivetran Heap schema list them
(fivetran.com/docs/connectors/applications/heap/connector-schema): events `event_id`,
`user_id` (Heap's own id of the visitor), `session_id`, `time`, `event_table_name` or
`event_name`/`type`, `library`, `platform`, `device_type`, `browser`, `country`, `region`,
`city`, `ip`, `referrer`, `landing_page`, `domain`, `path`, `title`, `utm_*`; users `user_id`,
`identity` (the id the product identified the user with), `joindate`, `last_modified`, and
the user properties.
"""

from __future__ import annotations

from typing import Any

from segment_importer.mapping.profiles.common import (
    Profile,
    SpecRecord,
    as_source_id,
    first,
    tagged,
    text,
    without_none,
)
from segment_importer.mapping.profiles.context_paths import SOURCE_LIBRARY_KEY, UTM_CONTEXT, move_to_context

NAME = "heap"
CONTEXT_FIELDS = {
    "ip": ("ip",),
    "browser": ("browser", "name"),
    "platform": ("os", "name"),
    "device_type": ("device", "type"),
    "country": ("location", "country"),
    "region": ("location", "region"),
    "city": ("location", "city"),
    "referrer": ("page", "referrer"),
    "path": ("page", "path"),
    "title": ("page", "title"),
    "domain": ("page", "domain"),
    "library": (SOURCE_LIBRARY_KEY, "name"),
    **UTM_CONTEXT,
}
_IDS = ("event_id", "user_id", "session_id", "time", "identity", "event_table_name", "event_name", "type")
_PAGEVIEW = frozenset({"pageview", "pageviews", "page_view"})


def matches(record: dict[str, Any]) -> bool:
    if "user_id" not in record or "event_type" in record or "event" in record:
        return False
    if "event_id" in record and "session_id" in record and "time" in record:
        return True
    return "identity" in record and "joindate" in record  # the users table


def to_spec(record: dict[str, Any]) -> SpecRecord:
    if "event_id" not in record:
        return _user(record)
    fields = {name: value for name, value in record.items() if name not in _IDS}
    name = text(first(record, "event_name", "event_table_name", "type"))
    call_type = "page" if (name or "").lower() in _PAGEVIEW else "track"
    context: dict[str, Any] = {}
    move_to_context(fields, CONTEXT_FIELDS, context)
    spec = {
        "type": call_type,
        "userId": text(record.get("identity")),
        "anonymousId": text(record.get("user_id")),  # Heap's id of the visitor (anonymous)
        "timestamp": record.get("time"),
        "properties": {**fields, "heap_session_id": record.get("session_id")},
        "context": context,
    }
    if call_type == "track":
        spec["event"] = name
    else:
        spec["name"] = context.get("page", {}).get("title")
    return without_none(spec), tagged(NAME, as_source_id(record.get("event_id")))


def _user(record: dict[str, Any]) -> SpecRecord:
    traits = {name: value for name, value in record.items() if name not in ("user_id", "identity")}
    traits["createdAt"] = traits.pop("joindate", None)
    spec = {
        "type": "identify",
        "userId": text(record.get("identity")),
        "anonymousId": text(record.get("user_id")),
        "timestamp": traits.pop("last_modified", None),
        "traits": without_none(traits),
    }
    return without_none(spec), None


HEAP = Profile(NAME, matches, to_spec)
