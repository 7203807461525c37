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

# The project's own namespace (uuid5 of the DNS namespace and our name): never reuse another's.
IMPORTER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "segment-importer.message-id")


def file_identity(etag: str, size: int) -> str:
    """What identifies a file's content: the S3 ETag (quotes stripped) and its size."""
    return f"{etag.strip(chr(34))}:{size}"


def message_id_for_position(salt: str, file_id: str, record_number: int) -> str:
    return str(uuid.uuid5(IMPORTER_NAMESPACE, f"{salt}|file|{file_id}|{record_number}"))


def message_id_for_source_id(salt: str, source_id: str) -> str:
    return str(uuid.uuid5(IMPORTER_NAMESPACE, f"{salt}|source|{source_id}"))
