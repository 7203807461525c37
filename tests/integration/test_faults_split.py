"""The splitter under faults: any invocation may die at any line and run again with the same
input (the same request id, the same checkpoint, redelivered), and the import ends as one
clean run would: every valid record delivered under one messageId, the ledger COMPLETE with
true counts. A retry that never succeeds reaches the splitter failure queue, and the import
is FAILED with the counts of what was really queued.

The real handlers run against moto and the embedded Segment endpoint. Lambda's part is
played by `Lambda` below: an S3 event is an asynchronous invoke (retried twice under the
same request id, then sent to the on-failure destination), the continuation queue is
polled one message at a time (a failed or killed invocation's message is visible again at
once, and moto moves it to the failure queue after `maxReceiveCount` receives). The failure
queue's own consumer (the split failures function) runs only where a test drains it.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from botocore.exceptions import ResponseStreamingError
from moto import mock_aws

from segment_importer.batch.envelope import read_envelope
from segment_importer.track.ledger import Ledger
from segment_importer_local import cli
from segment_importer_local.event_source import InvocationStopped, SqsPoller, invocation_record, s3_put_event
from segment_importer_local.segment_endpoint import SegmentEndpoint
from segment_importer_local.stack import LocalFunction, LocalLambdaContext, LocalStack, environment
from segment_importer_local.template_config import StackTemplate

from ..conftest import FAULT_FIGURES, WRITE_KEY
from .test_pipeline import write_csv

RECORDS = 20_000
PER_PART = {"SplitRecordsPerPart": "5000", "BatchMaxMessages": "500"}
SEQUENTIAL = {"SplitRecordsPerPart": "0", "BatchMaxMessages": "500"}


class Killed(InvocationStopped):  # what a Lambda timeout or OOM kill is to the code
    """The invocation dies here: no `except Exception`, no cleanup the code chose to run
    (Lambda reports it as Sandbox.Timedout)."""


def export_lines(count: int, *, every_invalid: int = 0) -> tuple[bytes, set[int]]:
    """NDJSON, one event per line; with `every_invalid`, every n-th line lacks a user."""
    lines, valid = [], set()
    for number in range(1, count + 1):
        record: dict[str, Any] = {"event": "Viewed", "timestamp": "2021-01-01T00:00:00Z"}
        record["properties"] = {"seq": number}
        if not every_invalid or number % every_invalid:
            record["userId"] = f"u{number}"
            valid.add(number)
        lines.append(orjson.dumps(record))
    return b"\n".join(lines) + b"\n", valid


SNIFF_BYTES = 16  # the splitter's look at an object's first bytes (is it an archive?) is not a read


class ReadFault:
    """Breaks GetObject bodies: the `nth` ranged read that starts after byte 0 (a continued
    part's read), or every such read when `nth` is 0, fails after `after_bytes` bytes, with
    `error` (an S3 connection reset by default)."""

    def __init__(
        self,
        *,
        nth: int | tuple[int, ...] = 1,
        after_bytes: int = 50_000,
        error: Callable[[], BaseException] | None = None,
    ):
        self.nth, self.after_bytes = nth, after_bytes
        self.error = error or (lambda: ResponseStreamingError(error="Connection reset by peer"))
        self.continued_reads = 0
        self.injected = 0
        self.only_from_start = False  # break reads from byte 0 instead (a file split in one part)

    def note_range(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["fault_range"] = params.get("headers", {}).get("Range", "bytes=0-")

    def wrap(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if "Body" not in parsed:
            return
        first, _, last = context.get("fault_range", "bytes=0-").removeprefix("bytes=").partition("-")
        if last and int(last) - int(first) < SNIFF_BYTES:  # a look at the magic bytes, not a read
            return
        if (first == "0") != self.only_from_start:
            return
        self.continued_reads += 1
        chosen = self.nth if isinstance(self.nth, tuple) else (self.nth,)
        if self.nth and self.continued_reads not in chosen:
            return
        self.injected += 1
        parsed["Body"] = _BreakingBody(parsed["Body"], self.after_bytes, self.error())


class _BreakingBody(io.RawIOBase):
    def __init__(self, body: Any, after_bytes: int, error: BaseException) -> None:
        self._body, self._left, self._error = body, after_bytes, error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            raise self._error
        chunk = self._body.read(min(size, self._left) if size and size > 0 else self._left)
        self._left -= len(chunk)
        return chunk

    def close(self) -> None:
        self._body.close()


class Lambda:
    """The local stack, its two functions and the event sources, as Lambda runs them."""

    def __init__(self, stack: LocalStack, endpoint: SegmentEndpoint) -> None:
        self.stack = stack
        self.endpoint = endpoint
        self.splitter = stack.function("SplitterFunction")
        self.sender = stack.function("SenderFunction")
        self.ledger = Ledger(
            stack.dynamodb, stack.table_name("ImportsTable"), stack.table_name("BatchesTable")
        )
        self.splitter_attempts = 0
        self.continuation_failures = 0
        # The splitter's OnFailure destination, and the function that consumes it (if any).
        self.failure_queue_id = stack.on_failure_queue("SplitterFunction") or "SplitterFailureQueue"
        consumer = stack.sqs_consumer(self.failure_queue_id)
        self.split_failures = stack.function(consumer) if consumer else None

    def upload(self, key: str, body: bytes) -> dict[str, Any]:
        self.stack.s3.put_object(Bucket=self.stack.bucket, Key=key, Body=body)
        return self.stack.s3.head_object(Bucket=self.stack.bucket, Key=key)

    def s3_event(self, key: str, request_id: str, *, retries: int = 2) -> None:
        """An asynchronous invoke: retried on error under the same request id; when every
        attempt fails, Lambda's invocation record goes to the on-failure destination."""
        event = self._s3_event(key)
        error: BaseException | None = None
        for _ in range(1 + retries):
            error = self._run(self.splitter, event, request_id)
            if error is None:
                return
        assert error is not None
        record = invocation_record(self.splitter, request_id, event, 1 + retries, error)
        self.stack.sqs.send_message(
            QueueUrl=self.stack.queue_urls[self.failure_queue_id], MessageBody=orjson.dumps(record).decode()
        )

    def s3_attempt(self, key: str, request_id: str) -> bool:
        """One run of the S3 event's invocation (Lambda retries it later)."""
        return self._invoke(self.splitter, self._s3_event(key), request_id)

    def _s3_event(self, key: str) -> dict[str, Any]:
        head = self.stack.s3.head_object(Bucket=self.stack.bucket, Key=key)
        return s3_put_event(self.stack.bucket, key, head["ContentLength"], head["ETag"].strip('"'))

    def drain_continuations(self) -> None:
        """Poll the continuation queue one message at a time until it is empty."""
        sqs, url = self.stack.sqs, self.stack.queue_urls["ContinuationQueue"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        while True:
            messages = sqs.receive_message(QueueUrl=url, AttributeNames=["All"], MaxNumberOfMessages=1)
            if not messages.get("Messages"):
                return
            (message,) = messages["Messages"]
            record = {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message["Attributes"],
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            if self._invoke(self.splitter, {"Records": [record]}, message["MessageId"] + "-run"):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            else:  # the local stand-in for the visibility timeout running out
                self.continuation_failures += 1
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )

    def deliver(self) -> None:
        url = self.stack.work_queue_url
        arn = self.stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        poller = SqsPoller(self.stack.sqs, url, arn, self.sender, self.stack.sqs_batch_size("SenderFunction"))
        with environment(self.sender.environment):
            poller.drain()

    def drain_failures(self) -> None:
        """The splitter failure queue through its consumer, as its event source mapping would
        (a template without one leaves the messages where they are)."""
        if self.split_failures is None:
            return
        url = self.stack.queue_urls[self.failure_queue_id]
        arn = self.stack.queue_arn(self.failure_queue_id)
        batch = self.stack.sqs_batch_size(self.split_failures.logical_id)
        with environment(self.split_failures.environment):
            SqsPoller(self.stack.sqs, url, arn, self.split_failures, batch).drain()

    def failure_queue(self) -> list[str]:
        url = self.stack.queue_urls[self.failure_queue_id]
        found = self.stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)
        return [message["Body"] for message in found.get("Messages", [])]

    def item(self, key: str) -> dict[str, Any]:
        (item,) = [item for item in self.ledger.list_imports() if item["key"] == key]
        return item

    def _invoke(self, function: LocalFunction, event: dict[str, Any], request_id: str) -> bool:
        """True if the invocation returned; False if it raised or was killed."""
        return self._run(function, event, request_id) is None

    def _run(self, function: LocalFunction, event: dict[str, Any], request_id: str) -> BaseException | None:
        """None if the invocation returned; else what it raised, or the kill."""
        context = LocalLambdaContext(function)
        context.aws_request_id = request_id
        self.splitter_attempts += function is self.splitter
        with environment(function.environment):
            try:
                function.handler(event, context)
            except (Exception, InvocationStopped) as error:  # Lambda records any failure the same way
                return error
        return None


@pytest.fixture
def aws(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Lambda]:
    overrides = getattr(request, "param", PER_PART)
    with mock_aws(), SegmentEndpoint(WRITE_KEY, output_path=tmp_path / "received.ndjson") as endpoint:
        parameters = {"SegmentHost": endpoint.url, "PreflightHost": "", **overrides}
        stack = LocalStack(StackTemplate.load(), parameters).create(WRITE_KEY)
        yield Lambda(stack, endpoint)


@pytest.fixture
def read_fault() -> Iterator[ReadFault]:
    """Registered before any client exists, so the handlers' clients carry it."""
    fault = ReadFault()
    events = boto3.DEFAULT_SESSION._session.get_component("event_emitter") if boto3.DEFAULT_SESSION else None
    if events is None:
        boto3.setup_default_session()
        events = boto3.DEFAULT_SESSION._session.get_component("event_emitter")
    events.register("before-call.s3.GetObject", fault.note_range)
    events.register("after-call.s3.GetObject", fault.wrap)
    try:
        yield fault
    finally:
        events.unregister("before-call.s3.GetObject", fault.note_range)
        events.unregister("after-call.s3.GetObject", fault.wrap)


def received_ids(aws: Lambda) -> dict[int, set[str]]:
    """Every message the endpoint accepted: seq -> the messageIds it arrived under."""
    path = aws.endpoint.output_path
    assert path is not None
    ids: dict[int, set[str]] = {}
    for line in path.read_bytes().splitlines():
        message = orjson.loads(line)
        ids.setdefault(message["properties"]["seq"], set()).add(message["messageId"])
    return ids


def assert_one_clean_run(aws: Lambda, key: str, valid: set[int], case: str, faults: dict[str, int]) -> None:
    """What one clean run gives: all valid records once, the ledger COMPLETE and consistent."""
    ids = received_ids(aws)
    lost = len(valid - set(ids))
    doubled = sum(1 for found in ids.values() if len(found) > 1)
    item = aws.item(key)
    assert lost == 0, f"{case}: {lost} records never arrived"
    assert doubled == 0, f"{case}: {doubled} records arrived under two messageIds"
    assert item["status"] == "COMPLETE", item
    assert item["records_read"] == RECORDS
    assert item["messages_queued"] == item["messages_delivered"] == len(valid)
    assert item["batches_queued"] == item["batches_delivered"]
    assert aws.failure_queue() == []
    FAULT_FIGURES.append(
        {
            "case": f"{case} (ledger {item['status']})",
            "records": RECORDS,
            "valid": len(valid),
            "rejected": RECORDS - len(valid),
            "faults": faults,
            "segment_requests": aws.endpoint.stats()["requests"],
            "duplicates_absorbed_by_message_id": aws.endpoint.stats()["duplicates"],
            "sqs_redeliveries": aws.continuation_failures,
            "splitter_parts": item["span_parts"]
            if item.get("split_mode") == "spans"
            else item.get("split_part", 0) + 1,
            "byte_ranges": item.get("span_count", 0),
            "lost": lost,
            "doubled": doubled,
        }
    )


@pytest.mark.parametrize("aws", [{"SplitRecordsPerPart": "5000", "BatchMaxMessages": "100"}], indirect=True)
def test_a_continued_part_that_dies_is_run_again(aws: Lambda, read_fault: ReadFault) -> None:
    """Issue 11.1: part 1 is killed mid-read (no cleanup runs) after queuing about 30
    batches; its redelivery redoes it, queuing those batches again under the same numbers."""
    read_fault.error, read_fault.after_bytes = (lambda: Killed()), 300_000
    key = "imports/dies.ndjson"
    body, valid = export_lines(RECORDS)
    aws.upload(key, body)
    aws.s3_event(key, "req-dies")
    aws.drain_continuations()
    aws.deliver()
    assert read_fault.injected == 1
    assert aws.continuation_failures == 1
    assert aws.endpoint.stats()["duplicates"] >= 2000, "the killed run had queued batches"
    assert_one_clean_run(aws, key, valid, "part killed", {"splitter_killed": 1})


def test_a_transient_error_in_a_continued_part_is_retried(aws: Lambda, read_fault: ReadFault) -> None:
    """Issue 11.2: one S3 read reset in part 1 does not fail the import."""
    key = "imports/reset.ndjson"
    body, valid = export_lines(RECORDS)
    aws.upload(key, body)
    aws.s3_event(key, "req-reset")
    aws.drain_continuations()
    aws.deliver()
    assert read_fault.injected == 1
    assert_one_clean_run(aws, key, valid, "S3 read reset", {"s3_read_reset": 1})


SPANS = {"ParallelSplitBytes": "400000", "SplitRecordsPerPart": "2000", "BatchMaxMessages": "500"}


@pytest.mark.parametrize("aws", [SPANS], indirect=True)
def test_byte_ranges_whose_surveys_and_parts_die_or_fail_are_run_again(
    aws: Lambda, read_fault: ReadFault
) -> None:
    """The class of bug in a split in byte ranges: the 2nd, 5th and 9th read after byte 0
    (surveys and span parts) are killed or reset; each task's redelivery redoes it."""
    kinds = iter([Killed(), ResponseStreamingError(error="Connection reset by peer"), Killed()])
    read_fault.nth, read_fault.error = (2, 5, 9), lambda: next(kinds)
    key = "imports/ranges.ndjson"
    body, valid = export_lines(RECORDS)
    aws.upload(key, body)
    aws.s3_event(key, "req-ranges")
    aws.drain_continuations()
    aws.deliver()
    item = aws.item(key)
    assert item["split_mode"] == "spans"
    assert item["span_count"] >= 4
    assert read_fault.injected == aws.continuation_failures == 3
    assert_one_clean_run(aws, key, valid, "byte ranges", {"splitter_killed": 2, "s3_read_reset": 1})


@pytest.mark.parametrize("aws", [SEQUENTIAL], indirect=True)
def test_an_async_retry_after_a_mid_file_failure_completes(aws: Lambda, read_fault: ReadFault) -> None:
    """Issue 11.3: the S3 invocation fails mid-file after queuing half; the batches queued so
    far are delivered; Lambda's retry (same request id) splits the file again."""
    read_fault.only_from_start = True
    key = "imports/async.ndjson"
    body, valid = export_lines(RECORDS)
    read_fault.after_bytes = len(body) // 2
    aws.upload(key, body)
    assert not aws.s3_attempt(key, "req-async")  # the first run fails; the sender runs meanwhile
    failed = aws.item(key)
    aws.deliver()
    assert failed["status"] == "SPLITTING", "a retry is coming: the import has not failed"
    assert failed["messages_queued"] > 0, "the counts say what was queued before the failure"
    assert failed["messages_queued"] == aws.item(key)["messages_delivered"]
    aws.s3_event(key, "req-async", retries=1)  # Lambda's retries (one is enough here)
    aws.drain_continuations()
    aws.deliver()
    assert read_fault.injected == 1
    assert_one_clean_run(aws, key, valid, "async retry", {"s3_read_reset": 1})
    report_key = key.replace("imports/", "reports/") + ".report.json"
    report = orjson.loads(aws.stack.s3.get_object(Bucket=aws.stack.bucket, Key=report_key)["Body"].read())
    assert report["status"] == "COMPLETE"
    assert report["messages_delivered"] == len(valid)


@pytest.mark.parametrize("aws", [{"SplitRecordsPerPart": "5000", "BatchMaxMessages": "100"}], indirect=True)
def test_a_part_that_keeps_failing_reaches_the_failure_queue(aws: Lambda, read_fault: ReadFault) -> None:
    """Every attempt of part 1 fails: after maxReceiveCount the checkpoint is in the failure
    queue, and the import is FAILED with what was really queued."""
    read_fault.nth = 0  # every continued read fails, after about 3,000 records (30 batches)
    read_fault.after_bytes = 300_000
    key = "imports/poison.ndjson"
    body, _ = export_lines(RECORDS)
    aws.upload(key, body)
    aws.s3_event(key, "req-poison")
    aws.drain_continuations()
    aws.deliver()
    (dead,) = aws.failure_queue()
    assert '"checkpoint"' in dead
    item = aws.item(key)
    assert item["status"] == "FAILED"
    assert aws.continuation_failures == read_fault.injected == 3
    delivered = received_ids(aws)
    assert item["messages_queued"] == len(delivered) == item["messages_delivered"]
    assert item["batches_queued"] == item["batches_delivered"]
    assert len(delivered) > 5000, "part 1 queued some batches before it failed"


@pytest.mark.parametrize("aws", [SEQUENTIAL], indirect=True)
def test_an_s3_event_that_keeps_failing_marks_the_import_failed(aws: Lambda, read_fault: ReadFault) -> None:
    read_fault.only_from_start, read_fault.nth = True, 0
    key = "imports/broken.ndjson"
    body, _ = export_lines(RECORDS)
    read_fault.after_bytes = len(body) // 3
    aws.upload(key, body)
    aws.s3_event(key, "req-broken")
    aws.deliver()
    assert len(aws.failure_queue()) == 1
    item = aws.item(key)
    assert item["status"] == "FAILED"
    assert aws.splitter_attempts == read_fault.injected == 3
    assert item["messages_queued"] == len(received_ids(aws)) == item["messages_delivered"] > 0


def _multipart(s3: Any, bucket: str, key: str, body: bytes, part_bytes: int) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    parts = []
    for number, start in enumerate(range(0, len(body), part_bytes), start=1):
        answer = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=body[start : start + part_bytes],
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )


def queued_ids(aws: Lambda) -> Counter[tuple[str, int, str]]:
    """(key, seq, messageId) of every message on the work queue (read, then left to expire)."""
    sqs, url = aws.stack.sqs, aws.stack.work_queue_url
    found: Counter[tuple[str, int, str]] = Counter()
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
        "Messages"
    ):
        for message in messages:
            key = read_envelope(message["Body"])["source"]["key"]
            for event in orjson.loads(message["Body"])["batch"]:
                found[(key, event["properties"]["seq"], event["messageId"])] += 1
    return found


@pytest.mark.parametrize("aws", [{"SplitRecordsPerPart": "700", "BatchMaxMessages": "100"}], indirect=True)
def test_the_same_bytes_uploaded_three_ways_get_the_same_message_ids(aws: Lambda) -> None:
    """Issue 11.4: one PUT, 8 MiB parts and 5 MiB parts: three ETags, one set of messageIds."""
    lines = [
        orjson.dumps(
            {
                "userId": f"u{n % 1000}",
                "event": "E",
                "timestamp": "2021-01-01T00:00:00Z",
                "properties": {"seq": n, "pad": "x" * 6000},
            }
        )
        for n in range(1, 2001)
    ]
    body = b"\n".join(lines) + b"\n"
    assert len(body) > 11 << 20
    s3, bucket = aws.stack.s3, aws.stack.bucket
    s3.put_object(Bucket=bucket, Key="imports/one-put.ndjson", Body=body)
    _multipart(s3, bucket, "imports/parts-8.ndjson", body, 8 << 20)
    _multipart(s3, bucket, "imports/parts-5.ndjson", body, 5 << 20)
    keys = ["imports/one-put.ndjson", "imports/parts-8.ndjson", "imports/parts-5.ndjson"]
    etags = {s3.head_object(Bucket=bucket, Key=key)["ETag"] for key in keys}
    assert len(etags) == 3, "the three uploads must differ in ETag for this test to prove anything"
    for number, key in enumerate(keys):
        aws.s3_event(key, f"req-upload-{number}")
    aws.drain_continuations()
    found = queued_ids(aws)
    ids_by_seq: dict[int, set[str]] = {}
    for (_, seq, message_id), count in found.items():
        assert count == 1
        ids_by_seq.setdefault(seq, set()).add(message_id)
    assert sorted(ids_by_seq) == list(range(1, 2001))
    assert all(len(ids) == 1 for ids in ids_by_seq.values()), "one record, one messageId, however uploaded"
    assert len({next(iter(ids)) for ids in ids_by_seq.values()}) == 2000


@pytest.mark.parametrize("per_part", ["50", "150"])
def test_every_parts_rejects_are_in_the_final_report(tmp_path: Path, per_part: str) -> None:
    """Issue 11.9: with 50 records a part, the last part has no rejects (the run used to end
    in a TypeError, exit 1, no report); with 150, the report named one file of several."""
    export = tmp_path / "events.csv"
    _, invalid = write_csv(export, 500)  # rows 89, 178, 267, 356, 445 are invalid
    report_path = tmp_path / "report.json"
    arguments = ["run", str(export), "--parameter", f"SplitRecordsPerPart={per_part}", "--no-progress"]
    # Exit 3: every valid record delivered, and the file has rejects (the verdict says so).
    assert cli.main([*arguments, "--report", str(report_path), "--out", str(tmp_path / "out")]) == 3
    result = orjson.loads(report_path.read_bytes())
    (outcome,) = result["files"]
    listed = outcome["report"]["rejects_keys"]
    assert len(listed) == len({(number - 1) // int(per_part) for number in invalid}) > 1
    numbers = []
    for key in listed:
        lines = (Path(result["bucket_copy"]) / key).read_bytes().splitlines()
        numbers += [orjson.loads(line)["number"] for line in lines]
    assert sorted(numbers) == sorted(invalid)
    assert outcome["report"]["rejects_key"] == listed[0]
    assert outcome["ledger"]["rejects_keys"] == listed
