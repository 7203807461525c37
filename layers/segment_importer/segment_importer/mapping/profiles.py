"""Source profiles: the shapes real exports come in, rewritten into Segment's spec shape.

Each profile takes a parsed record (a fresh dict the caller owns) and returns
`(spec_record, source_id)`: a record keyed like a Segment message, plus the record's
original unique id if the export has one (used to derive a stable messageId). A source id
is tagged with its source and includes what the source itself dedupes on, so ids from
different tools never collide: Mixpanel dedupes on (event, distinct_id, time, $insert_id),
Amplitude on insert_id per user or device.

- segment: Segment spec messages (camelCase), Segment's S3/warehouse archives (their
  archive-only fields are dropped; snake_case warehouse columns are renamed), and generic
  CSV/JSON rows such as `userId,event,timestamp,properties.plan`.
- mixpanel: Mixpanel raw export lines `{"event": ..., "properties": {"time", "distinct_id",
  "$insert_id", ...}}`.
- amplitude: Amplitude export lines (`event_type`, `event_time`, `user_id`, `device_id`,
  `event_properties`, `user_properties`, `insert_id`, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from segment_importer.job import CALL_TYPES
from segment_importer.mapping.timestamps import TimestampError, parse_timestamp

# Fields only an archive has; re-sending them would shift times or dedupe events away.
ARCHIVE_ONLY_FIELDS = frozenset(
    {"sentAt", "messageId", "projectId", "receivedAt", "writeKey", "version", "_metadata"}
)
# Segment warehouse columns that are load bookkeeping, not event data.
WAREHOUSE_ONLY_FIELDS = frozenset({"uuid_ts", "loaded_at", "context_library_name", "context_library_version"})
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

SpecRecord = tuple[dict[str, Any], str | None]
_SEGMENT_DROPPED = ARCHIVE_ONLY_FIELDS | WAREHOUSE_ONLY_FIELDS


def detect_profile(record: dict[str, Any]) -> str:
    """Which profile a record's shape belongs to (checked per record: cheap key tests)."""
    if "event_type" in record and "type" not in record and "event" not in record:
        return "amplitude"  # an export with both names keeps `event_type` as data
    properties = record.get("properties")
    if (
        "event" in record
        and isinstance(properties, dict)
        and "type" not in record
        and "userId" not in record
        and "anonymousId" not in record
        and "timestamp" not in record  # Mixpanel lines keep the time and ids in properties;
        and "distinct_id" not in record  # PostHog's put them at the top as well
        and ("distinct_id" in properties or "$insert_id" in properties or "time" in properties)
    ):
        return "mixpanel"
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


def _from_warehouse_columns(record: dict[str, Any]) -> None:
    """A warehouse row's flattened `context_*` columns back into `context`, and a `type`
    column that is not a call type (the warehouse keeps one table per call type, so such a
    column is an event property) into the properties."""
    context = record.get("context", {})
    if isinstance(context, dict):  # one that is not an object is left to validation
        for key in [key for key in record if key.startswith("context_")]:
            path = _context_path(key.removeprefix("context_"))
            if key not in WAREHOUSE_ONLY_FIELDS and _nest(context, path, record[key]):
                del record[key]
        if context:
            record["context"] = context
    call_type = record.get("type")
    if call_type is not None and str(call_type).strip().lower() not in CALL_TYPES:
        properties = record.setdefault("properties", {})
        if isinstance(properties, dict) and "type" not in properties:
            properties["type"] = record.pop("type")


def _nest(root: dict[str, Any], path: tuple[str, ...], value: Any) -> bool:
    """Put `value` at `path` under `root`; False (nothing written) where that would overwrite."""
    node = root
    for name in path[:-1]:
        node = node.setdefault(name, {})
        if not isinstance(node, dict):
            return False
    if path[-1] in node:
        return False
    node[path[-1]] = value
    return True


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


def from_mixpanel(record: dict[str, Any]) -> SpecRecord:
    properties = dict(record.get("properties") or {})
    raw_distinct_id = properties.get("distinct_id")
    distinct_id = _text(properties.pop("distinct_id", None))
    user_id = _text(properties.pop("$user_id", None))
    device_id = _text(properties.pop("$device_id", None))
    if distinct_id and distinct_id.startswith("$device:"):
        device_id = device_id or distinct_id.removeprefix("$device:")
        distinct_id = None
    elif distinct_id == device_id and not user_id:  # before ID merge: an anonymous event's id
        distinct_id = None
    spec: dict[str, Any] = {
        "type": "track",
        "event": record.get("event"),
        "userId": user_id or distinct_id,
        "anonymousId": device_id,
        "timestamp": properties.pop("time", None),
    }
    context = _mixpanel_context(properties)
    if context:
        spec["context"] = context
    insert_id = _as_source_id(properties.pop("$insert_id", None))
    source_id = insert_id and f"{record.get('event')}|{raw_distinct_id}|{spec.get('timestamp')}|{insert_id}"
    spec["properties"] = properties
    return _without_none(spec), _tagged("mixpanel", source_id)


def from_amplitude(record: dict[str, Any]) -> SpecRecord:
    event_type = record.get("event_type")
    user_properties = record.get("user_properties") or {}
    spec: dict[str, Any] = {
        "userId": _text(record.get("user_id")),
        "anonymousId": _text(record.get("device_id")),
        "timestamp": _first(record, "event_time", "client_event_time", "server_upload_time"),
    }
    if event_type == "$identify":
        spec.update(type="identify", traits=user_properties)
    else:
        spec.update(type="track", event=event_type, properties=record.get("event_properties") or {})
        if user_properties:
            spec["context"] = {"traits": user_properties}
    context = _amplitude_context(record)
    if context:
        spec["context"] = {**spec.get("context", {}), **context}
    insert_id = _as_source_id(_first(record, "insert_id", "$insert_id"))
    if insert_id:
        source_id = f"{record.get('user_id') or ''}|{record.get('device_id') or ''}|{insert_id}"
    else:
        source_id = _as_source_id(record.get("uuid"))  # Amplitude's own id for the stored event
    return _without_none(spec), _tagged("amplitude", source_id)


PROFILES: dict[str, Callable[[dict[str, Any]], SpecRecord]] = {
    "segment": from_segment,
    "mixpanel": from_mixpanel,
    "amplitude": from_amplitude,
}


def _mixpanel_context(properties: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    ip = properties.pop("ip", None)
    if ip:
        context["ip"] = ip
    url = properties.get("$current_url")
    if url:
        context["page"] = {"url": url}
    return context


def _amplitude_context(record: dict[str, Any]) -> dict[str, Any]:
    nested = {
        "ip": record.get("ip_address"),
        "os": _without_none({"name": record.get("os_name"), "version": record.get("os_version")}),
        "device": _without_none(
            {
                "id": record.get("device_id"),
                "model": record.get("device_model"),
                "manufacturer": record.get("device_manufacturer"),
                "type": record.get("device_type"),
            }
        ),
        "app": _without_none({"version": _first(record, "version_name", "app_version")}),
        "location": _without_none(
            {"country": record.get("country"), "city": record.get("city"), "region": record.get("region")}
        ),
        "library": _without_none({"name": record.get("library")}),
    }
    return {key: value for key, value in nested.items() if value}


def _first(record: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = record.get(name)
        if value not in (None, ""):
            return value
    return None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _as_source_id(value: Any) -> str | None:
    text = _text(value)
    return text if text and text.strip() else None


def _tagged(source: str, source_id: str | None) -> str | None:
    return f"{source}:{source_id}" if source_id else None


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None and value != ""}
