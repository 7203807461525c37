"""The sender: SQS records (one Segment batch each) -> Segment, with partial-batch failures.

Only batches Segment did not accept are reported as `batchItemFailures`, so only they come
back (and, after `maxReceiveCount`, go to the dead-letter queue). Messages Segment refused
with a 400 are written to the import's rejects prefix and are not retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from segment_importer.rejects import RejectsWriter
from segment_importer.report import derived_key
from segment_importer.sending import BatchPoster, DeliveryFailed
from segment_importer.settings import Prefixes

logger = logging.getLogger(__name__)
# Stop starting new posts when less than this is left, so the function returns in time.
SAFETY_MARGIN_SECONDS = 5.0


class MalformedBatch(ValueError):
    """An SQS body that is not one of ours; it goes to the DLQ after maxReceiveCount."""


@dataclass(frozen=True, slots=True)
class QueuedBatch:
    bucket: str
    key: str
    number: int
    messages: list[dict[str, Any]]

    @classmethod
    def from_body(cls, body: str) -> QueuedBatch:
        try:
            document = orjson.loads(body)
            source = document["source"]
            messages = document["batch"]
            if not isinstance(messages, list) or not messages:
                raise MalformedBatch("batch is not a non-empty list")
            return cls(source["bucket"], source["key"], int(document["batch_number"]), messages)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise MalformedBatch(f"not a segment-importer batch: {type(error).__name__}") from None


def send_records(
    records: Iterable[dict[str, Any]],
    poster: BatchPoster,
    *,
    s3: Any,
    prefixes: Prefixes,
    remaining_seconds: Callable[[], float],
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, list[dict[str, str]]]:
    """Deliver each SQS record's batch; returns the ReportBatchItemFailures response."""
    deadline = clock() + remaining_seconds() - SAFETY_MARGIN_SECONDS
    failures: list[str] = []
    for record in records:
        if not _send_one(record, poster, s3, prefixes, deadline):
            failures.append(record["messageId"])
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


def _send_one(
    record: dict[str, Any], poster: BatchPoster, s3: Any, prefixes: Prefixes, deadline: float
) -> bool:
    sqs_id = record["messageId"]
    try:
        batch = QueuedBatch.from_body(record["body"])
        delivery = poster.deliver(batch.messages, deadline)
    except (MalformedBatch, DeliveryFailed) as error:
        logger.warning("batch not delivered", extra={"sqs_message_id": sqs_id, "reason": str(error)})
        return False
    if delivery.rejected:
        _write_refused(s3, prefixes, batch, delivery.rejected)
    logger.info(
        "batch delivered",
        extra={
            "key": batch.key,
            "batch_number": batch.number,
            "delivered": delivery.delivered,
            "refused": len(delivery.rejected),
            "attempts": delivery.attempts,
        },
    )
    return True


def refused_key(prefixes: Prefixes, key: str, batch_number: int) -> str:
    """Where the messages Segment refused in one batch are kept."""
    return derived_key(prefixes.rejects, key, prefixes.imports, f".refused/batch-{batch_number:06d}.ndjson")


def _write_refused(s3: Any, prefixes: Prefixes, batch: QueuedBatch, refused: list[dict[str, Any]]) -> None:
    writer = RejectsWriter()
    try:
        for message in refused:
            writer.add(
                None,
                "rejected_by_segment",
                f"batch {batch.number}, messageId {message.get('messageId')}",
                message,
            )
        writer.upload(s3, batch.bucket, refused_key(prefixes, batch.key, batch.number))
    finally:
        writer.close()
