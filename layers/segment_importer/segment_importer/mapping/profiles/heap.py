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
    file_name_words,
    first,
    tagged,
    text,
    without_none,
)
from segment_importer.mapping.profiles.context_paths import (
    SOURCE_LIBRARY_KEY,
    UTM_CONTEXT,
    move_to_context,
    with_page_properties,
)

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
# The table of pageviews. Its rows have no column naming the event, nor do those of a
# per-event table (`<environment>_<event>`); their columns cannot tell them apart either
# (events carry the pageview's `path`, `title`, ... and the session's properties): only the
# file's name can.
PAGEVIEWS_TABLE = "pageviews"


def matches(record: dict[str, Any]) -> bool:
    if "user_id" not in record or "event_type" in record or "event" in record:
        return False
    if "event_id" in record and "session_id" in record and "time" in record:
        return True
    # The users table: an anonymous user's `identity` is NULL (no cell at all in a CSV
    # unload), but every row has `joindate` and `last_modified`.
    return "joindate" in record and ("identity" in record or "last_modified" in record)


def to_spec(record: dict[str, Any]) -> SpecRecord:
    if "event_id" not in record:
        return _user(record)
    fields = {name: value for name, value in record.items() if name not in _IDS}
    name = text(first(record, "event_name", "event_table_name", "type"))
    call_type = _call_type(name)
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
    elif call_type == "page":
        spec["name"] = context.get("page", {}).get("title")
        with_page_properties(context.get("page"), spec["properties"])
    return without_none(spec), tagged(NAME, as_source_id(record.get("event_id")))


def _call_type(name: str | None) -> str | None:
    """page for a pageview, track for a named event; None for a row without a name column
    (the `pageviews` table, a per-event table): the file's name (`in_file`), else the job's
    `type` and `event` say what it is; with none of them it is a track call without an event,
    rejected with the advice to set `event`."""
    if name is None:
        return None
    return "page" if name.lower() in _PAGEVIEW else "track"


def in_file(spec: dict[str, Any], file_key: str) -> None:
    """A row of the `pageviews` table (`pageviews.csv`, `main_production.pageviews.csv`,
    `pageviews_0000_part_00`) is a page call, named by its title."""
    if spec.get("type") is None and PAGEVIEWS_TABLE in file_name_words(file_key):
        spec["type"] = "page"
        page = spec.get("context", {}).get("page", {})
        if page.get("title") is not None:
            spec["name"] = page["title"]
        with_page_properties(page, spec.get("properties"))


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


HEAP = Profile(NAME, matches, to_spec, in_file=in_file)
