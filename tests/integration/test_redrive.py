"""Dead-lettered batches moved back after the cause is fixed: all delivered, counted once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from segment_importer.import_ref import ImportRef
from segment_importer.track.ledger import COMPLETE_WITH_ERRORS, Ledger
from segment_importer.track.redrive import redrive
from segment_importer_local.event_source import SqsPoller, invoke, s3_put_event
from segment_importer_local.segment_endpoint import SegmentEndpoint
from segment_importer_local.stack import LocalStack, environment
from segment_importer_local.template_config import StackTemplate

from ..conftest import WRITE_KEY
from .test_pipeline import write_ndjson


@pytest.fixture
def stack(endpoint: SegmentEndpoint) -> Iterator[LocalStack]:
    with mock_aws():
        overrides = {"SegmentHost": endpoint.url, "PreflightHost": "", "BatchMaxMessages": "40"}
        yield LocalStack(StackTemplate.load(), overrides, enforce_iam=True).create(write_key="the-wrong-key")


def drain_work_queue(stack: LocalStack) -> None:
    sender = stack.function("SenderFunction")  # a fresh environment: no cached write key
    arn = stack.sqs.get_queue_attributes(QueueUrl=stack.work_queue_url, AttributeNames=["QueueArn"])
    poller = SqsPoller(
        stack.sqs,
        stack.work_queue_url,
        arn["Attributes"]["QueueArn"],
        sender,
        stack.sqs_batch_size("SenderFunction"),
    )
    with environment(sender.environment):
        poller.drain()


def import_file(stack: LocalStack, path: Path, key: str) -> ImportRef:
    stack.s3.upload_file(str(path), stack.bucket, key)
    head = stack.s3.head_object(Bucket=stack.bucket, Key=key)
    splitter = stack.function("SplitterFunction")
    with environment(splitter.environment):
        invoke(splitter, s3_put_event(stack.bucket, key, head["ContentLength"], head["ETag"].strip('"')))
    return ImportRef(stack.bucket, key, head["ETag"].strip('"'))


def dead_letter_count(stack: LocalStack) -> int:
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_redrive_after_fixing_the_key_delivers_everything_once(
    stack: LocalStack, endpoint: SegmentEndpoint, tmp_path: Path
) -> None:
    ledger = Ledger(stack.dynamodb, stack.table_name("ImportsTable"), stack.table_name("BatchesTable"))
    first, second = tmp_path / "first.ndjson", tmp_path / "second.ndjson"
    valid_first, _ = write_ndjson(first, 200)
    write_ndjson(second, 100)
    refs = [
        import_file(stack, first, "imports/first.ndjson"),
        import_file(stack, second, "imports/second.ndjson"),
    ]
    drain_work_queue(stack)  # the wrong key: every batch ends in the dead-letter queue
    for ref in refs:
        item = ledger.get(ref)
        assert item is not None
        assert item["status"] == COMPLETE_WITH_ERRORS
        assert item["batches_failed"] == item["batches_queued"]
    in_dlq = dead_letter_count(stack)
    assert in_dlq == sum((ledger.get(ref) or {})["batches_queued"] for ref in refs)

    stack.ssm.put_parameter(
        Name="/segment-importer/write-key", Value=WRITE_KEY, Type="SecureString", Overwrite=True
    )
    result = redrive(
        stack.sqs, stack.dead_letter_queue_url, stack.work_queue_url, key=refs[0].key, ledger=ledger
    )
    assert result.imports == {refs[0]}
    assert result.moved == (ledger.get(refs[0]) or {})["batches_queued"]
    assert result.kept == in_dlq - result.moved
    drain_work_queue(stack)

    first_item = ledger.get(refs[0])
    assert first_item is not None
    assert first_item["status"] == COMPLETE_WITH_ERRORS  # it had rejects, but nothing failed now
    assert (first_item["batches_failed"], first_item["messages_failed"]) == (0, 0)
    assert first_item["messages_delivered"] == len(valid_first) == endpoint.stats()["messages_accepted"]
    second_item = ledger.get(refs[1])
    assert second_item is not None
    assert second_item["batches_failed"] == second_item["batches_queued"]  # not redriven
    assert dead_letter_count(stack) == result.kept
