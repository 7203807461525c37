"""The SQS batch body: the one place it is written (splitter) and read (sender, redrive, the
local runner), and its version checked.

`{"v": 1, "source": {"bucket", "key", "etag"}, "batch_number": n, "message_count": m,
"batch": [...]}`, assembled from the messages' stored bytes without re-serialising them.
A batch whose job names its own workspace (deliver/targets.py) is version 2: the same with
`"target": {"writeKeyParameter"?, "host"?}` before `batch`. Version 2 exists so that a
sender that does not know targets refuses such a body instead of posting it to the stack's
default workspace; a version 1 body means the stack's default target. A body of another
version is refused (`UnknownEnvelopeVersion`), never sent on a guess: a
sender older than the splitter that wrote it reports the record as failed, so it waits on
the queue (then the DLQ) for a sender that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson

from segment_importer.batch.packing import Batch
from segment_importer.deliver.targets import JobTarget
from segment_importer.import_ref import ImportRef

ENVELOPE_VERSION = 1  # a batch for the stack's own write key and host
TARGETED_ENVELOPE_VERSION = 2  # a batch for the target its job names (`target`)
READABLE_VERSIONS = (ENVELOPE_VERSION, TARGETED_ENVELOPE_VERSION)
_BATCH_KEY = b',"batch":['


class MalformedBatch(ValueError):
    """An SQS body that is not one of ours; it goes to the DLQ after maxReceiveCount."""


class UnknownEnvelopeVersion(MalformedBatch):
    """A batch body of a version this code does not read (a newer splitter's, or no version)."""


def batch_body(source: ImportRef, batch: Batch, target: JobTarget | None = None) -> bytes:
    """The SQS body of one batch (version 2 when its job names a target)."""
    envelope: dict[str, Any] = {
        "v": ENVELOPE_VERSION if target is None else TARGETED_ENVELOPE_VERSION,
        "source": {"bucket": source.bucket, "key": source.key, "etag": source.etag},
        "batch_number": batch.number,
        "message_count": batch.size,
    }
    if target is not None:
        envelope["target"] = target.to_document()
    head = orjson.dumps(envelope)
    return b"".join((head[:-1], _BATCH_KEY, b",".join(batch.bodies), b"]}"))


def read_envelope(body: str | bytes) -> dict[str, Any]:
    """A batch body's envelope (version, source, numbers) without parsing its messages."""
    raw = body.encode() if isinstance(body, str) else body
    try:
        envelope = orjson.loads(raw[: raw.index(_BATCH_KEY)] + b"}")
    except (ValueError, orjson.JSONDecodeError) as error:
        raise MalformedBatch(f"not a segment-importer batch: {type(error).__name__}") from None
    _check_version(envelope)
    envelope_target(envelope)  # a version 2 body's target must be one this code writes
    return envelope


def envelope_target(envelope: dict[str, Any]) -> JobTarget | None:
    """The target a (checked) envelope names; None: the stack's own (every version 1 body)."""
    if envelope.get("v") == ENVELOPE_VERSION:
        return None
    try:
        return JobTarget.from_document(envelope.get("target"))
    except ValueError as error:
        raise MalformedBatch(f"not a segment-importer batch: {error}") from None


def _check_version(document: Any) -> None:
    version = document.get("v") if isinstance(document, dict) else None
    if version not in READABLE_VERSIONS:
        raise UnknownEnvelopeVersion(
            f"batch body version {version!r} is not one this code reads {READABLE_VERSIONS}"
        )


@dataclass(frozen=True)
class QueuedBatch:
    """A batch as the sender gets it: where it comes from, its number, and its messages as
    the JSON array's bytes the splitter queued (`raw_batch`, posted as they are); `messages`
    parses them, once, only when asked (to isolate refused messages, to write rejects)."""

    ref: ImportRef
    number: int
    raw_batch: bytes
    message_count: int
    target: JobTarget | None = None  # None: the stack's own write key and host

    @property
    def key(self) -> str:
        return self.ref.key

    @cached_property
    def messages(self) -> list[dict[str, Any]]:
        try:
            messages = orjson.loads(self.raw_batch)
        except orjson.JSONDecodeError as error:
            raise MalformedBatch(f"not a segment-importer batch: {type(error).__name__}") from None
        if not isinstance(messages, list) or not messages:
            raise MalformedBatch("batch is not a non-empty list")
        return messages

    @classmethod
    def from_body(cls, body: str | bytes) -> QueuedBatch:
        """Check a body's envelope and find its batch's bytes without parsing the messages;
        MalformedBatch (UnknownEnvelopeVersion) if it is not one this code reads.

        The work queue's only writer is the splitter (batch_body): the array between
        `"batch":` and the closing brace is taken as the messages' JSON, as written. Should
        it not be (a body from elsewhere), Segment answers 400 and the poster, parsing it to
        isolate the refused messages, fails the batch instead."""
        raw = body.encode() if isinstance(body, str) else body
        envelope = read_envelope(raw)
        start = raw.index(_BATCH_KEY) + len(_BATCH_KEY) - 1  # at the array's "["
        if not raw.endswith(b"]}"):
            raise MalformedBatch("not a segment-importer batch: the body does not end its batch")
        try:
            source = envelope["source"]
            ref = ImportRef(source["bucket"], source["key"], source["etag"])
            number, count = int(envelope["batch_number"]), envelope["message_count"]
        except (KeyError, TypeError, ValueError) as error:
            raise MalformedBatch(f"not a segment-importer batch: {type(error).__name__}") from None
        if type(count) is not int or count < 1:
            raise MalformedBatch("batch is not a non-empty list")
        return cls(ref, number, raw[start:-1], count, envelope_target(envelope))
