"""Several workspaces from one stack: a job names its write key's parameter and host.

The stack runs under the template's IAM (the local IAM guard), so a job-named key is read
only because the template allows its path; the embedded endpoints stand in for Segment
sources and count what each write key (the Basic auth user) delivered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from segment_importer.batch.envelope import read_envelope
from segment_importer.import_ref import ImportRef
from segment_importer.track.keys import report_key
from segment_importer.track.ledger import COMPLETE_WITH_ERRORS, Ledger
from segment_importer.track.redrive import redrive
from segment_importer_local.event_source import invoke, s3_put_event
from segment_importer_local.segment_endpoint import SegmentEndpoint
from segment_importer_local.stack import LocalStack, environment
from segment_importer_local.template_config import StackTemplate

from ..conftest import WRITE_KEY
from .test_pipeline import write_ndjson
from .test_redrive import dead_letter_count, drain_work_queue

TEST_SOURCE_KEY = "test-source-write-key"
EU_SOURCE_KEY = "eu-source-write-key"


@pytest.fixture
def us() -> Iterator[SegmentEndpoint]:
    """The stack's own host: the production source and a test source of the same workspace."""
    with SegmentEndpoint(WRITE_KEY, other_write_keys=[TEST_SOURCE_KEY]) as running:
        yield running


@pytest.fixture
def eu() -> Iterator[SegmentEndpoint]:
    """Another host (an EU workspace's)."""
    with SegmentEndpoint(EU_SOURCE_KEY) as running:
        yield running


def make_stack(us: SegmentEndpoint, eu: SegmentEndpoint, **overrides: str) -> LocalStack:
    parameters = {
        "SegmentHost": us.url,
        "PreflightHost": "",
        "JobSegmentHosts": eu.url,  # the embedded endpoints are plain http on loopback
        "BatchMaxMessages": "40",
        **overrides,
    }
    return LocalStack(StackTemplate.load(), parameters, enforce_iam=True).create(WRITE_KEY)


@pytest.fixture
def stack(us: SegmentEndpoint, eu: SegmentEndpoint) -> Iterator[LocalStack]:
    with mock_aws():
        yield make_stack(us, eu)


def job_key(stack: LocalStack, name: str) -> str:
    """A parameter under the stack's JobKeyParameterPath (read from the template)."""
    return stack.parameters["JobKeyParameterPath"] + name


def put_key(stack: LocalStack, name: str, value: str) -> None:
    stack.ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


def drop(
    stack: LocalStack, tmp_path: Path, folder: str, job: dict[str, Any] | None, records: int = 100
) -> Any:
    """Put a job file (if any) and an export under imports/<folder>/, run the splitter on it;
    returns (ref, number of valid records, the report)."""
    if job is not None:
        stack.s3.put_object(
            Bucket=stack.bucket, Key=f"imports/{folder}/job.json", Body=json.dumps(job).encode()
        )
    path = tmp_path / f"{folder}.ndjson"
    valid, _ = write_ndjson(path, records)
    key = f"imports/{folder}/events.ndjson"
    stack.s3.upload_file(str(path), stack.bucket, key)
    head = stack.s3.head_object(Bucket=stack.bucket, Key=key)
    etag = head["ETag"].strip('"')
    splitter = stack.function("SplitterFunction")
    with environment(splitter.environment):
        invoke(splitter, s3_put_event(stack.bucket, key, head["ContentLength"], etag))
    prefixes = stack.prefixes
    report = stack.s3.get_object(Bucket=stack.bucket, Key=report_key(prefixes.reports, prefixes.imports, key))
    return ImportRef(stack.bucket, key, etag), len(valid), json.loads(report["Body"].read())


def queued_bodies(stack: LocalStack) -> list[dict[str, Any]]:
    """The work queue's envelopes; the messages are left on the queue, visible again."""
    messages: list[dict[str, Any]] = []
    while batch := stack.sqs.receive_message(
        QueueUrl=stack.work_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60
    ).get("Messages", []):
        messages += batch
    for message in messages:
        stack.sqs.change_message_visibility(
            QueueUrl=stack.work_queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return [read_envelope(message["Body"]) for message in messages]


def queue_depth(stack: LocalStack) -> int:
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.work_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_two_jobs_in_one_run_each_batch_goes_with_its_own_key(
    stack: LocalStack, us: SegmentEndpoint, eu: SegmentEndpoint, tmp_path: Path
) -> None:
    put_key(stack, job_key(stack, "test-source"), TEST_SOURCE_KEY)
    # The same records twice: a salt keeps the embedded endpoint (one for both sources) from
    # deduplicating the second source's messages by messageId.
    trial = {"writeKeyParameter": job_key(stack, "test-source"), "messageIdSalt": "trial"}
    _, to_test, test_report = drop(stack, tmp_path, "trial", trial)
    _, to_production, _ = drop(stack, tmp_path, "production", None, records=150)
    assert test_report["status"] == "QUEUED", test_report.get("error")
    assert test_report["job"]["writeKeyParameter"] == job_key(stack, "test-source")
    assert TEST_SOURCE_KEY not in json.dumps(test_report)

    drain_work_queue(stack)

    assert us.accepted_by_write_key() == {TEST_SOURCE_KEY: to_test, WRITE_KEY: to_production}
    assert eu.stats()["messages_accepted"] == 0


def test_a_job_naming_another_host_and_key_is_delivered_there_only(
    stack: LocalStack, us: SegmentEndpoint, eu: SegmentEndpoint, tmp_path: Path
) -> None:
    put_key(stack, job_key(stack, "eu"), EU_SOURCE_KEY)
    job = {"writeKeyParameter": job_key(stack, "eu"), "host": eu.url}
    _, valid, report = drop(stack, tmp_path, "eu", job, records=120)
    assert report["status"] == "QUEUED", report.get("error")
    envelopes = queued_bodies(stack)
    assert envelopes  # version 2 bodies name the target, never the key
    assert {envelope["v"] for envelope in envelopes} == {2}
    assert all(envelope["target"] == job for envelope in envelopes)

    drain_work_queue(stack)

    assert eu.accepted_by_write_key() == {EU_SOURCE_KEY: valid}
    assert us.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("job", "reason"),
    [
        (
            {"writeKeyParameter": "/segment-importer/other-team/key"},
            "is not under /segment-importer/write-keys/",
        ),
        # The HMAC key of hashed fields must never be posted to Segment as a write key.
        (
            {"writeKeyParameter": "/segment-importer/hash-keys/crm"},
            "is not under /segment-importer/write-keys/",
        ),
        ({"writeKeyParameter": "/segment-importer/write-keys/../write-key"}, "no '..'"),
        ({"writeKeyParameter": "/segment-importer/write-keys/*"}, "not an SSM parameter name"),
        ({"writeKeyParameter": "secretsmanager:segment/prod"}, "Secrets Manager is for the stack's own key"),
        ({"host": "https://collector.example.com"}, "is not one the stack allows"),
        ({"host": "http://collector.example.com"}, "https only"),
    ],
)
def test_a_target_the_stack_does_not_allow_fails_the_import_and_nothing_is_sent(
    stack: LocalStack,
    us: SegmentEndpoint,
    eu: SegmentEndpoint,
    tmp_path: Path,
    job: dict[str, Any],
    reason: str,
) -> None:
    # The parameters exist: only the policy stands between the job and them.
    put_key(stack, "/segment-importer/other-team/key", "someone-elses-key")
    put_key(stack, "/segment-importer/hash-keys/crm", "hmac-secret")
    ref, _, report = drop(stack, tmp_path, "refused", job)
    assert report["status"] == "FAILED"
    assert reason in report["error"]
    assert queue_depth(stack) == 0
    drain_work_queue(stack)
    assert us.stats()["requests"] == eu.stats()["requests"] == 0
    for secret in ("someone-elses-key", "hmac-secret", WRITE_KEY):
        assert secret not in json.dumps(report)
    ledger = Ledger(stack.dynamodb, stack.table_name("ImportsTable"), stack.table_name("BatchesTable"))
    assert (ledger.get(ref) or {})["status"] == "FAILED"


def test_the_iam_guard_holds_the_sender_to_the_path(
    us: SegmentEndpoint, eu: SegmentEndpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stack whose code-level path were wider than its IAM: the role still reads nothing else."""
    with mock_aws():
        stack = make_stack(us, eu)
        put_key(stack, job_key(stack, "test-source"), TEST_SOURCE_KEY)
        drop(stack, tmp_path, "trial", {"writeKeyParameter": job_key(stack, "test-source")}, records=50)
        sender = stack.function("SenderFunction")
        sender.environment["JOB_KEY_PARAMETER_PATH"] = "/segment-importer/"  # wider than the role's
        put_key(stack, "/segment-importer/other-team/key", TEST_SOURCE_KEY)
        queued = queued_bodies(stack)
        assert queued
        stack.sqs.purge_queue(QueueUrl=stack.work_queue_url)
        # Forged as the splitter writes bodies (compact, `batch` last), so only its target is wrong.
        head = {name: value for name, value in queued[0].items() if name != "batch"}
        body = {
            **head,
            "target": {"writeKeyParameter": "/segment-importer/other-team/key"},
            "batch": [{"type": "track", "userId": "u", "event": "E", "messageId": "m"}],
        }
        record = {
            "messageId": "forged",
            "receiptHandle": "rh",
            "body": json.dumps(body, separators=(",", ":")),
            "attributes": {"ApproximateReceiveCount": "1"},
            "eventSource": "aws:sqs",
        }
        with environment(sender.environment):
            response = invoke(sender, {"Records": [record]})
        assert response == {"batchItemFailures": [{"itemIdentifier": "forged"}]}
        assert us.stats()["requests"] == 0
    logged = capsys.readouterr().out
    # The parameter exists: the role's AccessDenied (the IAM guard) is why it was not read.
    assert "'/segment-importer/other-team/key' could not be read (GetParameterError)" in logged
    assert TEST_SOURCE_KEY not in logged


def test_the_job_key_is_preflighted_not_the_stacks(
    us: SegmentEndpoint, eu: SegmentEndpoint, tmp_path: Path
) -> None:
    with mock_aws():
        stack = make_stack(us, eu, PreflightHost=us.url)
        put_key(stack, job_key(stack, "typo"), "a-key-no-source-has")
        _, _, report = drop(stack, tmp_path, "typo", {"writeKeyParameter": job_key(stack, "typo")})
        assert report["status"] == "FAILED"
        assert "pre-flight failed" in report["error"]
        assert "a-key-no-source-has" not in json.dumps(report)
        _, _, missing = drop(stack, tmp_path, "missing", {"writeKeyParameter": job_key(stack, "missing")})
        assert missing["status"] == "FAILED"
        assert f"{job_key(stack, 'missing')!r} could not be read" in missing["error"]
        assert queue_depth(stack) == 0

        put_key(stack, job_key(stack, "test-source"), TEST_SOURCE_KEY)
        _, valid, report = drop(
            stack, tmp_path, "trial", {"writeKeyParameter": job_key(stack, "test-source")}
        )
        assert report["status"] == "QUEUED", report.get("error")
        drain_work_queue(stack)
        assert us.accepted_by_write_key() == {TEST_SOURCE_KEY: valid}


def test_a_redriven_batch_still_goes_to_its_own_target(
    stack: LocalStack, us: SegmentEndpoint, eu: SegmentEndpoint, tmp_path: Path
) -> None:
    name = job_key(stack, "eu")
    put_key(stack, name, "not-the-eu-key-yet")
    ref, valid, _ = drop(stack, tmp_path, "eu", {"writeKeyParameter": name, "host": eu.url})
    drain_work_queue(stack)  # the EU endpoint refuses the key: every batch is dead-lettered
    ledger = Ledger(stack.dynamodb, stack.table_name("ImportsTable"), stack.table_name("BatchesTable"))
    assert (ledger.get(ref) or {})["status"] == COMPLETE_WITH_ERRORS
    assert dead_letter_count(stack) == (ledger.get(ref) or {})["batches_queued"]

    put_key(stack, name, EU_SOURCE_KEY)
    result = redrive(stack.sqs, stack.dead_letter_queue_url, stack.work_queue_url, ledger=ledger)
    assert result.moved == (ledger.get(ref) or {})["batches_queued"]
    drain_work_queue(stack)

    assert eu.accepted_by_write_key() == {EU_SOURCE_KEY: valid}
    assert us.stats()["requests"] == 0  # never the stack's default workspace
    assert (ledger.get(ref) or {})["messages_delivered"] == valid
