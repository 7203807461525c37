"""A split whose last run is killed ends FAILED: the splitter failure queue's consumer.

A Lambda timeout, an out-of-memory kill or a runtime exit runs none of the splitter's code,
so only the task that reaches the splitter failure queue says the split is over: Lambda's
invocation record of the S3 event (after its retries), or a continuation task SQS redrove
after `ContinuationMaxReceiveCount` receives. The real handlers run against moto with every
function's role from template.yaml enforced (`LocalStack(enforce_iam=True)`); Lambda's part
is played by `Lambda` (tests/integration/test_faults_split.py): the same request id for each
retry of an S3 event, receive counts on the continuation queue, the invocation record, and
the failure queue drained through the function the template gives it.

Each test asserts first what only the consumer achieves (an import that was left SPLITTING is
FAILED), so without it they fail there, on the ledger, not on a missing resource.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from moto import mock_aws

from segment_importer.import_ref import ImportRef
from segment_importer.split import splitter as splitter_module
from segment_importer.split import stream_split
from segment_importer.split.stream_split import split_records
from segment_importer.track.ledger import COMPLETE, FAILED, SPLITTING
from segment_importer_local.event_source import InvocationStopped, invocation_record
from segment_importer_local.runner import RunOptions, run_import
from segment_importer_local.segment_endpoint import SegmentEndpoint
from segment_importer_local.stack import LocalLambdaContext, LocalStack, environment
from segment_importer_local.template_config import StackTemplate
from segment_importer_local.verdict import of_run

from ..conftest import WRITE_KEY
from .test_faults_split import RECORDS, Killed, Lambda, ReadFault, export_lines

SEQUENTIAL = {"SplitRecordsPerPart": "0", "BatchMaxMessages": "500"}
PER_PART = {"SplitRecordsPerPart": "5000", "BatchMaxMessages": "100"}
PERSONAL = "ana.personal@example.com"  # what a record holds, and an exception's message may quote
TIMED_OUT = "the splitter run was stopped: Sandbox.Timedout after 3 attempts: Task timed out"


@pytest.fixture
def aws(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Lambda]:
    overrides = getattr(request, "param", SEQUENTIAL)
    with mock_aws(), SegmentEndpoint(WRITE_KEY, output_path=tmp_path / "received.ndjson") as endpoint:
        parameters = {"SegmentHost": endpoint.url, "PreflightHost": "", **overrides}
        stack = LocalStack(StackTemplate.load(), parameters, enforce_iam=True).create(WRITE_KEY)
        harness = Lambda(stack, endpoint)
        yield harness
        denied = [denial for policy in stack.role_policies for denial in policy.denied]
        assert denied == [], f"a handler called what its role does not grant: {sorted(set(denied))}"


@pytest.fixture
def read_fault() -> Iterator[ReadFault]:
    """Registered on boto3's default session before any client exists, so the handlers' carry it."""
    fault = ReadFault()
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    events = boto3.DEFAULT_SESSION._session.get_component("event_emitter")
    events.register("before-call.s3.GetObject", fault.note_range)
    events.register("after-call.s3.GetObject", fault.wrap)
    try:
        yield fault
    finally:
        events.unregister("before-call.s3.GetObject", fault.note_range)
        events.unregister("after-call.s3.GetObject", fault.wrap)


@pytest.fixture
def frequent_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """The splitter records its counts every 2,000 records (not 100,000): a killed run leaves some."""
    monkeypatch.setattr(stream_split, "PROGRESS_EVERY_RECORDS", 2000)


def report_of(aws: Lambda, key: str, suffix: str = ".report.json") -> Any:
    report_key = key.replace("imports/", "reports/", 1) + suffix
    body = aws.stack.s3.get_object(Bucket=aws.stack.bucket, Key=report_key)["Body"].read()
    return orjson.loads(body) if suffix.endswith(".json") else body.decode()


def queue_bodies(aws: Lambda, queue: str) -> list[str]:
    """The queue's messages (a look: they stay visible, for a drain after it)."""
    url = aws.stack.queue_urls[queue]
    found = aws.stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [message["Body"] for message in found.get("Messages", [])]


def kill_a_whole_split(aws: Lambda, read_fault: ReadFault, key: str, request_id: str) -> bytes:
    """Upload `key` and run its S3 event; every attempt is killed halfway through the file."""
    read_fault.only_from_start, read_fault.nth = True, 0
    read_fault.error = lambda: Killed(message="Task timed out after 900.00 seconds")
    body, _ = export_lines(RECORDS)
    read_fault.after_bytes = len(body) // 2
    aws.upload(key, body)
    aws.s3_event(key, request_id)
    return body


# ---- (i) the S3 event's last run is killed -------------------------------------------------


def test_a_split_killed_on_its_last_attempt_ends_failed_with_its_counts_and_report(
    aws: Lambda, read_fault: ReadFault, frequent_progress: None
) -> None:
    key = "imports/killed.ndjson"
    kill_a_whole_split(aws, read_fault, key, "req-killed")
    recorded = aws.item(key)
    assert recorded["status"] == SPLITTING, "nothing in the splitter could mark it: it was killed"
    assert aws.splitter_attempts == read_fault.injected == 3
    assert recorded["records_read"] > 0, "the runs recorded their progress before they were killed"

    aws.drain_failures()

    item = aws.item(key)
    assert item["status"] == FAILED, "the killed split stayed SPLITTING"
    assert item["last_error"].startswith(TIMED_OUT)
    assert item["first_error"] == item["last_error"]
    for count in ("records_read", "bytes_read", "messages_queued", "batches_queued", "rejected"):
        assert item[count] == recorded[count], count
    report = report_of(aws, key)
    assert report["status"] == FAILED
    assert report["last_error"] == item["last_error"]
    assert report["messages_queued"] == recorded["messages_queued"]
    assert "FAILED" in report_of(aws, key, ".report.html")
    assert queue_bodies(aws, "SplitterFailureQueue") == []
    assert queue_bodies(aws, "SplitterFailureDeadLetterQueue") == []
    aws.deliver()  # what the killed runs queued is still delivered; the import stays FAILED
    after = aws.item(key)
    assert after["status"] == FAILED
    assert after["messages_delivered"] > 0


def test_the_function_answers_which_records_to_receive_again(aws: Lambda, read_fault: ReadFault) -> None:
    """The handler's own answer (ReportBatchItemFailures): only the record it could not resolve."""
    key = "imports/answered.ndjson"
    kill_a_whole_split(aws, read_fault, key, "req-answered")
    (record_body,) = queue_bodies(aws, "SplitterFailureQueue")
    event = {
        "Records": [
            _sqs_record("garbage", "not an invocation record", aws),
            _sqs_record("killed", record_body, aws),
        ]
    }
    answer = _invoke_consumer(aws, event)

    assert aws.item(key)["status"] == FAILED, "the killed split stayed SPLITTING"
    assert answer == {"batchItemFailures": [{"itemIdentifier": "garbage"}]}


def _invoke_consumer(aws: Lambda, event: dict[str, Any]) -> Any:
    """The failure queue's consumer, invoked with `event`; None where the template has none."""
    if aws.split_failures is None:
        return None
    with environment(aws.split_failures.environment):
        return aws.split_failures.handler(event, LocalLambdaContext(aws.split_failures))


def _sqs_record(message_id: str, body: str, aws: Lambda) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": aws.stack.queue_arn("SplitterFailureQueue"),
        "awsRegion": "us-east-1",
    }


def test_the_sample_event_fails_the_import_it_names() -> None:
    """events/split-failure.json (what `sam local invoke SplitFailuresFunction` gets), in
    process: the import the sample's killed split left SPLITTING ends FAILED, and both records
    are resolved (the redriven task finds the import failed already)."""
    event = json.loads((Path(__file__).resolve().parents[2] / "events" / "split-failure.json").read_text())
    invocation = json.loads(event["Records"][0]["body"])
    (s3_record,) = invocation["requestPayload"]["Records"]
    with mock_aws():
        stack = LocalStack(StackTemplate.load(), {"PreflightHost": ""}, enforce_iam=True).create(WRITE_KEY)
        harness = Lambda(stack, endpoint=None)  # type: ignore[arg-type]  # nothing is sent to Segment
        obj = s3_record["s3"]["object"]
        ref = ImportRef(s3_record["s3"]["bucket"]["name"], obj["key"], obj["eTag"])
        assert harness.ledger.start_split(ref, obj["size"], invocation["requestContext"]["requestId"])
        answer = _invoke_consumer(harness, event)
        item = harness.ledger.get(ref)
        denied = [denial for policy in stack.role_policies for denial in policy.denied]
    assert item is not None
    assert item["status"] == FAILED, "the sample's import stayed SPLITTING"
    assert item["last_error"] == TIMED_OUT + " after 900.00 seconds"
    assert answer == {"batchItemFailures": []}
    assert denied == []


# ---- (ii) a continued part's task is redriven -----------------------------------------------


@pytest.mark.parametrize(
    "aws",
    [PER_PART, {**PER_PART, "ContinuationMaxReceiveCount": "10"}],
    indirect=True,
    ids=["default receives", "ContinuationMaxReceiveCount at its MaxValue"],
)
def test_a_continued_part_killed_on_every_run_ends_failed(aws: Lambda, read_fault: ReadFault) -> None:
    """Part 1 is killed on each of its ContinuationMaxReceiveCount runs; SQS moves its task to
    the failure queue with that receive count kept, and the function still receives it there
    (at the parameter's MaxValue too: the failure queue's maxReceiveCount is above it)."""
    read_fault.nth, read_fault.after_bytes = 0, 300_000  # every continued read
    read_fault.error = lambda: Killed(message="Task timed out after 900.00 seconds")
    key = "imports/part-killed.ndjson"
    body, _ = export_lines(RECORDS)
    aws.upload(key, body)
    aws.s3_event(key, "req-part")
    aws.drain_continuations()
    runs = int(aws.stack.parameters["ContinuationMaxReceiveCount"])
    assert aws.continuation_failures == read_fault.injected == runs
    recorded = aws.item(key)
    assert recorded["status"] == SPLITTING
    assert recorded["split_part"] == 1

    aws.drain_failures()

    item = aws.item(key)
    assert item["status"] == FAILED, "the killed part left its import SPLITTING"
    assert item["last_error"] == (
        f"the splitter run was stopped in part 1: its task ran {runs} times and never finished"
        " (a timeout, out of memory or a crash; see the splitter's log)"
    )
    assert (item["records_read"], item["messages_queued"]) == (5000, 5000), "part 0's counts"
    assert report_of(aws, key)["status"] == FAILED
    assert queue_bodies(aws, "SplitterFailureDeadLetterQueue") == [], "it reached the function"


# ---- (iii) a record of a run the ledger no longer waits on ----------------------------------


def test_a_stale_failure_leaves_a_restarted_or_finished_import_alone(
    aws: Lambda, read_fault: ReadFault, tmp_path: Path
) -> None:
    killed, again, done = (
        "imports/killed-then-again.ndjson",
        "imports/still-killed.ndjson",
        "imports/done.ndjson",
    )
    kill_a_whole_split(aws, read_fault, killed, "req-first")
    (first_record,) = queue_bodies(aws, "SplitterFailureQueue")
    aws.stack.sqs.purge_queue(QueueUrl=aws.stack.queue_urls["SplitterFailureQueue"])
    kill_a_whole_split(aws, read_fault, again, "req-again")
    aws.drain_failures()  # the first one's record is held back: it arrives late, below
    assert aws.item(again)["status"] == FAILED, "the killed split stayed SPLITTING"
    # The first file: its record is processed, then it is dropped again (a restart under a new
    # request id) and split cleanly.
    aws.stack.sqs.send_message(
        QueueUrl=aws.stack.queue_urls["SplitterFailureQueue"], MessageBody=first_record
    )
    aws.drain_failures()
    assert aws.item(killed)["status"] == FAILED
    read_fault.nth = -1  # no more faults (no read is the -1st)
    aws.s3_event(killed, "req-second")
    clean_body, _ = export_lines(100)
    aws.upload(done, clean_body)
    aws.s3_event(done, "req-done")
    aws.deliver()
    restarted, finished = aws.item(killed), aws.item(done)
    assert (restarted["status"], restarted["splitter_request_id"]) == (COMPLETE, "req-second")
    assert finished["status"] == COMPLETE

    # Late copies: the first run's record again (SQS is at-least-once), and a record for the
    # finished import's request id.
    head = aws.stack.s3.head_object(Bucket=aws.stack.bucket, Key=done)
    stray = invocation_record(
        aws.splitter,
        "req-done",
        _s3_event(aws, done, head),
        3,
        InvocationStopped(message="Task timed out after 900.00 seconds"),
    )
    for body in (first_record, orjson.dumps(stray).decode()):
        aws.stack.sqs.send_message(QueueUrl=aws.stack.queue_urls["SplitterFailureQueue"], MessageBody=body)
    aws.drain_failures()

    assert aws.item(killed) == restarted
    assert aws.item(done) == finished
    assert report_of(aws, killed)["status"] == COMPLETE
    assert queue_bodies(aws, "SplitterFailureDeadLetterQueue") == [], "moved on is resolved, not a failure"


def _s3_event(aws: Lambda, key: str, head: dict[str, Any]) -> dict[str, Any]:
    from segment_importer_local.event_source import s3_put_event

    return s3_put_event(aws.stack.bucket, key, head["ContentLength"], head["ETag"].strip('"'))


# ---- (iv) what cannot be resolved goes to the dead-letter queue ----------------------------


def test_unreadable_messages_and_unknown_imports_end_in_the_dead_letter_queue(
    aws: Lambda, read_fault: ReadFault
) -> None:
    key = "imports/killed-beside-garbage.ndjson"
    kill_a_whole_split(aws, read_fault, key, "req-beside")
    # A split killed before it claimed its import (no ledger item), and two messages that name
    # no import at all.
    head = aws.stack.s3.head_object(Bucket=aws.stack.bucket, Key=key)
    unknown_event = _s3_event(aws, key, head)
    unknown_event["Records"][0]["s3"]["object"]["key"] = "imports/never-claimed.ndjson"
    unknown = invocation_record(aws.splitter, "req-never", unknown_event, 3, InvocationStopped())
    unresolved = [
        "not json at all",
        '{"v": 1, "checkpoint": {"bucket": "b"}}',
        orjson.dumps(unknown).decode(),
    ]
    url = aws.stack.queue_urls["SplitterFailureQueue"]
    for body in unresolved:
        aws.stack.sqs.send_message(QueueUrl=url, MessageBody=body)

    aws.drain_failures()

    assert aws.item(key)["status"] == FAILED, "the killed split beside them stayed SPLITTING"
    assert queue_bodies(aws, "SplitterFailureQueue") == []
    assert sorted(queue_bodies(aws, "SplitterFailureDeadLetterQueue")) == sorted(unresolved)


# ---- (v) an exception's message never reaches the ledger or the logs -----------------------


def test_a_python_exceptions_message_is_not_copied_into_the_ledger_or_the_logs(
    aws: Lambda, read_fault: ReadFault, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The first run is killed before it claims the import, so the ledger counts one run fewer
    than Lambda: the third run fails with an exception quoting a record and, taking itself for
    the second, leaves the import to a retry that never comes. The invocation record carries
    the message (Lambda's Python runtime puts it there); the function must not copy it."""
    caplog.set_level(logging.DEBUG)
    heads = iter([Killed(message="Task timed out after 900.00 seconds")])

    def killed_before_its_claim(**_: Any) -> None:
        if (error := next(heads, None)) is not None:
            raise error

    errors = iter([Killed(message="Task timed out"), RuntimeError(f"cannot map the record of {PERSONAL}")])
    read_fault.only_from_start, read_fault.nth, read_fault.after_bytes = True, 0, 200_000
    read_fault.error = lambda: next(errors)
    session_events = boto3.DEFAULT_SESSION._session.get_component("event_emitter")  # type: ignore[union-attr]
    session_events.register("before-call.s3.HeadObject", killed_before_its_claim)
    key = "imports/exception.ndjson"
    try:
        body, _ = export_lines(RECORDS)
        aws.upload(key, body)
        aws.s3_event(key, "req-exception")
    finally:
        session_events.unregister("before-call.s3.HeadObject", killed_before_its_claim)
    (record_body,) = queue_bodies(aws, "SplitterFailureQueue")
    assert PERSONAL in record_body, "the record carries the exception's message, as Lambda's does"
    assert aws.item(key)["status"] == SPLITTING
    capsys.readouterr()  # from here on: the split failures function's output only
    caplog.clear()

    aws.drain_failures()

    item = aws.item(key)
    assert item["status"] == FAILED, "the split stayed SPLITTING"
    assert (
        item["last_error"]
        == "the splitter run failed: RuntimeError after 3 attempts (its message is not kept)"
    )
    assert PERSONAL not in json.dumps(item)
    assert PERSONAL not in json.dumps(report_of(aws, key))
    assert PERSONAL not in report_of(aws, key, ".report.html")
    output = capsys.readouterr()
    logged = output.out + output.err + caplog.text
    assert "stopped split: import FAILED" in logged, "the function's log lines were not captured"
    assert PERSONAL not in logged


# ---- the local run ------------------------------------------------------------------------


def test_a_local_run_whose_split_is_killed_ends_failed_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`segment-importer run`: the S3 event is retried and recorded as Lambda would, and the
    split failures function marks the import FAILED; the verdict names the error. (The run
    starts moto itself, so the kill is put in the splitter's reading, not on a boto3 session.)"""
    runs: list[int] = []

    class Dying:
        """The reader's record stream, killed after 1,000 records."""

        def __init__(self, records: Any) -> None:
            self._records = records

        def __getattr__(self, name: str) -> Any:
            return getattr(self._records, name)

        def __iter__(self) -> Iterator[Any]:
            for number, record in enumerate(self._records, start=1):
                if number > 1000:
                    raise InvocationStopped("Runtime.ExitError", "Runtime exited with error: signal: killed")
                yield record

    def killed_after_1000_records(records: Any, *args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        return split_records(Dying(records), *args, **kwargs)

    monkeypatch.setattr(splitter_module, "split_records", killed_after_1000_records)
    export = tmp_path / "killed.ndjson"
    export.write_bytes(export_lines(5000)[0])

    result = run_import(RunOptions([export], out_dir=tmp_path / "out", show_progress=False))

    (outcome,) = result.files
    assert outcome.ledger is not None
    assert outcome.ledger["status"] == FAILED, "the killed split stayed SPLITTING"
    error = (
        "the splitter run was stopped: Runtime.ExitError after 3 attempts:"
        " Runtime exited with error: signal: killed"
    )
    assert outcome.ledger["last_error"] == error
    assert len(runs) == 3
    assert outcome.report["status"] == FAILED  # rewritten from the ledger
    verdict = of_run(result, dry_run=False)
    assert verdict.headline.startswith("NOT OK")
    assert f"{outcome.key}: import failed: {error}" in verdict.reasons
    assert not result.ok
