"""Deterministic message ids, so Segment's messageId dedupe absorbs every redelivery.

An id is a UUIDv5 in the project's own namespace, derived from the record's original id
when the export has one (Segment's messageId, Mixpanel's $insert_id, Amplitude's insert_id)
and otherwise from the file's content identity and the record's position. The same file
dropped twice, a redelivered SQS batch or a re-run splitter all produce the same ids.
A job's `messageIdSalt` changes every id: Segment dedupes across workspaces for about a day,
so re-importing the same file into a second workspace needs a new salt.
"""

from __future__ import annotations

import uuid
from typing import Any

# The project's own namespace (uuid5 of the DNS namespace and our name): never reuse another's.
IMPORTER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "segment-importer.message-id")


def file_identity(etag: str, size: int) -> str:
    """What identifies a file's content: the S3 ETag (quotes stripped) and its size."""
    return f"{etag.strip(chr(34))}:{size}"


def message_id_for_position(salt: str, file_id: str, record_number: int) -> str:
    return str(uuid.uuid5(IMPORTER_NAMESPACE, f"{salt}|file|{file_id}|{record_number}"))


def message_id_for_source_id(salt: str, source_id: str) -> str:
    return str(uuid.uuid5(IMPORTER_NAMESPACE, f"{salt}|source|{source_id}"))


class DeclaredIds:
    """A column the job maps to `messageId` is the user's word that it identifies events,
    but exports reuse such ids (an order id on each of its events): the id is taken together
    with the fields Segment-spec events are told apart by (event, user, time), so distinct
    events never merge, and a repeat with other fields is counted (the report warns)."""

    __slots__ = ("_seen", "collisions")
    _MAX_SEEN = 100_000  # ids remembered per part, for counting only

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}
        self.collisions = 0

    def distinct(self, source_id: str, message: dict[str, Any]) -> str:
        user = message.get("userId") or message.get("anonymousId")
        told_apart = f"{message.get('event', message['type'])}|{user}|{message.get('timestamp')}"
        seen = self._seen.get(source_id)
        if seen is None:
            if len(self._seen) < self._MAX_SEEN:
                self._seen[source_id] = told_apart
        elif seen != told_apart:
            self.collisions += 1
        return f"{source_id}|{told_apart}"
