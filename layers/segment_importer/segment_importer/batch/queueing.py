"""Put batches on the work queue: one SQS message per Segment batch.

The SQS body is written by `envelope.batch_body` (the one writer and reader of its format).
`SendMessageBatch` can answer 200 with some entries `Failed`: those are retried with
backoff; a sender-side fault (our bug) raises instead of looping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from segment_importer.batch.envelope import batch_body
from segment_importer.batch.packing import Batch
from segment_importer.deliver.targets import JobTarget
from segment_importer.import_ref import ImportRef

SQS_BATCH_ENTRIES = 10


class QueueError(RuntimeError):
    """Batches could not be queued; the message has counts and SQS codes, no record data."""


class QueueWriter:
    """Buffers batch bodies into SendMessageBatch calls of up to 10 entries and one request's bytes."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        source: ImportRef,
        *,
        max_request_bytes: int,
        target: JobTarget | None = None,  # the job's own workspace; None: the stack's
        max_attempts: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._source = source
        self._target = target
        self._max_request_bytes = max_request_bytes
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._pending: list[tuple[Batch, str]] = []
        self._pending_bytes = 0
        self.batches_queued = 0
        self.messages_queued = 0
        self.retried_entries = 0

    def put(self, batch: Batch) -> None:
        body = batch_body(self._source, batch, self._target).decode()
        size = len(body.encode()) if not body.isascii() else len(body)
        if self._pending and (
            len(self._pending) == SQS_BATCH_ENTRIES or self._pending_bytes + size > self._max_request_bytes
        ):
            self.flush()
        self._pending.append((batch, body))
        self._pending_bytes += size

    def flush(self) -> None:
        if not self._pending:
            return
        entries = {str(batch.number): (batch, body) for batch, body in self._pending}
        self._pending, self._pending_bytes = [], 0
        self._send_with_retries(entries)
        for batch, _ in entries.values():
            self.batches_queued += 1
            self.messages_queued += batch.size

    def _send_with_retries(self, entries: dict[str, tuple[Batch, str]]) -> None:
        bodies = {entry_id: body for entry_id, (_, body) in entries.items()}
        self.retried_entries += send_entries(
            self._sqs,
            self._queue_url,
            bodies,
            what="batches",
            max_attempts=self._max_attempts,
            sleep=self._sleep,
        )


def send_entries(
    sqs: Any,
    queue_url: str,
    bodies: dict[str, str],
    *,
    what: str,
    max_attempts: int = 8,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """One SendMessageBatch of up to ten `bodies` (by entry id); entries SQS answers `Failed`
    are sent again with backoff. Returns how many were sent again; raises QueueError when
    some still fail, or when SQS refuses some as malformed (`what` names them)."""
    remaining = dict(bodies)
    retried = 0
    for attempt in range(max_attempts):
        failed = _send(sqs, queue_url, remaining, what)
        if not failed:
            return retried
        retried += len(failed)
        remaining = {entry_id: remaining[entry_id] for entry_id in failed}
        sleep(min(0.1 * 2**attempt, 5.0))
    raise QueueError(f"{len(remaining)} {what} still failing after {max_attempts} attempts")


def _send(sqs: Any, queue_url: str, bodies: dict[str, str], what: str) -> list[str]:
    response = sqs.send_message_batch(
        QueueUrl=queue_url,
        Entries=[{"Id": entry_id, "MessageBody": body} for entry_id, body in bodies.items()],
    )
    failed = response.get("Failed", [])
    sender_faults = [entry for entry in failed if entry.get("SenderFault")]
    if sender_faults:
        codes = sorted({entry.get("Code", "?") for entry in sender_faults})
        raise QueueError(f"SQS refused {len(sender_faults)} {what} as malformed: {codes}")
    return [entry["Id"] for entry in failed]
