"""Segment: spec messages (camelCase), Segment's S3/warehouse archives (their archive-only
fields are dropped; snake_case warehouse columns are renamed), RudderStack dumps (spec lines
plus `rudderId`, `request_ip`, `channel`, which go to `context`), and generic CSV/JSON rows
such as `userId,event,timestamp,properties.plan`. The fallback: it matches every record."""

from __future__ import annotations

import copy
from typing import Any

from segment_importer.mapping.profiles.common import Profile, SpecRecord, tagged
from segment_importer.mapping.profiles.context_paths import nest
from segment_importer.mapping.profiles.spellings import lacks_fields, respell
from segment_importer.mapping.profiles.warehouse import (
    WAREHOUSE_MARKERS,
    WAREHOUSE_ONLY_FIELDS,
    from_warehouse_columns,
)
from segment_importer.mapping.timestamps import TimestampError, format_timestamp, parse_timestamp
from segment_importer.mapping.validation import ARCHIVE_ONLY_FIELDS

# RudderStack's additions to Segment-spec lines (rudderstack.com/docs/event-spec/standard-events/
# common-fields) -> context paths.
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

# In a warehouse row `id` is the messageId, and `message_id` would be an event property.
_WAREHOUSE_ALIASES = {alias: name for alias, name in SNAKE_CASE_ALIASES.items() if name != "messageId"}
# In a track row (tracks and the per-event tables) `group_id` and `previous_id` are the event's
# properties, kept as the warehouse wrote them: a track call has no groupId or previousId.
_WAREHOUSE_TRACK_ALIASES = {
    alias: name for alias, name in _WAREHOUSE_ALIASES.items() if name not in ("groupId", "previousId")
}
_SEGMENT_DROPPED = ARCHIVE_ONLY_FIELDS | WAREHOUSE_ONLY_FIELDS


def to_spec(record: dict[str, Any]) -> SpecRecord:
    warehouse = not record.keys().isdisjoint(WAREHOUSE_MARKERS)  # looks up the 4 markers
    if warehouse:
        from_warehouse_columns(record)
    aliases = _warehouse_aliases(record) if warehouse else SNAKE_CASE_ALIASES
    if not record.keys().isdisjoint(aliases):  # snake_case names: rename, in this order
        for alias, name in aliases.items():
            if alias in record:
                value = record.pop(alias)
                record.setdefault(name, value)
    if "rudderId" in record or "request_ip" in record:  # a RudderStack dump
        _from_rudderstack(record)
    if "event_text" in record:  # warehouse: `event` is a slug, `event_text` the real name
        record["event"] = record.pop("event_text")
    if lacks_fields(record):
        respell(record, keep="messageId" if warehouse else "")
    source_id = record.get("messageId")
    if "id" in record and (warehouse or "receivedAt" in record):  # warehouse rows: `id` is the messageId
        source_id = source_id or record.pop("id")
    if record.get("timestamp") in (None, "") and "sentAt" in record and "receivedAt" in record:
        corrected = _clock_corrected(record)
        if corrected is not None:
            record["timestamp"] = corrected
    if not _SEGMENT_DROPPED.isdisjoint(record):
        for name in _SEGMENT_DROPPED.intersection(record):
            del record[name]
    return record, tagged("segment", source_id)


def _clock_corrected(record: dict[str, Any]) -> str | None:
    """The time Segment gives a message that has none: `receivedAt - (sentAt -
    originalTimestamp)`, the device's clock corrected by how far it was off when it sent
    (segment-facts.md). An archive or warehouse row without `timestamp` still has the three;
    `sentAt` and `receivedAt` are dropped before sending, so this is the last chance to use
    them. None when one is missing or unreadable: the device's time is used as it is."""
    try:
        original = parse_timestamp(record["originalTimestamp"])
        sent, received = parse_timestamp(record["sentAt"]), parse_timestamp(record["receivedAt"])
    except (KeyError, TimestampError):
        return None
    try:
        return format_timestamp(received - (sent - original))
    except OverflowError:  # a clock decades off: left to the plausibility check of the original
        return None


def _warehouse_aliases(record: dict[str, Any]) -> dict[str, str]:
    call_type = record.get("type")
    is_track = isinstance(call_type, str) and call_type.strip().lower() == "track"
    return _WAREHOUSE_TRACK_ALIASES if is_track else _WAREHOUSE_ALIASES


def _from_rudderstack(record: dict[str, Any]) -> None:
    """RudderStack's own top-level fields describe where the event came from: `context`.
    Its identify keeps the user's traits in `context.traits` only ("RudderStack stores the
    traits as context.traits in the final event object", its identify spec); Segment's
    identify carries them in `traits`, which is what profiles and destinations read."""
    context = record.setdefault("context", {})
    if not isinstance(context, dict):
        return  # left to validation
    for name, path in _RUDDERSTACK_FIELDS.items():
        if name in record:
            value = record.pop(name)
            if value not in (None, ""):
                nest(context, path, value)
    call_type, traits = record.get("type"), context.get("traits")
    is_identify = isinstance(call_type, str) and call_type.strip().lower() == "identify"
    if is_identify and traits and isinstance(traits, dict) and not record.get("traits"):
        # A copy: a job's hash or drop of `traits.email` must not change `context.traits` too.
        record["traits"] = copy.deepcopy(traits)


def matches(record: dict[str, Any]) -> bool:
    return True


SEGMENT = Profile("segment", matches, to_spec)
