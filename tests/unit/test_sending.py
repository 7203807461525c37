"""BatchPoster against a real local Segment endpoint: retries, Retry-After, 400 splitting, deadlines."""

from __future__ import annotations

import time

import pytest

from segment_importer.deliver.segment_client import BatchPoster, DeliveryFailed, SegmentTarget
from segment_importer_local.segment_endpoint import Fault, FaultPlan, SegmentEndpoint

from ..conftest import WRITE_KEY


def _messages(count: int, start: int = 0) -> list[dict]:
    return [
        {
            "type": "track",
            "userId": f"user-{i}",
            "event": "Order Completed",
            "timestamp": "2023-01-01T00:00:00.000Z",
            "messageId": f"m-{i}",
        }
        for i in range(start, start + count)
    ]


class RecordingSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def _poster(endpoint: SegmentEndpoint, sleep: RecordingSleep | None = None, **target: object) -> BatchPoster:
    options = {"write_key": WRITE_KEY, "host": endpoint.url, "timeout_seconds": 5.0, **target}
    return BatchPoster(SegmentTarget(**options), sleep=sleep or RecordingSleep())


def test_delivers_a_batch_in_one_request(endpoint: SegmentEndpoint) -> None:
    delivery = _poster(endpoint).deliver(_messages(50), deadline=time.monotonic() + 30)
    assert (delivery.delivered, delivery.rejected, delivery.attempts) == (50, [], 1)
    assert endpoint.stats()["messages_accepted"] == 50
    assert endpoint.stats()["requests"] == 1


def test_gzip_bodies_are_accepted(endpoint: SegmentEndpoint) -> None:
    delivery = _poster(endpoint, gzip=True).deliver(_messages(10), deadline=time.monotonic() + 30)
    assert delivery.delivered == 10
    assert endpoint.stats()["messages_accepted"] == 10


def test_retries_server_errors_until_accepted(endpoint: SegmentEndpoint) -> None:
    endpoint.faults = FaultPlan.script([Fault.status(500), Fault.status(503), Fault.reset()])
    sleep = RecordingSleep()
    delivery = _poster(endpoint, sleep).deliver(_messages(5), deadline=time.monotonic() + 30)
    assert delivery.delivered == 5
    assert delivery.attempts == 4
    assert delivery.retries == 3
    assert len(sleep.calls) == 3
    assert endpoint.stats()["messages_accepted"] == 5


def test_honours_retry_after_on_429(endpoint: SegmentEndpoint) -> None:
    endpoint.faults = FaultPlan.script([Fault.rate_limit(retry_after=7)])
    sleep = RecordingSleep()
    delivery = _poster(endpoint, sleep).deliver(_messages(3), deadline=time.monotonic() + 30)
    assert delivery.delivered == 3
    assert sleep.calls == [7]


def test_gives_up_when_retry_after_passes_the_deadline(endpoint: SegmentEndpoint) -> None:
    endpoint.faults = FaultPlan.script([Fault.rate_limit(retry_after=60)])
    with pytest.raises(DeliveryFailed, match="HTTP 429"):
        _poster(endpoint).deliver(_messages(3), deadline=time.monotonic() + 10)
    assert endpoint.stats()["messages_accepted"] == 0


def test_stops_before_the_deadline_with_endless_errors(endpoint: SegmentEndpoint) -> None:
    endpoint.faults = FaultPlan.script([Fault.status(500)] * 1000)
    started = time.monotonic()
    poster = BatchPoster(SegmentTarget(WRITE_KEY, endpoint.url, 5.0), sleep=time.sleep)
    with pytest.raises(DeliveryFailed, match=r"gave up|out of time"):
        poster.deliver(_messages(2), deadline=started + 2.0)
    assert time.monotonic() - started < 2.5


def test_a_stalled_endpoint_times_out_and_is_retried(endpoint: SegmentEndpoint) -> None:
    endpoint.faults = FaultPlan.script([Fault.stall(2.0)])
    delivery = _poster(endpoint, timeout_seconds=0.3).deliver(_messages(4), deadline=time.monotonic() + 30)
    assert delivery.delivered == 4
    assert delivery.retries >= 1


def test_an_oversize_message_is_isolated_and_the_rest_delivered(endpoint: SegmentEndpoint) -> None:
    messages = _messages(9)
    messages[6]["properties"] = {"blob": "x" * 40_000}  # Segment answers 400 for the whole request
    delivery = _poster(endpoint).deliver(messages, deadline=time.monotonic() + 30)
    assert delivery.delivered == 8
    assert [m["messageId"] for m in delivery.rejected] == ["m-6"]
    accepted = {m["messageId"] for m in endpoint.accepted}
    assert accepted == {f"m-{i}" for i in range(9)} - {"m-6"}


def test_a_wrong_write_key_fails_at_once(endpoint: SegmentEndpoint) -> None:
    sleep = RecordingSleep()
    with pytest.raises(DeliveryFailed, match="HTTP 401"):
        _poster(endpoint, sleep, write_key="wrong").deliver(_messages(2), deadline=time.monotonic() + 30)
    assert sleep.calls == []


def test_accepted_but_unanswered_batch_is_resent_under_the_same_ids(endpoint: SegmentEndpoint) -> None:
    endpoint.faults = FaultPlan.script([Fault.accept_then_fail()])
    delivery = _poster(endpoint).deliver(_messages(6), deadline=time.monotonic() + 30)
    assert delivery.delivered == 6
    stats = endpoint.stats()
    assert stats["messages_accepted"] == 6
    assert stats["duplicates"] == 6


def test_the_stored_bytes_are_posted_as_they_are(endpoint: SegmentEndpoint) -> None:
    """deliver_raw posts the batch's JSON array unparsed: the endpoint gets those messages."""
    import orjson

    messages = _messages(7)
    raw = b"[" + b",".join(orjson.dumps(message) for message in messages) + b"]"
    delivery = _poster(endpoint).deliver_raw(raw, 7, deadline=time.monotonic() + 30)
    assert (delivery.delivered, delivery.attempts) == (7, 1)
    assert [m["messageId"] for m in endpoint.accepted] == [m["messageId"] for m in messages]


def test_refused_bytes_that_are_not_messages_fail_the_batch(endpoint: SegmentEndpoint) -> None:
    """A body from elsewhere (not JSON): Segment answers 400, and the poster, unable to parse it
    to isolate what was refused, fails the batch (to the DLQ in time) instead of guessing."""
    with pytest.raises(DeliveryFailed, match="not a JSON array of messages"):
        _poster(endpoint).deliver_raw(b'[{"type":"track"', 1, deadline=time.monotonic() + 30)
    assert endpoint.stats()["messages_accepted"] == 0
