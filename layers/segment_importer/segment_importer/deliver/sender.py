"""The sender: SQS records (one Segment batch each) -> Segment, with partial-batch failures.

Only batches Segment did not accept are reported as `batchItemFailures`, so only they come
back (and, after `maxReceiveCount`, go to the dead-letter queue). Messages Segment refused
with a 400 are written to the import's rejects prefix and are not retried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from segment_importer.batch.envelope import MalformedBatch, QueuedBatch, UnknownEnvelopeVersion
from segment_importer.deliver.deferral import BatchDeferral
from segment_importer.deliver.rate_limit import EventRateLimit
from segment_importer.deliver.segment_client import BatchPoster, Delivery, DeliveryFailed
from segment_importer.deliver.targets import JobTarget
from segment_importer.metrics import MetricsSink, NullMetrics
from segment_importer.settings import Prefixes
from segment_importer.track import keys, reasons
from segment_importer.track.completion import complete_and_report
from segment_importer.track.import_events import ImportEvents
from segment_importer.track.ledger import Ledger
from segment_importer.track.rejects import RejectsWriter

logger = logging.getLogger(__name__)
# Logged once per batch Segment answered; the local run reads it (resume: what was refused).
DELIVERED_MESSAGE = "batch delivered"
# Logged for a batch put back on the queue, delayed, by MaxEventsPerSecond: not delivered yet.
DEFERRED_MESSAGE = "batch deferred for MaxEventsPerSecond"
# Stop starting new posts when less than this is left, so the function returns in time.
SAFETY_MARGIN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class SenderServices:
    """What the sender talks to; built by the handler (or a test) and passed in."""

    poster: BatchPoster
    s3: Any
    prefixes: Prefixes
    ledger: Ledger | None = None
    # A failed batch received this many times goes to the DLQ next: the ledger counts it failed.
    max_receive_count: int | None = None
    metrics: MetricsSink = field(default_factory=NullMetrics)
    events: ImportEvents | None = None  # told when an import this sender completes ends
    # The poster of a batch whose job names its own workspace (deliver/target_resolver.py).
    poster_for: Callable[[JobTarget], BatchPoster] | None = None
    post_concurrency: int = 1  # batches of one invocation posted at once (SenderPostConcurrency)
    rate_limit: EventRateLimit | None = None  # shared by every sender (MaxEventsPerSecond); None: none
    # Where a batch that found no room under the rate limit goes back, delayed (deferral.py).
    deferral: BatchDeferral | None = None


def send_records(
    records: Iterable[Mapping[str, Any]],
    services: SenderServices,
    *,
    remaining_seconds: Callable[[], float],
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, list[dict[str, str]]]:
    """Deliver each SQS record's batch (the raw records, or the handler's SQSEvent records:
    both are mappings); returns the ReportBatchItemFailures response.

    Batches are posted concurrently (`post_concurrency` threads), so none waits behind a slow
    one; what follows a post (rejects, metrics, the ledger, completion) runs here, on the
    invoking thread, one batch at a time, as each post ends."""
    records = list(records)
    workers = max(1, min(services.post_concurrency, len(records)))
    schedule = _Schedule(len(records), workers, clock() + remaining_seconds() - SAFETY_MARGIN_SECONDS, clock)
    failed: set[str] = set()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segment-post") as pool:
        posts = {pool.submit(_post_one, record, services, schedule): record for record in records}
        for post in as_completed(posts):
            record = posts[post]
            if not _settle(record, post.result(), services):
                failed.add(record["messageId"])
    failures = [record["messageId"] for record in records if record["messageId"] in failed]
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


class _Schedule:
    """Each batch's deadline, set when its post starts: a fair share of the time left.

    With `workers` posting at once, the batches not yet started take ceil(n / workers) more
    rounds; each gets the time left divided by those rounds (what one leaves flows to those
    after it). A slow batch cannot use up the time of those behind it, so every batch received
    is posted at least once, and none reaches the DLQ on receives it was never tried in."""

    def __init__(self, batches: int, workers: int, deadline: float, clock: Callable[[], float]) -> None:
        self._unstarted, self._workers, self._deadline, self.clock = batches, workers, deadline, clock
        self._lock = threading.Lock()

    def start(self) -> float:
        with self._lock:
            rounds = -(-self._unstarted // self._workers)
            self._unstarted -= 1
            now = self.clock()
            return now + (self._deadline - now) / max(rounds, 1)


@dataclass(slots=True)
class _Outcome:
    """What a post thread hands back: the batch (None: unreadable), and how its post went."""

    batch: QueuedBatch | None = None
    delivery: Delivery | None = None
    failure: str = ""  # why it was not delivered
    defer_seconds: float = 0.0  # > 0: never posted, the shared rate was busy; try again after this
    unreadable: MalformedBatch | None = None
    latency_ms: float = 0.0


def _post_one(record: Mapping[str, Any], services: SenderServices, schedule: _Schedule) -> _Outcome:
    """Runs on a post thread: only reading the body, waiting for the rate limit and posting."""
    deadline = schedule.start()  # first: an unreadable body, too, is one batch fewer to come
    try:
        batch = QueuedBatch.from_body(record["body"])
    except MalformedBatch as error:  # failed, never sent: it waits for a sender that reads it
        return _Outcome(failure=str(error), unreadable=error)
    clock = schedule.clock
    limit = services.rate_limit
    # Half the batch's time at most is spent waiting for the shared rate: the rest is for posting.
    try:
        slot = limit.take(batch.message_count, max_wait=(deadline - clock()) / 2) if limit else None
    except (BotoCoreError, ClientError) as error:  # DynamoDB throttled or away: this batch waits
        return _Outcome(batch, failure=f"the rate-limit table did not answer ({type(error).__name__})")
    if slot is not None and not slot.taken:
        # A busy bucket says when this batch's turn would come (retry_after): it goes back on
        # the queue until then. One too large for the rate at all has none, and fails.
        return _Outcome(
            batch,
            failure=f"no room under MaxEventsPerSecond ({limit.events_per_second}) in time",
            defer_seconds=slot.retry_after,
        )
    started = clock()
    try:
        delivery = _poster(services, batch).deliver_raw(batch.raw_batch, batch.message_count, deadline)
    except DeliveryFailed as error:
        return _Outcome(batch, failure=str(error))
    return _Outcome(batch, delivery, latency_ms=(clock() - started) * 1000)


def _settle(record: Mapping[str, Any], outcome: _Outcome, services: SenderServices) -> bool:
    """The invoking thread's part of one batch; True when delivered."""
    batch = outcome.batch
    if batch is None:
        unknown = isinstance(outcome.unreadable, UnknownEnvelopeVersion)
        message = "batch body of an unknown version" if unknown else "malformed batch"
        logger.error(message, extra={"sqs_message_id": record["messageId"], "reason": outcome.failure})
        services.metrics.add_metric("BatchesMalformed", "Count", 1)
        return False
    if outcome.delivery is None:
        if outcome.defer_seconds and _deferred(record, batch, services, outcome.defer_seconds):
            return True  # its copy is on the queue: this one is done
        _not_delivered(record, batch, services, outcome.failure)
        return False
    _delivered(batch, outcome.delivery, services, outcome.latency_ms)
    return True


def _deferred(record: Mapping[str, Any], batch: QueuedBatch, services: SenderServices, delay: float) -> bool:
    if services.deferral is None or not services.deferral.defer(record["body"], delay):
        return False
    logger.info(
        DEFERRED_MESSAGE,
        extra={"key": batch.key, "batch_number": batch.number, "delay_seconds": round(delay, 1)},
    )
    services.metrics.add_metric("BatchesDeferred", "Count", 1)
    return True


def _poster(services: SenderServices, batch: QueuedBatch) -> BatchPoster:
    """The stack's poster, or the one of the target the batch's job named (never the default
    for a batch that names one)."""
    if batch.target is None:
        return services.poster
    if services.poster_for is None:
        raise DeliveryFailed("the batch names a target and this sender resolves none")
    return services.poster_for(batch.target)


def _delivered(batch: QueuedBatch, delivery: Delivery, services: SenderServices, latency_ms: float) -> None:
    if delivery.refused:
        _write_refused(services.s3, services.prefixes, batch, delivery)
    metrics = services.metrics
    metrics.add_metric("MessagesSent", "Count", delivery.delivered)
    metrics.add_metric("MessagesRefused", "Count", delivery.refused)
    metrics.add_metric("BatchLatency", "Milliseconds", latency_ms)
    metrics.add_metric("SegmentRetries", "Count", delivery.retries)
    logger.info(
        DELIVERED_MESSAGE,
        extra={
            "key": batch.key,
            "batch_number": batch.number,
            "delivered": delivery.delivered,
            "refused": delivery.refused,
            "attempts": delivery.attempts,
        },
    )
    ledger = services.ledger
    by_status = delivery.refused_by_status()
    if ledger and ledger.record_delivered(
        batch.ref, batch.number, batch.message_count, delivery.refused, refused_by_status=by_status
    ):
        _complete(batch, services)


def _not_delivered(
    record: Mapping[str, Any], batch: QueuedBatch, services: SenderServices, reason: str
) -> None:
    receive_count = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
    last_attempt = services.max_receive_count is not None and receive_count >= services.max_receive_count
    logger.warning(
        "batch not delivered",
        extra={
            "key": batch.key,
            "batch_number": batch.number,
            "reason": reason,
            "receive_count": receive_count,
            "to_dead_letter_queue": last_attempt,
        },
    )
    if not last_attempt:
        return
    services.metrics.add_metric("BatchesDeadLettered", "Count", 1)
    services.metrics.add_metric("MessagesFailed", "Count", batch.message_count)
    ledger = services.ledger
    if ledger and ledger.record_dead_lettered(batch.ref, batch.number, batch.message_count, reason):
        _complete(batch, services)


def _complete(batch: QueuedBatch, services: SenderServices) -> None:
    if services.ledger:
        complete_and_report(services.s3, services.ledger, batch.ref, services.prefixes, services.events)


def refused_key(prefixes: Prefixes, key: str, batch_number: int) -> str:
    """Where the messages Segment refused in one batch are kept."""
    return keys.refused_key(prefixes, key, batch_number)


def _write_refused(s3: Any, prefixes: Prefixes, batch: QueuedBatch, delivery: Delivery) -> None:
    writer = RejectsWriter()
    refused = [
        (message, reasons.REJECTED_BY_SEGMENT, status)
        for message, status in zip(delivery.rejected, delivery.rejected_status, strict=True)
    ]
    refused += [
        (message, reasons.REFUSED_WITH_OTHERS, status)
        for message, status in zip(delivery.unisolated, delivery.unisolated_status, strict=True)
    ]
    try:
        for message, reason, status in refused:
            detail = f"HTTP {status}, batch {batch.number}, messageId {message.get('messageId')}"
            writer.add(None, reason, detail, message)
        writer.upload(s3, batch.ref.bucket, refused_key(prefixes, batch.key, batch.number))
    finally:
        writer.close()
