"""The sender's time and work budget, against real HTTP servers on loopback.

A request's total time is bounded (not just each read); a refused batch is halved a bounded
number of times; each batch of an invocation gets a fair share of its time, so a slow one
does not leave the others untried.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from segment_importer.deliver.segment_client import (
    MAX_ISOLATION_POSTS,
    BatchPoster,
    DeliveryFailed,
    SegmentTarget,
)
from segment_importer.deliver.sender import SAFETY_MARGIN_SECONDS, SenderServices, send_records
from segment_importer.settings import Prefixes
from segment_importer_local.segment_endpoint import Fault, FaultPlan, SegmentEndpoint

from ..conftest import WRITE_KEY
from ..integration.test_sender_handler import sqs_record
from .test_sending import _messages

DRIP_BYTES = 400  # the answer's body, sent a byte at a time


class DrippingServer:
    """Answers 200 with headers at once, then the body one byte every 50 ms (well within
    any read timeout): counts the body bytes each connection took before it hung up."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.bytes_sent: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            while len(body) < length:
                body += connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {DRIP_BYTES}\r\n\r\n".encode()
            )
            sent = 0
            try:
                while sent < DRIP_BYTES and not self._stop.is_set():
                    connection.sendall(b" ")
                    sent += 1
                    self._stop.wait(0.05)
            except OSError:  # the client hung up
                pass
            self.bytes_sent.append(sent)

    def close(self) -> None:
        # Stop the accept loop before closing its socket, so accept() never sees a closed fd.
        self._stop.set()
        self._thread.join()
        self._listener.close()


@pytest.fixture
def dripping() -> Iterator[DrippingServer]:
    server = DrippingServer()
    yield server
    server.close()


def test_an_answer_that_drips_is_cut_at_the_request_deadline(dripping: DrippingServer) -> None:
    poster = BatchPoster(SegmentTarget(WRITE_KEY, dripping.url, timeout_seconds=0.5), sleep=lambda _: None)
    with pytest.raises(DeliveryFailed, match="no complete answer by the request deadline"):
        poster.deliver(_messages(3), deadline=time.monotonic() + 1.6)
    deadline = time.monotonic() + 5
    while len(dripping.bytes_sent) < 2 and time.monotonic() < deadline:  # the server notices the hang-up
        time.sleep(0.05)
    assert len(dripping.bytes_sent) >= 2, "the request was not retried after being cut"
    # 0.5 s of a byte every 50 ms is about 10 bytes; reading the whole answer would take 400.
    assert max(dripping.bytes_sent) < DRIP_BYTES // 4


def test_many_refused_messages_are_isolated_within_a_bounded_number_of_posts(
    endpoint: SegmentEndpoint,
) -> None:
    messages = _messages(100)
    for message in messages[::2]:  # every other one is over Segment's 32 KB: the request gets a 400
        message["properties"] = {"blob": "x" * 33_000}
    poster = BatchPoster(SegmentTarget(WRITE_KEY, endpoint.url, 5.0), sleep=lambda _: None)
    delivery = poster.deliver(messages, deadline=time.monotonic() + 60)
    assert endpoint.stats()["requests"] <= 1 + MAX_ISOLATION_POSTS
    assert delivery.delivered + len(delivery.rejected) + len(delivery.unisolated) == 100
    accepted = {message["messageId"] for message in endpoint.accepted}
    assert len(accepted) == delivery.delivered > 0
    oversize = {message["messageId"] for message in messages[::2]}
    assert not accepted & oversize
    assert {message["messageId"] for message in delivery.rejected} <= oversize
    assert delivery.unisolated, "bounded: some groups were given up whole"
    # Nothing vanished: every message fine but not delivered is in a group returned as refused.
    unisolated = {message["messageId"] for message in delivery.unisolated}
    assert {message["messageId"] for message in messages} - oversize <= accepted | unisolated


def test_a_slow_batch_leaves_the_batches_behind_it_their_share_of_the_time(endpoint: SegmentEndpoint) -> None:
    """The first request stalls; the four batches behind it are still posted and delivered."""
    endpoint.faults = FaultPlan.script([Fault.stall(30)])
    services = SenderServices(
        poster=BatchPoster(SegmentTarget(WRITE_KEY, endpoint.url, 15.0)),
        s3=None,
        prefixes=Prefixes(),
    )
    records = [sqs_record(number, 4) for number in range(1, 6)]
    response = send_records(records, services, remaining_seconds=lambda: SAFETY_MARGIN_SECONDS + 5.0)
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-1"}]}
    assert endpoint.stats()["messages_accepted"] == 16


def test_batches_posted_at_once_do_not_wait_behind_a_slow_one(endpoint: SegmentEndpoint) -> None:
    """The first request stalls for 1 s of the 2 s left. Posted one after another, each batch
    had a fifth of the time and the slow one failed; posted at once, each has it all."""
    endpoint.faults = FaultPlan.script([Fault.stall(1.0)])
    services = SenderServices(
        poster=BatchPoster(SegmentTarget(WRITE_KEY, endpoint.url, 15.0)),
        s3=None,
        prefixes=Prefixes(),
        post_concurrency=5,
    )
    records = [sqs_record(number, 4) for number in range(1, 6)]
    response = send_records(records, services, remaining_seconds=lambda: SAFETY_MARGIN_SECONDS + 2.0)
    assert response == {"batchItemFailures": []}
    assert endpoint.stats()["messages_accepted"] == 20
    assert endpoint.stats()["requests"] == 5
