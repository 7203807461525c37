"""Checks a message must pass before it may be sent.

Segment answers 200 to most malformed messages and drops them silently, so everything it
would drop is caught here and recorded as a reject instead.
"""

from __future__ import annotations

from typing import Any

from segment_importer.batch.encoding import MAX_MESSAGE_BYTES, EncodedMessage
from segment_importer.track import reasons
from segment_importer.track.reasons import Reject

# Per call type: (required field, reason code when it is missing). The mapper's fast path
# checks the same fields (mapping.segment_fast).
REQUIRED_FIELDS = {
    "track": (("event", reasons.MISSING_EVENT),),
    "group": (("groupId", reasons.MISSING_GROUP_ID),),
    "alias": (("previousId", reasons.MISSING_PREVIOUS_ID), ("userId", reasons.MISSING_USER)),
}


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
