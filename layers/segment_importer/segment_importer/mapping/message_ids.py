"""Deterministic message ids, so Segment's messageId dedupe absorbs every redelivery.

An id is a UUIDv5 in the project's own namespace, derived from the record's original id
when the export has one (Segment's messageId, Mixpanel's $insert_id, Amplitude's insert_id)
and otherwise from the record itself: its position in the file and its content (the fields
as read, keys sorted). Nothing about how the object was stored goes in: the same bytes
uploaded in one PUT or in multipart parts of any size (three ETags) give the same ids, as do
the same file dropped twice, a redelivered SQS batch, a re-run part and a split in byte
ranges. A corrected record at the same position gets a new id. The trade-off is in
docs/delivery.md ("Where messageIds come from").
A job's `messageIdSalt` changes every id: Segment dedupes across workspaces for about a day,
so re-importing the same file into a second workspace needs a new salt.
"""

from __future__ import annotations

import uuid
from hashlib import sha1
from typing import Any

import orjson

# The project's own namespace (uuid5 of the DNS namespace and our name): never reuse another's.
IMPORTER_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "segment-importer.message-id")


def file_identity(etag: str, size: int) -> str:
    """A file identified by its S3 ETag (quotes stripped) and size, for `MessageMapper`'s
    position ids. The splitter does not use it: an ETag depends on how the object was
    uploaded, so it derives ids from each record's content instead (`message_id_for_content`)."""
    return f"{etag.strip(chr(34))}:{size}"


def record_content(fields: dict[str, Any]) -> bytes:
    """A record's fields as canonical bytes: JSON with sorted keys (repr for what JSON cannot hold)."""
    try:
        return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # e.g. an integer over 64 bits, a lone surrogate
        return repr(fields).encode("utf-8", "surrogatepass")


def content_id_prefix(salt: str) -> str:
    return f"{salt}|content|"


def message_id_for_content(salt: str, record_number: int, fields: dict[str, Any]) -> str:
    """The id of a record without a source id: its position and its content."""
    name = content_id_prefix(salt).encode() + f"{record_number}|".encode() + record_content(fields)
    # uuid.uuid5 over a name in bytes (the content need not be valid UTF-8 text)
    digest = sha1(IMPORTER_NAMESPACE.bytes + name, usedforsecurity=False).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


def message_id_for_position(salt: str, file_id: str, record_number: int) -> str:
    return str(uuid.uuid5(IMPORTER_NAMESPACE, f"{salt}|file|{file_id}|{record_number}"))


def message_id_for_source_id(salt: str, source_id: str) -> str:
    return str(uuid.uuid5(IMPORTER_NAMESPACE, f"{salt}|source|{source_id}"))
