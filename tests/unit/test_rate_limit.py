"""MaxEventsPerSecond (deliver/rate_limit.py) on moto's DynamoDB, and senders sharing it.

Bounded by counts, never by seconds: the limiter's clock is a test clock that only moves
when the test moves it, so "events admitted by time t" is exact.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from moto import mock_aws

from segment_importer.deliver.deferral import BatchDeferral
from segment_importer.deliver.rate_limit import EventRateLimit, Slot
from segment_importer.deliver.segment_client import BatchPoster, SegmentTarget
from segment_importer.deliver.sender import SenderServices, send_records
from segment_importer.settings import Prefixes
from segment_importer_local.segment_endpoint import SegmentEndpoint
from segment_importer_local.stack import LocalStack
from segment_importer_local.template_config import StackTemplate

from ..conftest import WRITE_KEY
from ..integration.test_sender_handler import sqs_record


class StillClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:  # the time is the test's to move
        self.sleeps.append(seconds)


class AtomicItems:
    """The DynamoDB client, its calls one at a time: DynamoDB applies each conditional update
    atomically, moto (plain Python, no locks) does not promise it between threads."""

    def __init__(self, client: Any) -> None:
        self._client, self._lock = client, threading.Lock()

    def update_item(self, **request: Any) -> Any:
        with self._lock:
            return self._client.update_item(**request)


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws():
        yield LocalStack(StackTemplate.load()).create(WRITE_KEY)


def _limit(stack: LocalStack, clock: StillClock, rate: float, burst: float | None = None) -> EventRateLimit:
    table = stack.table_name("RateLimitTable")
    db = AtomicItems(stack.dynamodb)
    return EventRateLimit(db, table, rate, burst_events=burst, clock=clock, sleep=clock.sleep)


def test_batches_wait_their_slot_after_the_burst(stack: LocalStack) -> None:
    clock = StillClock()
    limit = _limit(stack, clock, rate=100, burst=100)
    assert all(limit.acquire(50, max_wait=10) for _ in range(5))
    # 100 events of burst go at once; then one batch of 50 every half second.
    assert clock.sleeps == pytest.approx([0.5, 1.0, 1.5])
    clock.now += 60  # idle: the bucket fills again (to its burst, not beyond)
    clock.sleeps.clear()
    assert all(limit.acquire(50, max_wait=10) for _ in range(3))
    assert clock.sleeps == pytest.approx([0.5])


def test_a_slot_beyond_the_wait_allowed_is_refused_and_takes_nothing(stack: LocalStack) -> None:
    clock = StillClock()
    limit = _limit(stack, clock, rate=100, burst=100)
    assert limit.acquire(100, max_wait=0)
    assert not limit.acquire(100, max_wait=0.5)  # its slot is 1 s away
    assert not limit.acquire(1_000, max_wait=5)  # 9 s beyond the burst even from an idle bucket
    assert limit.acquire(100, max_wait=1.0)  # the refusals took nothing: the next slot is still 1 s
    assert clock.sleeps == pytest.approx([1.0])


def test_concurrent_takers_never_get_more_than_the_bucket_holds(stack: LocalStack) -> None:
    """64 threads take 25-event slots at one instant: at most burst + rate * max_wait events
    are granted, and exactly that many (every slot that fits is taken)."""
    clock = StillClock()
    limit = _limit(stack, clock, rate=1_000, burst=500)
    with ThreadPoolExecutor(max_workers=16) as pool:
        granted = list(pool.map(lambda _: limit.acquire(25, max_wait=2.0), range(200)))
    assert sum(granted) * 25 == 500 + 1_000 * 2.0


def test_many_senders_sharing_a_bucket_admit_no_more_than_it_holds_and_lose_nothing(
    stack: LocalStack, endpoint: SegmentEndpoint
) -> None:
    """8 sender invocations of 5 batches each, all posting at once, share one bucket. At one
    instant the bucket admits no more than its tokens; the batches refused are reported failed
    (SQS brings them back), and once the clock moves on they are all delivered: every
    message accepted by the endpoint exactly once."""
    clock = StillClock()
    limit = _limit(stack, clock, rate=10, burst=100)  # 100 + 10 * max_wait events at this instant
    services = SenderServices(
        poster=BatchPoster(SegmentTarget(WRITE_KEY, endpoint.url, 5.0)),
        s3=None,
        prefixes=Prefixes(),
        post_concurrency=5,
        rate_limit=limit,
    )
    invocations = [[sqs_record(10 * sender + n, 10) for n in range(5)] for sender in range(8)]
    # All five in one round: each batch's share is the 40 s left after the safety margin, and
    # it waits at most half of it for a slot: at most 100 + 10 * 20 = 300 events (30 batches).
    remaining = lambda: 5.0 + 40.0  # noqa: E731

    def invoke(records: list[dict[str, Any]]) -> list[str]:
        response = send_records(records, services, remaining_seconds=remaining)
        return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]

    with ThreadPoolExecutor(max_workers=8) as pool:
        failed = [sqs_id for failures in pool.map(invoke, invocations) for sqs_id in failures]
    stats = endpoint.stats()
    assert 200 <= stats["messages_accepted"] <= 300
    assert stats["messages_accepted"] == 10 * (40 - len(failed))
    assert stats["requests"] == 40 - len(failed)  # the refused batches were never posted
    retried = [record for records in invocations for record in records if record["messageId"] in failed]
    while retried:  # SQS delivers the failed ones again; time passes between receives
        clock.now += 10
        outcome = invoke(retried)
        retried = [record for record in retried if record["messageId"] in outcome]
    assert len(endpoint.by_message_id) == 400 == endpoint.stats()["messages_accepted"]
    assert endpoint.stats()["duplicates"] == 0


def test_the_sender_handler_takes_slots_with_its_role(endpoint: SegmentEndpoint) -> None:
    """Deployed as the template says (its IAM enforced on the handler's clients), a sender with
    MaxEventsPerSecond set takes its slots from the RateLimitTable."""
    from segment_importer_local.event_source import invoke
    from segment_importer_local.stack import environment

    with mock_aws():
        stack = LocalStack(
            StackTemplate.load(),
            {"SegmentHost": endpoint.url, "MaxEventsPerSecond": "1000"},
            enforce_iam=True,
        ).create(WRITE_KEY)
        sender = stack.function("SenderFunction")
        with environment(sender.environment):
            response = invoke(sender, {"Records": [sqs_record(1, 3), sqs_record(2, 3)]})
        assert response == {"batchItemFailures": []}
        item = stack.dynamodb.get_item(
            TableName=stack.table_name("RateLimitTable"), Key={"bucket": {"S": "events"}}
        )
        assert float(item["Item"]["tat"]["N"]) > 0
    assert endpoint.stats()["messages_accepted"] == 6


def test_a_batch_refused_a_slot_goes_back_delayed_instead_of_towards_the_dead_letter_queue(
    stack: LocalStack, endpoint: SegmentEndpoint
) -> None:
    """A batch that only waited for its turn was never posted: reported failed, SQS would
    bring it back with a higher receive count, and at maxReceiveCount it would be
    dead-lettered without a single try. It goes back on the work queue as a new message
    instead, delayed; only a batch too large for the rate at all still fails."""
    clock = StillClock()
    limit = _limit(stack, clock, rate=10, burst=20)
    services = SenderServices(
        poster=BatchPoster(SegmentTarget(WRITE_KEY, endpoint.url, 5.0)),
        s3=None,
        prefixes=Prefixes(),
        post_concurrency=1,
        rate_limit=limit,
        deferral=BatchDeferral(stack.sqs, stack.work_queue_url),
        max_receive_count=1,  # its last receive: a failure now would be dead-lettered
    )
    records = [sqs_record(n, 10, receive_count=1) for n in range(1, 5)] + [sqs_record(9, 500)]
    response = send_records(records, services, remaining_seconds=lambda: 5.0 + 2.0)
    # The 20-event burst: two batches; each batch may wait half its 0.4 s share, too little
    # for the next slot (1 s away), so the two others are deferred.
    assert endpoint.stats()["messages_accepted"] == 20
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-9"}]}  # 500 events never fit 10/s
    queued = stack.sqs.receive_message(
        QueueUrl=stack.work_queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", [])
    assert queued == []  # delayed: not visible yet
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.work_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "2"
    assert endpoint.stats()["requests"] == 2  # the deferred ones were never posted


def test_a_refused_slot_says_when_its_turn_would_come(stack: LocalStack) -> None:
    clock = StillClock()
    limit = _limit(stack, clock, rate=10, burst=10)
    assert limit.take(10, max_wait=0).taken  # the burst
    assert limit.take(10, max_wait=1.0).taken  # the slot 1 s on
    refused = limit.take(10, max_wait=0.5)
    assert (refused.taken, refused.retry_after) == (False, 2.0)  # behind both, less the burst
    assert limit.take(500, max_wait=5) == Slot(taken=False)  # no turn would ever fit


def test_a_deferral_the_queue_refuses_leaves_the_batch_failed(
    stack: LocalStack, endpoint: SegmentEndpoint
) -> None:
    clock = StillClock()
    limit = _limit(stack, clock, rate=10, burst=10)
    services = SenderServices(
        poster=BatchPoster(SegmentTarget(WRITE_KEY, endpoint.url, 5.0)),
        s3=None,
        prefixes=Prefixes(),
        rate_limit=limit,
        deferral=BatchDeferral(stack.sqs, stack.work_queue_url + "-gone"),
    )
    records = [sqs_record(1, 10), sqs_record(2, 10)]
    response = send_records(records, services, remaining_seconds=lambda: 5.0 + 0.5)
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-2"}]}


def test_the_sender_handler_defers_a_batch_with_its_role(endpoint: SegmentEndpoint) -> None:
    """Its IAM enforced: a sender whose bucket is booked 100 s ahead puts the batch back on
    the work queue (sqs:SendMessage on that queue only) and reports no failure."""
    import time

    from segment_importer_local.event_source import invoke
    from segment_importer_local.stack import environment

    with mock_aws():
        stack = LocalStack(
            StackTemplate.load(),
            {"SegmentHost": endpoint.url, "MaxEventsPerSecond": "1"},
            enforce_iam=True,
        ).create(WRITE_KEY)
        stack.dynamodb.put_item(
            TableName=stack.table_name("RateLimitTable"),
            Item={"bucket": {"S": "events"}, "tat": {"N": str(time.time() + 100)}},
        )
        sender = stack.function("SenderFunction")
        with environment(sender.environment):
            response = invoke(sender, {"Records": [sqs_record(1, 1)]})
        assert response == {"batchItemFailures": []}
        attributes = stack.sqs.get_queue_attributes(
            QueueUrl=stack.work_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    assert endpoint.stats()["requests"] == 0
