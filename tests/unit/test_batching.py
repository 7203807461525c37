"""BatchPacker limits measured on the real bodies, and QueueWriter against moto SQS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from segment_importer.batch.encoding import EncodedMessage, encode_message
from segment_importer.batch.envelope import QueuedBatch, batch_body, read_envelope
from segment_importer.batch.packing import Batch, BatchLimits, BatchPacker
from segment_importer.batch.queueing import QueueError, QueueWriter
from segment_importer.import_ref import ImportRef

# The longest source the envelope must hold: a 63-character bucket, a 1,024-byte key and a
# multipart ETag.
LONG_SOURCE = ImportRef(
    bucket="b" * 63,
    key="imports/" + "k" * 1012 + ".csv",
    etag="d41d8cd98f00b204e9800998ecf8427e-10000",
)
SOURCE = ImportRef(bucket="drops", key="imports/acme/2021/events.ndjson", etag="abc123")


def wire_body(messages: list[dict[str, Any]]) -> bytes:
    """The request body segment-analytics-python builds for a batch (200-character write key)."""
    body = {"batch": messages, "sentAt": "2024-01-01T00:00:00.000000+00:00", "writeKey": "x" * 200}
    return json.dumps(body).encode()


def message_of_size(n: int, size: int, *, unicode: bool = False) -> dict[str, Any]:
    """A track message of about `size` compact bytes."""
    message = {
        "type": "track",
        "userId": f"user-{n}",
        "event": "Order Completed",
        "timestamp": "2021-03-04T05:06:07.123Z",
        "messageId": f"{n:036d}",
        "properties": {"n": n, "pad": ""},
    }
    base = len(orjson.dumps(message))
    filler = "é" if unicode else "p"
    message["properties"]["pad"] = filler * max(0, (size - base) // len(filler.encode()))
    return message


def pack(encoded: list[EncodedMessage], limits: BatchLimits) -> list[Batch]:
    packer = BatchPacker(limits)
    batches = [closed for message in encoded if (closed := packer.add(message))]
    last = packer.finish()
    if last:
        batches.append(last)
    return batches


def check_batches(
    batches: list[Batch],
    messages: list[dict[str, Any]],
    encoded: list[EncodedMessage],
    limits: BatchLimits,
    source: ImportRef = LONG_SOURCE,
) -> None:
    assert [batch.number for batch in batches] == list(range(1, len(batches) + 1))
    # every message in exactly one batch, in order
    assert [body for batch in batches for body in batch.bodies] == [item.body for item in encoded]
    position = 0
    for batch in batches:
        assert 1 <= batch.size <= limits.max_messages
        in_batch = messages[position : position + batch.size]
        position += batch.size
        assert len(wire_body(in_batch)) <= limits.max_bytes
        body = batch_body(source, batch)
        assert len(body) <= limits.max_queue_bytes
        assert orjson.loads(body)["batch"] == in_batch
        queued = QueuedBatch.from_body(body.decode())
        assert (queued.number, queued.messages) == (batch.number, in_batch)
    assert position == len(messages)


# --- BatchPacker ----------------------------------------------------------------------------


def test_single_batch_and_finish() -> None:
    messages = [message_of_size(n, 300) for n in range(5)]
    encoded = [encode_message(m) for m in messages]
    packer = BatchPacker(BatchLimits())
    assert all(packer.add(item) is None for item in encoded)
    last = packer.finish()
    assert last is not None
    assert (last.number, last.size, last.bodies) == (1, 5, [item.body for item in encoded])


def test_finish_without_messages_is_none() -> None:
    assert BatchPacker(BatchLimits()).finish() is None


def test_add_returns_the_batch_it_closed() -> None:
    limits = BatchLimits(max_messages=2)
    packer = BatchPacker(limits)
    items = [encode_message(message_of_size(n, 200)) for n in range(5)]
    closed = [packer.add(item) for item in items]
    assert [batch.number if batch else None for batch in closed] == [None, None, 1, None, 2]
    assert closed[2] is not None
    assert closed[2].bodies == [items[0].body, items[1].body]
    last = packer.finish()
    assert last is not None
    assert (last.number, last.bodies) == (3, [items[4].body])


@pytest.mark.parametrize(
    "limits",
    [
        BatchLimits(),
        BatchLimits(max_messages=7),
        BatchLimits(max_bytes=20_000),
        BatchLimits(max_queue_bytes=12_000),
        BatchLimits(max_bytes=30_000, max_messages=40, max_queue_bytes=15_000),
    ],
)
def test_limits_on_real_bodies(limits: BatchLimits) -> None:
    messages = [message_of_size(n, 200 + (n * 37) % 1500, unicode=n % 3 == 0) for n in range(600)]
    encoded = [encode_message(m) for m in messages]
    batches = pack(encoded, limits)
    check_batches(batches, messages, encoded, limits)
    assert len(batches) > 1 or limits == BatchLimits()


def test_envelope_allowances_cover_the_real_envelopes() -> None:
    from segment_importer.batch.packing import QUEUE_ENVELOPE_BYTES, WIRE_ENVELOPE_BYTES

    empty = Batch(number=2_000_000, bodies=[])
    assert len(wire_body([])) <= WIRE_ENVELOPE_BYTES
    assert len(batch_body(LONG_SOURCE, empty)) <= QUEUE_ENVELOPE_BYTES
    assert read_envelope(batch_body(SOURCE, empty).decode()) == {
        "v": 1,
        "source": {"bucket": "drops", "key": "imports/acme/2021/events.ndjson", "etag": "abc123"},
        "batch_number": 2_000_000,
        "message_count": 0,
    }


def test_batch_fill_when_bytes_bind() -> None:
    limits = BatchLimits()  # 475,000 bytes binds before 2,500 messages of ~500 bytes
    messages = [message_of_size(n, 500) for n in range(3000)]
    encoded = [encode_message(m) for m in messages]
    batches = pack(encoded, limits)
    check_batches(batches, messages, encoded, limits)
    position = 0
    for batch in batches[:-1]:
        size = len(wire_body(messages[position : position + batch.size]))
        position += batch.size
        assert size >= 0.9 * limits.max_bytes
    assert len(batches) == 4


def test_batch_fill_when_count_binds() -> None:
    limits = BatchLimits(max_messages=250)
    messages = [message_of_size(n, 500) for n in range(1000)]
    encoded = [encode_message(m) for m in messages]
    batches = pack(encoded, limits)
    check_batches(batches, messages, encoded, limits)
    assert [batch.size for batch in batches] == [250, 250, 250, 250]


def test_batch_fill_when_queue_bytes_bind() -> None:
    limits = BatchLimits(max_queue_bytes=100_000)
    messages = [message_of_size(n, 500) for n in range(1000)]
    encoded = [encode_message(m) for m in messages]
    batches = pack(encoded, limits)
    check_batches(batches, messages, encoded, limits)
    for batch in batches[:-1]:
        assert len(batch_body(SOURCE, batch)) >= 0.9 * limits.max_queue_bytes


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(120, 4000), st.booleans()), min_size=1, max_size=120),
    max_bytes=st.integers(16_000, 475_000),
    max_messages=st.integers(1, 2500),
    max_queue_bytes=st.integers(12_000, 1_048_576),
)
def test_packer_limits_hold_for_any_sizes(
    sizes: list[tuple[int, bool]], max_bytes: int, max_messages: int, max_queue_bytes: int
) -> None:
    limits = BatchLimits(max_bytes=max_bytes, max_messages=max_messages, max_queue_bytes=max_queue_bytes)
    messages = [message_of_size(n, size, unicode=unicode) for n, (size, unicode) in enumerate(sizes)]
    encoded = [encode_message(m) for m in messages]
    check_batches(pack(encoded, limits), messages, encoded, limits)


# --- QueueWriter against moto SQS -----------------------------------------------------------


@pytest.fixture
def sqs() -> Iterator[Any]:
    """moto's SQS; the placeholder credentials come from conftest's autouse fixture."""
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


@pytest.fixture
def queue_url(sqs: Any) -> str:
    return sqs.create_queue(QueueName="work")["QueueUrl"]


def no_sleep(seconds: float) -> None:
    pytest.fail(f"unexpected backoff of {seconds} s")


def drain(sqs: Any, queue_url: str) -> list[str]:
    bodies: list[str] = []
    while True:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600)
        received = response.get("Messages", [])
        if not received:
            return bodies
        bodies.extend(message["Body"] for message in received)


class RecordingSQS:
    """Passes calls to the real client and records each SendMessageBatch's entries."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.calls: list[list[dict[str, str]]] = []

    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(list(kwargs["Entries"]))
        return self._real.send_message_batch(**kwargs)


class FlakySQS(RecordingSQS):
    """Fails the chosen entry ids (by batch number) on the first `fail_calls` calls."""

    def __init__(self, real: Any, fail_ids: set[str], *, sender_fault: bool = False, fail_calls: int = 1):
        super().__init__(real)
        self._fail_ids = fail_ids
        self._sender_fault = sender_fault
        self._fail_calls = fail_calls

    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        entries = list(kwargs["Entries"])
        self.calls.append(entries)
        if len(self.calls) > self._fail_calls:
            return self._real.send_message_batch(**kwargs)
        failing = [entry for entry in entries if entry["Id"] in self._fail_ids]
        passing = [entry for entry in entries if entry["Id"] not in self._fail_ids]
        response: dict[str, Any] = {"Successful": [], "Failed": []}
        if passing:
            response = self._real.send_message_batch(QueueUrl=kwargs["QueueUrl"], Entries=passing)
            response.setdefault("Failed", [])
        code = "InvalidMessageContents" if self._sender_fault else "InternalError"
        response["Failed"] = [
            *response["Failed"],
            *(
                {"Id": entry["Id"], "SenderFault": self._sender_fault, "Code": code, "Message": "no"}
                for entry in failing
            ),
        ]
        return response


def make_batches(count: int, *, sizes: list[int] | None = None) -> tuple[list[Batch], list[list[dict]]]:
    batches: list[Batch] = []
    contents: list[list[dict[str, Any]]] = []
    n = 0
    for number in range(1, count + 1):
        size = sizes[(number - 1) % len(sizes)] if sizes else 1
        messages = []
        for _ in range(size):
            messages.append(message_of_size(n, 400, unicode=n % 5 == 0))
            n += 1
        batch = Batch(number=number)
        for message in messages:
            batch.bodies.append(encode_message(message).body)
        batches.append(batch)
        contents.append(messages)
    return batches, contents


def assert_all_queued_once(bodies: list[str], contents: list[list[dict[str, Any]]]) -> None:
    queued = [QueuedBatch.from_body(body) for body in bodies]
    assert sorted(batch.number for batch in queued) == list(range(1, len(contents) + 1))
    for batch in queued:
        assert batch.ref == SOURCE
        assert batch.messages == contents[batch.number - 1]


@pytest.mark.parametrize(
    ("sizes", "max_request_bytes"),
    [
        ([1], 1_048_576),  # the 10-entry limit binds
        ([3, 8, 1, 12, 5], 20_000),  # the byte limit binds
    ],
)
def test_queue_writer_sends_all_batches(
    sqs: Any, queue_url: str, sizes: list[int], max_request_bytes: int
) -> None:
    batches, contents = make_batches(25, sizes=sizes)
    proxy = RecordingSQS(sqs)
    writer = QueueWriter(proxy, queue_url, SOURCE, max_request_bytes=max_request_bytes, sleep=no_sleep)
    for batch in batches:
        writer.put(batch)
    writer.flush()
    writer.flush()  # nothing pending: no call
    assert proxy.calls
    for entries in proxy.calls:
        assert 1 <= len(entries) <= 10
        assert sum(len(entry["MessageBody"].encode()) for entry in entries) <= max_request_bytes
        assert len({entry["Id"] for entry in entries}) == len(entries)
    assert sum(len(entries) for entries in proxy.calls) == 25
    if sizes == [1]:
        assert [len(entries) for entries in proxy.calls] == [10, 10, 5]
    else:
        assert len(proxy.calls) > 3
    assert writer.batches_queued == 25
    assert writer.messages_queued == sum(len(messages) for messages in contents)
    assert writer.retried_entries == 0
    bodies = drain(sqs, queue_url)
    assert len(bodies) == 25
    assert_all_queued_once(bodies, contents)
    for body in bodies:
        envelope = read_envelope(body)
        assert envelope["message_count"] == len(contents[envelope["batch_number"] - 1])


def test_queue_writer_retries_failed_entries(sqs: Any, queue_url: str) -> None:
    batches, contents = make_batches(25, sizes=[2])
    proxy = FlakySQS(sqs, fail_ids={"2", "5", "10"})
    sleeps: list[float] = []
    writer = QueueWriter(proxy, queue_url, SOURCE, max_request_bytes=1_048_576, sleep=sleeps.append)
    for batch in batches:
        writer.put(batch)
    writer.flush()
    assert writer.retried_entries == 3
    assert sleeps == [0.1]
    # the retry carried only the failed entries
    assert sorted(entry["Id"] for entry in proxy.calls[1]) == ["10", "2", "5"]
    assert writer.batches_queued == 25
    assert writer.messages_queued == 50
    bodies = drain(sqs, queue_url)
    assert len(bodies) == 25
    assert_all_queued_once(bodies, contents)


def test_queue_writer_gives_up_after_max_attempts(sqs: Any, queue_url: str) -> None:
    batches, _ = make_batches(3)
    proxy = FlakySQS(sqs, fail_ids={"3"}, fail_calls=100)
    sleeps: list[float] = []
    writer = QueueWriter(
        proxy, queue_url, SOURCE, max_request_bytes=1_048_576, max_attempts=4, sleep=sleeps.append
    )
    for batch in batches:
        writer.put(batch)
    with pytest.raises(QueueError, match="1 batches still failing after 4 attempts"):
        writer.flush()
    assert len(proxy.calls) == 4
    assert sleeps == [0.1, 0.2, 0.4, 0.8]


def test_queue_writer_sender_fault_raises(sqs: Any, queue_url: str) -> None:
    batches, _ = make_batches(4)
    proxy = FlakySQS(sqs, fail_ids={"2"}, sender_fault=True)
    writer = QueueWriter(proxy, queue_url, SOURCE, max_request_bytes=1_048_576, sleep=no_sleep)
    for batch in batches:
        writer.put(batch)
    with pytest.raises(QueueError, match="InvalidMessageContents") as caught:
        writer.flush()
    assert "user-" not in str(caught.value)  # no record data in the error
    assert len(proxy.calls) == 1


@pytest.mark.parametrize("head", ['{"v":3,', '{"v":"1",', "{"])
def test_a_body_of_another_version_is_refused_by_every_reader(head: str) -> None:
    from segment_importer.batch.envelope import MalformedBatch, UnknownEnvelopeVersion

    batch = Batch(number=3)
    batch.bodies.append(b'{"type":"track","userId":"u","event":"E","messageId":"m"}')
    body = batch_body(SOURCE, batch).decode().replace('{"v":1,', head, 1)
    with pytest.raises(UnknownEnvelopeVersion, match="is not one this code reads"):
        QueuedBatch.from_body(body)
    with pytest.raises(UnknownEnvelopeVersion):
        read_envelope(body)
    assert issubclass(UnknownEnvelopeVersion, MalformedBatch)  # the sender fails the record


def test_the_queued_batch_is_the_stored_bytes_and_parses_only_when_asked() -> None:
    batch = Batch(number=4)
    bodies = [encode_message(message_of_size(n, 300, unicode=n == 1)).body for n in range(3)]
    batch.bodies.extend(bodies)
    queued = QueuedBatch.from_body(batch_body(SOURCE, batch))
    assert (queued.ref, queued.number, queued.message_count) == (SOURCE, 4, 3)
    assert queued.raw_batch == b"[" + b",".join(bodies) + b"]"
    assert "messages" not in queued.__dict__  # not parsed yet
    assert [orjson.dumps(message) for message in queued.messages] == bodies
