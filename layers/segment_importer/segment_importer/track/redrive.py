"""Move dead-lettered batches back to the work queue, once the cause is fixed.

All of them, or one import's (by its key). For each moved batch, in this order:
1. its import goes back from COMPLETE_WITH_ERRORS to SENDING (once per import);
2. the ledger marks the batch REDRIVEN: pending again and no longer counted failed, so the
   import cannot complete on the strength of the batch's old failure;
3. the batch is sent to the work queue and deleted from the dead-letter queue.
Delivering it counts it delivered and completes the import (report rewritten); failing again
dead-letters it again. After the pass, an import with nothing left pending completes here.

The dedupe window: a batch in the dead-letter queue may have been accepted by Segment with
the answer lost. Segment dedupes by messageId for at least 24 hours; a redrive after that
makes true duplicates. Batches first queued longer ago than REDRIVE_SAFE_AGE_SECONDS stay
where they are unless `force` is given; the result counts them (`too_old`).
Messages that are not batches, or belong to another import, stay where they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from segment_importer.batch.envelope import read_envelope
from segment_importer.import_ref import ImportRef
from segment_importer.track.ledger import Ledger

_RECEIVE_VISIBILITY_SECONDS = 120  # hides what was looked at until the pass is over
SEGMENT_DEDUPE_WINDOW_SECONDS = 24 * 3600  # Segment keeps messageIds at least this long
# A redriven batch is posted some time after the redrive (queue, retries): keep an hour's margin.
REDRIVE_SAFE_AGE_SECONDS = SEGMENT_DEDUPE_WINDOW_SECONDS - 3600


@dataclass
class RedriveResult:
    moved: int = 0
    kept: int = 0  # not batches, or another import's
    too_old: int = 0  # older than the dedupe window: kept (moved only with force)
    forced: int = 0  # older than the dedupe window, moved anyway
    imports: set[ImportRef] = field(default_factory=set)
    completed: dict[ImportRef, str] = field(default_factory=dict)  # imports finished by the pass
    oldest_age_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class _DeadLetter:
    ref: ImportRef
    batch_number: int
    message_count: int
    age_seconds: float


def redrive(
    sqs: Any,
    dead_letter_queue_url: str,
    work_queue_url: str,
    *,
    key: str | None = None,
    ledger: Ledger | None = None,
    force: bool = False,
    complete: Callable[[ImportRef], str | None] | None = None,
    now: Callable[[], float] = time.time,
) -> RedriveResult:
    """`complete(ref)` finishes an import whose batches are all resolved (and writes its
    report); by default `ledger.complete_if_done`."""
    result = RedriveResult()
    kept_receipts: list[str] = []
    reopened: set[ImportRef] = set()
    while messages := _receive(sqs, dead_letter_queue_url):
        for message in messages:
            letter = _dead_letter(message, now())
            if letter is None or (key is not None and letter.ref.key != key):
                result.kept += 1
                kept_receipts.append(message["ReceiptHandle"])
                continue
            result.oldest_age_seconds = max(result.oldest_age_seconds, letter.age_seconds)
            if letter.age_seconds > REDRIVE_SAFE_AGE_SECONDS:
                if not force:
                    result.too_old += 1
                    kept_receipts.append(message["ReceiptHandle"])
                    continue
                result.forced += 1
            if ledger:
                _mark_redriven(ledger, letter, reopened)
            sqs.send_message(QueueUrl=work_queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"])
            result.moved += 1
            result.imports.add(letter.ref)
    for receipt in kept_receipts:  # visible again for the next redrive
        sqs.change_message_visibility(
            QueueUrl=dead_letter_queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
        )
    if ledger:
        finish = complete or ledger.complete_if_done
        for ref in result.imports:  # delivered already (a fast sender): nobody else completes it
            if status := finish(ref):
                result.completed[ref] = status
    return result


def _mark_redriven(ledger: Ledger, letter: _DeadLetter, reopened: set[ImportRef]) -> None:
    if letter.ref not in reopened:
        ledger.reopen(letter.ref)  # False while it is still sending: nothing to reopen
        reopened.add(letter.ref)
    # False if the ledger never counted it failed (then delivering it counts it as new).
    ledger.record_redriven(letter.ref, letter.batch_number, letter.message_count)


def _receive(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    response = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=_RECEIVE_VISIBILITY_SECONDS,
        WaitTimeSeconds=0,
        AttributeNames=["SentTimestamp"],
    )
    return response.get("Messages", [])


def _dead_letter(message: dict[str, Any], now: float) -> _DeadLetter | None:
    """What the batch is, and how long ago it was first queued (a dead-lettered message keeps
    its original SentTimestamp: the earliest Segment can have accepted it)."""
    try:
        envelope = read_envelope(message["Body"])
        source = envelope["source"]
        sent_ms = int(message.get("Attributes", {}).get("SentTimestamp", now * 1000))
        return _DeadLetter(
            ref=ImportRef(source["bucket"], source["key"], source["etag"]),
            batch_number=int(envelope["batch_number"]),
            message_count=int(envelope["message_count"]),
            age_seconds=max(0.0, now - sent_ms / 1000),
        )
    except (ValueError, KeyError, TypeError):
        return None
