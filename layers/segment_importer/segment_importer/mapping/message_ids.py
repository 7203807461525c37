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


def told_apart(message: dict[str, Any]) -> str:
    """The fields Segment-spec events are told apart by: the event (or call type), the user
    and the time."""
    user = message.get("userId") or message.get("anonymousId")
    return f"{message.get('event', message['type'])}|{user}|{message.get('timestamp')}"


class SharedIds:
    """A source id (an export's own event id: Segment's messageId, PostHog's uuid, Heap's and
    Snowplow's event_id; or a column the job maps to `messageId`) is taken together with the
    fields Segment-spec events are told apart by (event, user, time). Tools reuse ids for
    distinct events (a client that sends one id per batch, Snowplow's bot-made duplicates, an
    order id on each of the order's events), and such events must never merge into one
    Segment message, wherever in the file or in which part (span, continuation) they are:
    so an id never rests on the source id alone. The same event exported twice (same id,
    event, user and time) keeps one id, for Segment to dedupe.

    Repeats are counted for the report's warnings, remembered per part up to `_MAX_SEEN` ids
    (hashes, not text): `collisions`, with another event, user or time (told apart), and
    `merged`, with the same event, user and time but other content (properties, traits,
    context): those get one messageId, as the vendors' own dedupe would merge them, and
    Segment keeps the first, so the user is told. Counting only: the ids do not depend on
    what was seen before.
    """

    __slots__ = ("_seen", "collisions", "merged")
    _MAX_SEEN = 250_000

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, int]] = {}
        self.collisions = 0
        self.merged = 0

    def distinct(self, source_id: str, message: dict[str, Any]) -> str:
        fields = told_apart(message)
        seen = self._seen.get(source_id)
        if seen is None:
            if len(self._seen) < self._MAX_SEEN:
                self._seen[source_id] = (hash(fields), _content_hash(message))
        elif seen[0] != hash(fields):
            self.collisions += 1
        elif seen[1] != _content_hash(message):
            self.merged += 1
        return f"{source_id}|{fields}"


def _content_hash(message: dict[str, Any]) -> int:
    """For counting only: the message as built, in its key order (sorting the keys cost 2.5x
    as much, on every record with an id; one mapper builds the same content in the same
    order, so only a repeat whose keys the file orders otherwise could be miscounted)."""
    try:
        return hash(orjson.dumps(message))
    except (orjson.JSONEncodeError, TypeError):  # e.g. an integer over 64 bits
        return hash(repr(message))


class MessageIds:
    """`message_ids`' UUIDv5 derivations, with the per-file part of the name hashed once.

    uuid5 is SHA-1 over the namespace bytes and the UTF-8 name; the name starts with the
    salt and file id, so that prefix's hash state is computed here and copied per record.
    The text is formatted straight from the digest. The ids are the same as
    `message_id_for_position` / `message_id_for_source_id` (tests pin both).
    """

    __slots__ = ("_content", "_file_id", "_position", "_salt", "_source", "by_content")

    def __init__(self, salt: str, file_id: str | None) -> None:
        self._salt, self._file_id = salt, file_id or ""
        self.by_content = file_id is None
        try:
            namespace = IMPORTER_NAMESPACE.bytes
            # SHA-1 because UUIDv5 is defined with it (an identifier, not a security measure).
            self._position: Any = sha1(namespace + f"{salt}|file|{file_id}|".encode(), usedforsecurity=False)
            self._source: Any = sha1(namespace + f"{salt}|source|".encode(), usedforsecurity=False)
            self._content: Any = sha1(namespace + content_id_prefix(salt).encode(), usedforsecurity=False)
        except UnicodeEncodeError:  # a lone surrogate: let message_ids raise it, per record, as before
            self._position = self._source = self._content = None

    def for_content(self, number: int, fields: dict[str, Any]) -> str:
        if self._content is None:
            return message_id_for_content(self._salt, number, fields)
        state = self._content.copy()
        state.update(f"{number}|".encode())
        state.update(record_content(fields))
        return _uuid5_text(state.digest())

    def for_position(self, number: int) -> str:
        if self._position is None:
            return message_id_for_position(self._salt, self._file_id, number)
        state = self._position.copy()
        state.update(str(number).encode())
        return _uuid5_text(state.digest())

    def for_source(self, source_id: str) -> str:
        if self._source is None:
            return message_id_for_source_id(self._salt, source_id)
        state = self._source.copy()
        state.update(source_id.encode())
        return _uuid5_text(state.digest())


# The UUID variant byte (RFC 4122: the top two bits 10) for each possible digest byte.
_VARIANT_BYTE = tuple(f"{(byte & 0x3F) | 0x80:02x}" for byte in range(256))


def _uuid5_text(digest: bytes) -> str:
    """str(uuid.UUID(bytes=digest[:16], version=5)), without building the UUID."""
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-5{text[13:16]}-{_VARIANT_BYTE[digest[8]]}{text[18:20]}-{text[20:32]}"
