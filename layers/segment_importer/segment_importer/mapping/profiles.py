"""Source profiles: the shapes real exports come in, rewritten into Segment's spec shape.

Each profile takes a parsed record (a fresh dict the caller owns) and returns
`(spec_record, source_id)`: a record keyed like a Segment message, plus the record's
original unique id if the export has one (used to derive a stable messageId). A source id
is tagged with its source and includes what the source itself dedupes on, so ids from
different tools never collide.

- segment (here): Segment spec messages (camelCase), Segment's S3/warehouse archives
  (their archive-only fields are dropped; snake_case warehouse columns are renamed),
  RudderStack dumps (Segment-spec lines with `rudderId`, `request_ip`, `channel`), and generic
  CSV/JSON rows such as `userId,event,timestamp,properties.plan`.
- the vendors, one module each under `vendors/` (PostHog, Mixpanel, Amplitude, GA4), listed
  in VENDORS in the order they are tried. docs/mapping.md lists which field goes where.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from segment_importer.job import CALL_TYPES
from segment_importer.mapping.timestamps import TimestampError, parse_timestamp
from segment_importer.mapping.vendors import amplitude, ga4, mixpanel, posthog
from segment_importer.mapping.vendors.fields import SpecRecord, nest

# Fields only an archive has; re-sending them would shift times or dedupe events away.
ARCHIVE_ONLY_FIELDS = frozenset(
    {"sentAt", "messageId", "projectId", "receivedAt", "writeKey", "version", "_metadata"}
)
# Segment warehouse columns that are load bookkeeping, not event data.
WAREHOUSE_ONLY_FIELDS = frozenset({"uuid_ts", "loaded_at", "context_library_name", "context_library_version"})
# RudderStack's additions to Segment-spec lines -> context paths.
_RUDDERSTACK_FIELDS = {"rudderId": ("rudderId",), "request_ip": ("ip",), "channel": ("channel",)}
SNAKE_CASE_ALIASES = {
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "group_id": "groupId",
    "previous_id": "previousId",
    "original_timestamp": "originalTimestamp",
    "message_id": "messageId",
    "sent_at": "sentAt",
    "received_at": "receivedAt",
    "project_id": "projectId",
    "write_key": "writeKey",
}

# Columns that only Segment's warehouse tables have: a row with one is a warehouse row.
WAREHOUSE_MARKERS = frozenset({"received_at", "uuid_ts", "loaded_at", "context_library_name"})
# In a warehouse row `id` is the messageId, and `message_id` would be an event property.
_WAREHOUSE_ALIASES = {alias: name for alias, name in SNAKE_CASE_ALIASES.items() if name != "messageId"}
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
_CONTEXT_FIELDS = {"user_agent": "userAgent", "group_id": "groupId", "instance_id": "instanceId"}

ToSpec = Callable[..., SpecRecord]
_SEGMENT_DROPPED = ARCHIVE_ONLY_FIELDS | WAREHOUSE_ONLY_FIELDS


def detect_profile(record: dict[str, Any]) -> str:
    """Which profile a record's shape belongs to (checked per record: cheap key tests, in
    the order of VENDORS; a record no vendor claims is Segment-shaped)."""
    for name, matches, _ in VENDORS:
        if matches(record):
            return name
    return "segment"


# Field names as people spell them in spreadsheets and ad-hoc exports ("User ID", "userid",
# "Event Name", "Timestamp"): matched without case, spaces, dashes, dots or underscores.
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


def _respell(record: dict[str, Any], *, keep: str = "") -> None:
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


def _is_time(value: Any) -> bool:
    try:
        parse_timestamp(value)
    except TimestampError:
        return False
    return True


def _lacks_fields(record: dict[str, Any]) -> bool:
    """Cheap test: is a field Segment needs missing (so the names may be spelled otherwise)?"""
    return (
        ("userId" not in record and "anonymousId" not in record)
        or ("timestamp" not in record and "originalTimestamp" not in record)
        or ("event" not in record and "type" not in record)
    )


def from_segment(record: dict[str, Any]) -> SpecRecord:
    warehouse = not record.keys().isdisjoint(WAREHOUSE_MARKERS)  # looks up the 4 markers
    if warehouse:
        _from_warehouse_columns(record)
    aliases = _WAREHOUSE_ALIASES if warehouse else SNAKE_CASE_ALIASES
    if not record.keys().isdisjoint(aliases):  # snake_case names: rename, in this order
        for alias, name in aliases.items():
            if alias in record:
                value = record.pop(alias)
                record.setdefault(name, value)
    if "rudderId" in record or "request_ip" in record:  # a RudderStack dump
        _from_rudderstack(record)
    if "event_text" in record:  # warehouse: `event` is a slug, `event_text` the real name
        record["event"] = record.pop("event_text")
    if _lacks_fields(record):
        _respell(record, keep="messageId" if warehouse else "")
    source_id = record.get("messageId")
    if "id" in record and (warehouse or "receivedAt" in record):  # warehouse rows: `id` is the messageId
        source_id = source_id or record.pop("id")
    if not _SEGMENT_DROPPED.isdisjoint(record):
        for name in _SEGMENT_DROPPED.intersection(record):
            del record[name]
    return record, _tagged("segment", source_id)


def _from_rudderstack(record: dict[str, Any]) -> None:
    """RudderStack's own top-level fields describe where the event came from: `context`."""
    context = record.setdefault("context", {})
    if not isinstance(context, dict):
        return  # left to validation
    for name, path in _RUDDERSTACK_FIELDS.items():
        if name in record:
            value = record.pop(name)
            if value not in (None, ""):
                nest(context, path, value)


def _from_warehouse_columns(record: dict[str, Any]) -> None:
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


def _segment(record: dict[str, Any], keep_internals: bool = False) -> SpecRecord:
    return from_segment(record)


# Tried in this order: PostHog before Mixpanel (both have `event` + `properties`; PostHog's
# SDKs write `$lib`, Mixpanel's `mp_lib`), GA4 and Amplitude by their own column names.
_VENDOR_MODULES = (posthog, mixpanel, amplitude, ga4)
VENDORS: tuple[tuple[str, Callable[[dict[str, Any]], bool], ToSpec], ...] = tuple(
    (module.NAME, module.matches, module.to_spec) for module in _VENDOR_MODULES
)
PROFILES: dict[str, ToSpec] = {"segment": _segment, **{name: to_spec for name, _, to_spec in VENDORS}}
PROFILE_NAMES = tuple(PROFILES)


def _tagged(source: str, source_id: str | None) -> str | None:
    return f"{source}:{source_id}" if source_id else None
