"""Checks a message must pass before it may be sent.

Segment answers 200 to most malformed messages and drops them silently, so everything it
would drop is caught here and recorded as a reject instead.
"""

from __future__ import annotations

import re
from typing import Any

from segment_importer.batch.encoding import MAX_MESSAGE_BYTES, EncodedMessage
from segment_importer.track import reasons
from segment_importer.track.reasons import Reject

# Per call type: (required field, reason code when it is missing). The mapper's fast path
# checks the same fields (mapping.segment_fast).
# The form the mapper writes every time in (timestamps.format_timestamp), or any ISO 8601
# time with an offset a job's `set` may give (the shaper writes it in the mapper's form).
_SEGMENT_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)")
REQUIRED_FIELDS = {
    "track": (("event", reasons.MISSING_EVENT),),
    "group": (("groupId", reasons.MISSING_GROUP_ID),),
    "alias": (("previousId", reasons.MISSING_PREVIOUS_ID), ("userId", reasons.MISSING_USER)),
}


# Fields only an archive has; re-sending them would shift times or dedupe events away
# (the mapper strips them, a job's `set` may not put them back).
ARCHIVE_ONLY_FIELDS = frozenset(
    {"sentAt", "messageId", "projectId", "receivedAt", "writeKey", "version", "_metadata"}
)
# Fields that hold ids (text, as the mapper writes them) and fields that hold objects.
ID_FIELDS = frozenset({"userId", "anonymousId", "groupId", "previousId"})
OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
TEXT_FIELDS = frozenset({"event", "name", "category"})
# Segment's context objects (its spec's Context fields that hold objects).
CONTEXT_OBJECTS = (
    "app", "campaign", "device", "library", "location", "network", "os", "page", "referrer",
    "screen", "traits",
)  # fmt: skip


def check_kinds(message: dict[str, Any]) -> None:
    """What the mapper guarantees and a job's `set`, `drop` or `hash` could undo: ids and the
    event are text, the object fields are objects, the time is Segment's form (Segment drops
    a message otherwise, answering 200)."""
    for field in (ID_FIELDS | TEXT_FIELDS).intersection(message):
        if not isinstance(message[field], str):
            raise Reject(reasons.INVALID_FIELD, f"{field} must be text, not {type(message[field]).__name__}")
    check_objects(message)
    context = message.get("context") or {}
    for name in CONTEXT_OBJECTS:
        value = context.get(name)
        if value is not None and not isinstance(value, dict):
            raise Reject(
                reasons.INVALID_FIELD, f"context.{name} must be an object, not {type(value).__name__}"
            )
    timestamp = message.get("timestamp")
    if timestamp is not None and not (isinstance(timestamp, str) and _SEGMENT_TIME.fullmatch(timestamp)):
        raise Reject(reasons.INVALID_TIMESTAMP, "timestamp is not an ISO 8601 time")


def check_objects(message: dict[str, Any]) -> None:
    """The object fields are objects, and a destination's setting is true, false or an object
    (Segment takes a text "false" as on)."""
    for field in OBJECT_FIELDS:
        value = message.get(field)
        if value is not None and not isinstance(value, dict):
            raise Reject(reasons.INVALID_FIELD, f"{field} must be an object, not {type(value).__name__}")
    settings = message.get("integrations") or {}
    if not all(isinstance(setting, bool | dict) for setting in settings.values()):
        raise Reject(
            reasons.INVALID_FIELD, "a destination's setting in integrations is not true, false or an object"
        )


def check_fields(message: dict[str, Any]) -> None:
    """Required ids and fields per call type (Segment's own rules)."""
    if not (message.get("userId") or message.get("anonymousId")):
        raise Reject(reasons.MISSING_USER, "neither userId nor anonymousId is set")
    for field, reason in REQUIRED_FIELDS.get(message["type"], ()):
        value = message.get(field)
        if not isinstance(value, str) or not value.strip():
            raise Reject(reason, f"{message['type']} call without {field}")


def check_size(encoded: EncodedMessage) -> None:
    """The 32 KB per-message limit, measured as the Segment library will send the message."""
    if encoded.wire_bytes > MAX_MESSAGE_BYTES:
        raise Reject(
            reasons.MESSAGE_TOO_LARGE,
            f"message is {encoded.wire_bytes} bytes; Segment's limit is {MAX_MESSAGE_BYTES}",
        )
