"""A single JSON document's shared keys: a Segment HTTP API `/batch` body's top-level
`context` and `integrations`, which Segment merges into every message of its `batch`.

The keys may come before or after the array, so the document is read ahead (a real /batch body
is at most 500 KB; up to SHARED_READ_LIMIT bytes are buffered) and parsed whole before its
records are read. A larger document's shared keys are not read: a warning says so. See
docs/formats.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from segment_importer.read.opening import CHUNK, ByteSource
from segment_importer.read.records import DamagedError, SourceRecord

SHARED_KEYS = ("context", "integrations")
# Only Segment's own /batch body means "merge these into every message"; another export's
# top-level keys beside its array (`{"results": [...], "next": ...}`) are not batch-level context.
SEGMENT_BATCH_KEY = "batch"
SHARED_READ_LIMIT = 4 << 20  # content bytes buffered to look for the shared keys


@dataclass(slots=True)
class SharedKeys:
    """The document's shared objects (`{"context": {...}}`), the source to read the document
    from (the buffered bytes, then the rest) and what could not be read."""

    source: ByteSource
    shared: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def read_shared_keys(source: ByteSource, doc_key: str, limit: int | None = None) -> SharedKeys:
    """Buffer the document (up to `limit` bytes, SHARED_READ_LIMIT by default) and take its
    top-level shared keys."""
    limit = SHARED_READ_LIMIT if limit is None else limit
    buffered: list[bytes] = []
    size = 0
    error: DamagedError | None = None
    ended = False
    try:
        while size <= limit:
            data = source.take(CHUNK)
            if not data:
                ended = True
                break
            buffered.append(data)
            size += len(data)
    except DamagedError as exc:  # met again, in order, by the record reader
        error = exc
    document = b"".join(buffered)
    found = SharedKeys(ByteSource(source.take, document, error))
    if error is not None or not ended:
        why = "it is damaged" if error is not None else f"the document is larger than {limit:,} bytes"
        found.warnings.append(_not_read(doc_key, why))
        return found
    parsed = _parsed(document)
    if parsed is None:
        found.warnings.append(_not_read(doc_key, "the document is not valid JSON"))
        return found
    if isinstance(parsed, dict):
        _take(parsed, doc_key, found)
    return found


def _take(document: dict[str, Any], doc_key: str, found: SharedKeys) -> None:
    for key in SHARED_KEYS:
        value = document.get(key)
        if isinstance(value, dict):
            if value:
                found.shared[key] = value
        elif value is not None:
            found.warnings.append(
                f"the document's top-level {key!r} is not an object: "
                f"it is not merged into the {doc_key!r} records"
            )


def _not_read(doc_key: str, why: str) -> str:
    return (
        f"the document's top-level 'context'/'integrations' (a Segment /batch body's keys shared by "
        f"every message) were not read because {why}: if it has them, they are not merged into its "
        f"{doc_key!r} records"
    )


def _parsed(document: bytes) -> Any:
    try:
        return orjson.loads(document)
    except orjson.JSONDecodeError:  # also integers beyond 64 bits: the standard library reads those
        pass
    try:
        return json.loads(document)
    except (ValueError, RecursionError):
        return None


def with_shared(records: Iterator[SourceRecord], shared: dict[str, dict[str, Any]]) -> Iterator[SourceRecord]:
    """Each record with the shared objects merged in, as Segment does: key by key, the
    record's own keys win (a record's non-object `context` is left as it is)."""
    for record in records:
        fields = record.fields
        if fields is not None:
            for key, batch_value in shared.items():
                own = fields.get(key)
                if own is None:
                    fields[key] = dict(batch_value)
                elif isinstance(own, dict):
                    fields[key] = {**batch_value, **own}
        yield record
