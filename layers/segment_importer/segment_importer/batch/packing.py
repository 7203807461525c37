"""Pack encoded messages into batches that are each exactly one Segment request.

A batch closes before it would exceed any of: the Segment request bound (`max_bytes`,
measured as the library's wire form, see `encoding`), the message count (`max_messages`,
Segment drops batches over 2,500 while answering 200), or the queue's message size
(`max_queue_bytes`, measured on the SQS body, which is the compact form plus an envelope).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from segment_importer.batch.encoding import EncodedMessage

# Room for what the library adds around the messages: `{"batch": [...], "sentAt": "...",
# "writeKey": "..."}`, with a write key of up to 200 characters.
WIRE_ENVELOPE_BYTES = 400
# Room for the SQS body's envelope: source bucket, key (up to 1,024 bytes), etag, numbers.
QUEUE_ENVELOPE_BYTES = 2048


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_bytes: int = 475_000
    max_messages: int = 2500
    max_queue_bytes: int = 1_048_576


@dataclass(slots=True)
class Batch:
    number: int  # 1-based, in file order
    bodies: list[bytes] = field(default_factory=list)
    wire_bytes: int = WIRE_ENVELOPE_BYTES
    queue_bytes: int = QUEUE_ENVELOPE_BYTES

    @property
    def size(self) -> int:
        return len(self.bodies)


class BatchPacker:
    """Feed messages with `add`; full batches come back from it, the last from `finish`."""

    def __init__(self, limits: BatchLimits, first_number: int = 1) -> None:
        self._limits = limits
        self._current = Batch(number=first_number)  # a continued split goes on numbering

    def add(self, message: EncodedMessage | tuple[bytes, int]) -> Batch | None:
        """Add a message (an EncodedMessage or a plain `(body, wire_bytes)` tuple); returns
        the batch it closed, if adding it closed one."""
        # The hot path: `_fits` inlined, and each new total computed once.
        closed = None
        current, limits = self._current, self._limits
        body, message_wire = message
        wire_bytes = current.wire_bytes + message_wire + 2  # ", " between messages
        queue_bytes = current.queue_bytes + len(body) + 1  # ","
        if current.bodies and (
            len(current.bodies) >= limits.max_messages
            or wire_bytes > limits.max_bytes
            or queue_bytes > limits.max_queue_bytes
        ):
            closed = current
            current = self._current = Batch(number=closed.number + 1)
            wire_bytes = current.wire_bytes + message_wire + 2
            queue_bytes = current.queue_bytes + len(body) + 1
        current.bodies.append(body)
        current.wire_bytes = wire_bytes
        current.queue_bytes = queue_bytes
        return closed

    def would_close(self, message: EncodedMessage | tuple[bytes, int]) -> bool:
        """Whether adding `message` would close the batch being filled (see `add`)."""
        current, limits = self._current, self._limits
        body, message_wire = message
        return bool(current.bodies) and (
            len(current.bodies) >= limits.max_messages
            or current.wire_bytes + message_wire + 2 > limits.max_bytes
            or current.queue_bytes + len(body) + 1 > limits.max_queue_bytes
        )

    def finish(self) -> Batch | None:
        """The last, partly filled batch, if any."""
        return self._current if self._current.bodies else None
