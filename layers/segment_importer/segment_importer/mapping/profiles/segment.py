"""Segment: spec messages (camelCase), Segment's S3/warehouse archives (their archive-only
fields are dropped; snake_case warehouse columns are renamed), and generic CSV/JSON rows
such as `userId,event,timestamp,properties.plan`. The fallback: it matches every record."""

from __future__ import annotations

from typing import Any

from segment_importer.mapping.profiles.common import Profile, SpecRecord, tagged
from segment_importer.mapping.profiles.spellings import lacks_fields, respell
from segment_importer.mapping.profiles.warehouse import (
    WAREHOUSE_MARKERS,
    WAREHOUSE_ONLY_FIELDS,
    from_warehouse_columns,
)

# Fields only an archive has; re-sending them would shift times or dedupe events away.
ARCHIVE_ONLY_FIELDS = frozenset(
    {"sentAt", "messageId", "projectId", "receivedAt", "writeKey", "version", "_metadata"}
)
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
_SEGMENT_DROPPED = ARCHIVE_ONLY_FIELDS | WAREHOUSE_ONLY_FIELDS


def to_spec(record: dict[str, Any]) -> SpecRecord:
    warehouse = not record.keys().isdisjoint(WAREHOUSE_MARKERS)  # looks up the 4 markers
    if warehouse:
        from_warehouse_columns(record)
    aliases = _WAREHOUSE_ALIASES if warehouse else SNAKE_CASE_ALIASES
    if not record.keys().isdisjoint(aliases):  # snake_case names: rename, in this order
        for alias, name in aliases.items():
            if alias in record:
                value = record.pop(alias)
                record.setdefault(name, value)
    if "event_text" in record:  # warehouse: `event` is a slug, `event_text` the real name
        record["event"] = record.pop("event_text")
    if lacks_fields(record):
        respell(record, keep="messageId" if warehouse else "")
    source_id = record.get("messageId")
    if "id" in record and (warehouse or "receivedAt" in record):  # warehouse rows: `id` is the messageId
        source_id = source_id or record.pop("id")
    if not _SEGMENT_DROPPED.isdisjoint(record):
        for name in _SEGMENT_DROPPED.intersection(record):
            del record[name]
    return record, tagged("segment", source_id)


def matches(record: dict[str, Any]) -> bool:
    return True


SEGMENT = Profile("segment", matches, to_spec)
