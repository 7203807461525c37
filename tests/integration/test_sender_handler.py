"""The sender handler against moto and a real endpoint: redelivery, dead-lettering, the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from segment_importer.batch.encoding import encode_message
from segment_importer.batch.envelope import batch_body
from segment_importer.batch.packing import Batch
from segment_importer.import_ref import ImportRef
from segment_importer.track.import_events import DETAIL_TYPE
from segment_importer.track.ledger import COMPLETE, COMPLETE_WITH_ERRORS, SENDING, Ledger
from segment_importer_local.event_source import invoke
from segment_importer_local.segment_endpoint import FaultPlan, SegmentEndpoint
from segment_importer_local.stack import LocalFunction, LocalStack, environment
from segment_importer_local.template_config import StackTemplate

from ..conftest import WRITE_KEY

REF = ImportRef("bucket", "imports/x.ndjson", "etag")


class Deployed:
    def __init__(self, stack: LocalStack, sender: LocalFunction, ledger: Ledger) -> None:
        self.stack, self.sender, self.ledger = stack, sender, ledger

    def invoke(self, records: list[dict[str, Any]], **settings: str) -> dict[str, Any]:
        with environment({**self.sender.environment, **settings}):
            return invoke(self.sender, {"Records": records})


@pytest.fixture
def deployed(endpoint: SegmentEndpoint) -> Iterator[Deployed]:
    with mock_aws():
        stack = LocalStack(StackTemplate.load(), {"SegmentHost": endpoint.url}).create(WRITE_KEY)
        stack.s3.create_bucket(Bucket=REF.bucket)
        ledger = Ledger(stack.dynamodb, stack.table_name("ImportsTable"), stack.table_name("BatchesTable"))
        yield Deployed(stack, stack.function("SenderFunction"), ledger)


def sqs_record(number: int, messages: int, receive_count: int = 1) -> dict[str, Any]:
    batch = Batch(number=number)
    for index in range(messages):
        message = {"type": "track", "userId": "u", "event": "E", "messageId": f"{number}-{index}"}
        batch.bodies.append(encode_message(message).body)
    body = batch_body(REF, batch).decode()
    return {
        "messageId": f"sqs-{number}",
        "receiptHandle": f"rh-{number}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receive_count)},
        "eventSource": "aws:sqs",
    }


def start_import(ledger: Ledger, batches: int, messages: int) -> None:
    ledger.start_split(REF, 100, "r")
    counts = {
        "batches_queued": batches,
        "messages_queued": batches * messages,
        "records_read": batches * messages,
    }
    ledger.finish_split(REF, counts)


def test_a_redelivered_message_is_counted_once(deployed: Deployed, endpoint: SegmentEndpoint) -> None:
    start_import(deployed.ledger, batches=2, messages=5)
    records = [sqs_record(1, 5), sqs_record(2, 5)]
    assert deployed.invoke(records) == {"batchItemFailures": []}
    assert deployed.invoke([records[0]]) == {"batchItemFailures": []}  # SQS delivers batch 1 again
    item = deployed.ledger.get(REF)
    assert item is not None
    assert (item["batches_delivered"], item["messages_delivered"], item["status"]) == (2, 10, COMPLETE)
    assert endpoint.stats()["messages_accepted"] == 10
    assert endpoint.stats()["duplicates"] == 5
    report = deployed.stack.s3.get_object(Bucket=REF.bucket, Key="reports/x.ndjson.report.json")
    assert b'"status": "COMPLETE"' in report["Body"].read()


def test_only_the_failed_batch_is_reported_and_dead_lettered_on_its_last_receive(
    deployed: Deployed, endpoint: SegmentEndpoint
) -> None:
    start_import(deployed.ledger, batches=2, messages=3)
    max_receives = deployed.stack.max_receive_count()
    endpoint.faults = FaultPlan.script(["ok", 401])  # batch 2 meets a wrong-key answer
    # Posted one at a time, so the script's second answer is batch 2's.
    response = deployed.invoke([sqs_record(1, 3), sqs_record(2, 3)], SENDER_POST_CONCURRENCY="1")
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-2"}]}
    item = deployed.ledger.get(REF)
    assert item is not None
    assert item["batches_failed"] == 0  # not yet: SQS will deliver it again
    endpoint.faults = FaultPlan.script([401])
    response = deployed.invoke([sqs_record(2, 3, receive_count=max_receives)])
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-2"}]}
    item = deployed.ledger.get(REF)
    assert item is not None
    assert (item["batches_failed"], item["messages_failed"], item["status"]) == (1, 3, COMPLETE_WITH_ERRORS)
    assert "HTTP 401" in item["first_error"]


def test_a_malformed_body_fails_alone(deployed: Deployed) -> None:
    start_import(deployed.ledger, batches=1, messages=2)
    poison = {"messageId": "sqs-poison", "receiptHandle": "rh", "body": "not json", "attributes": {}}
    response = deployed.invoke([poison, sqs_record(1, 2)])
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-poison"}]}
    item = deployed.ledger.get(REF)
    assert item is not None
    assert item["status"] == COMPLETE


def test_the_import_that_completes_is_announced_on_the_stacks_event_rule(
    deployed: Deployed, endpoint: SegmentEndpoint
) -> None:
    """The handler as deployed (environment from the template) puts one event, which the template's
    own rule (its pattern, resolved for this stack) matches."""
    events, sqs = boto3.client("events"), deployed.stack.sqs
    url = sqs.create_queue(QueueName="import-ends")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = deployed.stack.resolver.resolve(
        deployed.stack.template.resource("ImportEventsRule")["Properties"]["EventPattern"]
    )
    events.put_rule(
        Name="import-ends", EventPattern=json.dumps({**pattern, "detail": {"bucket": [REF.bucket]}})
    )
    events.put_targets(Rule="import-ends", Targets=[{"Id": "queue", "Arn": arn}])
    start_import(deployed.ledger, batches=2, messages=5)

    deployed.invoke([sqs_record(1, 5), sqs_record(2, 5)])

    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1
    event = json.loads(messages[0]["Body"])
    assert event["detail-type"] == DETAIL_TYPE
    detail = event["detail"]
    assert (detail["status"], detail["key"], detail["messages_delivered"]) == (COMPLETE, REF.key, 10)
    assert detail["report"] == f"s3://{REF.bucket}/reports/x.ndjson.report.json"


def test_a_body_of_an_unknown_version_fails_and_is_never_sent(
    deployed: Deployed, endpoint: SegmentEndpoint
) -> None:
    start_import(deployed.ledger, batches=2, messages=2)
    future = sqs_record(1, 2)
    future["messageId"] = "sqs-v3"
    future["body"] = future["body"].replace('{"v":1,', '{"v":3,', 1)
    assert '"v":3' in future["body"]
    response = deployed.invoke([future, sqs_record(2, 2)])
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-v3"}]}
    assert endpoint.stats()["messages_accepted"] == 2  # batch 2's only
    item = deployed.ledger.get(REF)
    assert item is not None
    assert (item["batches_delivered"], item["status"]) == (1, SENDING)
