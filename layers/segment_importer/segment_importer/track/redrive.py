"""Move dead-lettered batches back to the work queue, once the cause is fixed.

All of them, or one import's (by its key). Each moved batch is sent to the work queue and
deleted from the dead-letter queue; the imports it belongs to go back to SENDING in the
ledger, so that delivering the batch counts it (the ledger moves it from failed to
delivered) and the import completes again. Messages that are not batches, or belong to
another import, stay where they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from segment_importer.batch.envelope import read_envelope
from segment_importer.import_ref import ImportRef
from segment_importer.track.ledger import Ledger

_RECEIVE_VISIBILITY_SECONDS = 120  # hides what was looked at until the pass is over


@dataclass
class RedriveResult:
    moved: int = 0
    kept: int = 0
    imports: set[ImportRef] = field(default_factory=set)


def redrive(
    sqs: Any,
    dead_letter_queue_url: str,
    work_queue_url: str,
    *,
    key: str | None = None,
    ledger: Ledger | None = None,
) -> RedriveResult:
    result = RedriveResult()
    kept_receipts: list[str] = []
    while messages := _receive(sqs, dead_letter_queue_url):
        for message in messages:
            ref = _source(message["Body"])
            if ref is None or (key is not None and ref.key != key):
                result.kept += 1
                kept_receipts.append(message["ReceiptHandle"])
                continue
            sqs.send_message(QueueUrl=work_queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"])
            result.moved += 1
            result.imports.add(ref)
    for receipt in kept_receipts:  # visible again for the next redrive
        sqs.change_message_visibility(
            QueueUrl=dead_letter_queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
        )
    if ledger:
        for ref in result.imports:
            ledger.reopen(ref)
    return result


def _receive(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    response = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=_RECEIVE_VISIBILITY_SECONDS,
        WaitTimeSeconds=0,
    )
    return response.get("Messages", [])


def _source(body: str) -> ImportRef | None:
    try:
        source = read_envelope(body)["source"]
        return ImportRef(source["bucket"], source["key"], source["etag"])
    except (ValueError, KeyError, TypeError):
        return None
