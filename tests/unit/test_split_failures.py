"""What the split failures function reads from a splitter failure queue message: the import,
the run, and the error text the ledger keeps (never an exception's message: it may quote a
record). The ledger side is in tests/unit/test_ledger.py, the whole path in
tests/integration/test_split_failures.py."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import quote_plus

import orjson
import pytest

from segment_importer.import_ref import ImportRef
from segment_importer.settings import SplitFailureSettings
from segment_importer.split.continuation import Checkpoint, SurveyTask
from segment_importer.split.failures import UnreadableFailure, platform_message, read_failure_message
from segment_importer.split.s3_events import notified_objects
from segment_importer.track.ledger import StoppedRun
from segment_importer.track.report import ImportReport

SETTINGS = SplitFailureSettings(event_attempts=3, continuation_attempts=4)
KEY = "imports/2021 crm/sign-ups+été.csv"
S3_EVENT = {
    "Records": [
        {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventName": "ObjectCreated:Put",
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": {"name": "the-bucket", "arn": "arn:aws:s3:::the-bucket"},
                "object": {"key": quote_plus(KEY, safe="/"), "size": 1234, "eTag": "0123abcd"},
            },
        }
    ]
}
# AWS's documented shape (Lambda developer guide, "Capturing records of asynchronous invocations").
RECORD: dict[str, Any] = {
    "version": "1.0",
    "timestamp": "2019-11-14T18:16:05.568Z",
    "requestContext": {
        "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
        "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:my-function:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    },
    "requestPayload": S3_EVENT,
    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
    "responsePayload": {
        "errorMessage": "RequestId: e4b46cbf-b738-xmpl-8880-a18cdf61200e"
        " Error: Task timed out after 900.00 seconds",
        "errorType": "Sandbox.Timedout",
    },
}
PERSONAL = "ana@example.com"


def record(**changes: Any) -> str:
    document = copy.deepcopy(RECORD)
    for path, value in changes.items():
        *parents, name = path.split("__")
        target = document
        for parent in parents:
            target = target[parent]
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    return orjson.dumps(document).decode()


def test_the_s3_event_is_read_as_the_splitter_reads_it() -> None:
    (notified,) = notified_objects(S3_EVENT)
    assert (notified.bucket, notified.key, notified.etag, notified.size) == (
        "the-bucket",
        KEY,
        "0123abcd",
        1234,
    )


def test_a_timed_out_run_names_the_import_the_request_and_lambdas_error() -> None:
    (stopped,) = read_failure_message(record(), SETTINGS)

    assert stopped.ref == ImportRef("the-bucket", KEY, "0123abcd")
    assert stopped.run == StoppedRun(claim="e4b46cbf-b738-xmpl-8880-a18cdf61200e")
    assert stopped.error_type == "Sandbox.Timedout"
    assert stopped.error == (
        "the splitter run was stopped: Sandbox.Timedout after 3 attempts: Task timed out after 900.00 seconds"
    )


@pytest.mark.parametrize(
    ("error_type", "message", "expected"),
    [
        (
            "Runtime.ExitError",
            "RequestId: 1 Error: Runtime exited with error: signal: killed",
            "the splitter run was stopped: Runtime.ExitError after 3 attempts: "
            "Runtime exited with error: signal: killed",
        ),
        (
            "Runtime.OutOfMemory",
            "RequestId: 1 Error: Runtime exited with error: signal: killed\nRuntime.OutOfMemory",
            "the splitter run was stopped: Runtime.OutOfMemory after 3 attempts: "
            "Runtime exited with error: signal: killed Runtime.OutOfMemory",
        ),
    ],
)
def test_lambdas_own_errors_keep_their_message(error_type: str, message: str, expected: str) -> None:
    (stopped,) = read_failure_message(
        record(responsePayload={"errorType": error_type, "errorMessage": message}), SETTINGS
    )
    assert stopped.error == expected


def test_a_python_exceptions_message_is_never_kept() -> None:
    """The runtime reports an unhandled exception with its message and stack trace: either may
    quote a record (an e-mail address here)."""
    payload = {
        "errorMessage": f"invalid literal for int() with base 10: '{PERSONAL}'",
        "errorType": "ValueError",
        "requestId": "r",
        "stackTrace": [f'  File "/var/task/app.py", line 3, in handler\n    int("{PERSONAL}")\n'],
    }
    (stopped,) = read_failure_message(record(responsePayload=payload), SETTINGS)

    assert stopped.error == "the splitter run failed: ValueError after 3 attempts (its message is not kept)"
    assert PERSONAL not in repr(stopped)


def test_a_platform_message_is_one_short_line() -> None:
    text = "RequestId: abc Error: " + "x" * 500 + "\n\x00tail"
    cleaned = platform_message(text)
    assert cleaned.startswith("xxx")
    assert len(cleaned) == 200
    assert "\n" not in cleaned
    assert "\x00" not in cleaned
    assert platform_message(None) == ""


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # An event that waited too long in Lambda's queue: maybe not run at all.
        (
            {"requestContext__condition": "EventAgeExceeded", "requestContext__approximateInvokeCount": 1,
             "responsePayload": None, "responseContext": None},
            "the splitter run was given up after 1 attempt (EventAgeExceeded)",
        ),
        # No count in the record: the splitter's own number of runs.
        (
            {"requestContext__approximateInvokeCount": None, "responsePayload": "not a document"},
            "the splitter run failed: Unhandled after 3 attempts (its message is not kept)",
        ),
        # An error type that is not a name is not copied either.
        (
            {"responsePayload": {"errorType": f"<{PERSONAL}>", "errorMessage": PERSONAL},
             "responseContext": None},
            "the splitter run was given up after 3 attempts",
        ),
    ],
)  # fmt: skip
def test_what_a_record_lacks_is_said_plainly(changes: dict[str, Any], expected: str) -> None:
    (stopped,) = read_failure_message(record(**changes), SETTINGS)
    assert stopped.error == expected
    assert PERSONAL not in stopped.error


def test_job_files_and_folder_markers_are_no_imports() -> None:
    event = copy.deepcopy(S3_EVENT)
    job = copy.deepcopy(event["Records"][0])
    job["s3"]["object"]["key"] = "imports/2021/job.json"
    folder = copy.deepcopy(event["Records"][0])
    folder["s3"]["object"]["key"] = "imports/2021/"
    event["Records"] += [job, folder]

    stopped = read_failure_message(record(requestPayload=event), SETTINGS)
    assert [split.ref.key for split in stopped] == [KEY]


def _report() -> ImportReport:
    return ImportReport(bucket="the-bucket", key=KEY, etag="0123abcd", size_bytes=1234)


def test_a_redriven_checkpoint_names_its_part() -> None:
    checkpoint = Checkpoint.build(_report(), "request-1", part=3, after_record=5000)
    (stopped,) = read_failure_message(checkpoint.to_body(), SETTINGS)

    assert stopped.ref == ImportRef("the-bucket", KEY, "0123abcd")
    assert stopped.run == StoppedRun(claim="request-1", part=3)
    assert stopped.error.startswith("the splitter run was stopped in part 3: its task ran 4 times")


def test_a_redriven_byte_range_names_its_range_and_part() -> None:
    span = {"index": 2, "count": 4, "start": 10, "end": 20, "first_line": 7, "format": "ndjson"}
    checkpoint = Checkpoint.build(_report(), "request-1", part=1, after_record=6, span=span)
    (stopped,) = read_failure_message(checkpoint.to_body(), SETTINGS)
    assert stopped.run == StoppedRun(claim="request-1", part=1, span=2)
    assert "part 1 of byte range 2" in stopped.error

    survey = SurveyTask(
        bucket="the-bucket", key=KEY, etag="0123abcd", size_bytes=1234, claim="request-1",
        index=1, count=4, start=0, end=10, format="ndjson",
    )  # fmt: skip
    (stopped,) = read_failure_message(survey.to_body(), SETTINGS)
    assert stopped.run == StoppedRun(claim="request-1", span=1, survey=True)
    assert "the survey of byte range 1" in stopped.error


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        '{"v": 1}',
        '{"v": 2, "checkpoint": {}}',
        '{"v": 1, "checkpoint": {"bucket": "b"}}',
        orjson.dumps({"v": 1, "survey": {"surprise": PERSONAL}}).decode(),
        record(requestContext={"condition": "RetriesExhausted"}),  # no request id
        record(requestPayload={"Records": [{"eventSource": "aws:sqs", "body": PERSONAL}]}),
        record(requestPayload={"Records": [{"eventSource": "aws:s3", "s3": {}}]}),
        record(requestPayload=None),
    ],
)
def test_a_message_that_names_no_import_is_unreadable_and_its_content_is_not_quoted(body: str) -> None:
    with pytest.raises(UnreadableFailure) as raised:
        read_failure_message(body, SETTINGS)
    assert PERSONAL not in str(raised.value)
    assert "surprise" not in str(raised.value)
