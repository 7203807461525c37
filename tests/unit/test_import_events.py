"""An import's end reaches EventBridge as one event that the stack's own rule matches (in moto)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import orjson
import pytest
from moto import mock_aws

from segment_importer.track.import_events import DETAIL_TYPE, ImportEvents, ImportEventsSettings
from segment_importer_local.template_config import Resolver, StackTemplate

BUCKET = "segment-importer-imports-123456789012-us-east-1"
REPORT = {
    "bucket": BUCKET,
    "key": "imports/2021/mixpanel.json.gz",
    "etag": "abc",
    "status": "COMPLETE_WITH_ERRORS",
    "records_read": 1200,
    "messages_queued": 1190,
    "rejected": 10,
    "messages_delivered": 1190,
    "started_at": "2026-12-01T10:00:00+00:00",
    "finished_at": "2026-12-01T10:02:30.500000+00:00",
    "first_name": "never in an event",
}


class Recorder:
    def __init__(self) -> None:
        self.metrics: list[tuple[str, str, float]] = []

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.metrics.append((name, unit, value))


def stack_rule_pattern() -> dict[str, Any]:
    """The EventPattern of the template's own rule, with the bucket's name filled in."""
    template = StackTemplate.load()
    resolver = Resolver(parameters=template.parameter_defaults(), conditions=template.document["Conditions"])
    resolver.define("ImportBucket", BUCKET)
    return resolver.resolve(template.resource("ImportEventsRule")["Properties"]["EventPattern"])


@pytest.fixture
def subscribed_queue() -> Any:
    """The stack's rule on moto's default bus, forwarding to a queue the test reads."""
    with mock_aws():
        sqs, events = boto3.client("sqs"), boto3.client("events")
        url = sqs.create_queue(QueueName="import-ends")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="import-ends", EventPattern=json.dumps(stack_rule_pattern()))
        events.put_targets(Rule="import-ends", Targets=[{"Id": "queue", "Arn": arn}])
        yield events, sqs, url


def received(sqs: Any, url: str) -> list[dict[str, Any]]:
    answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [orjson.loads(message["Body"]) for message in answer.get("Messages", [])]


def test_a_finished_import_is_one_event_the_stacks_rule_matches(subscribed_queue: Any) -> None:
    events, sqs, url = subscribed_queue
    metrics = Recorder()
    announcer = ImportEvents(events, ImportEventsSettings(bus="default"), metrics)

    assert announcer.import_finished(REPORT, "reports/2021/mixpanel.json.gz.json")

    (event,) = received(sqs, url)
    assert event["source"] == "segment-importer"
    assert event["detail-type"] == DETAIL_TYPE
    detail = event["detail"]
    assert detail["status"] == "COMPLETE_WITH_ERRORS"
    assert detail["key"] == "imports/2021/mixpanel.json.gz"
    assert detail["report"] == f"s3://{BUCKET}/reports/2021/mixpanel.json.gz.json"
    assert (detail["records_read"], detail["rejected"], detail["messages_delivered"]) == (1200, 10, 1190)
    assert detail["messages_failed"] == 0
    assert detail["duration_seconds"] == 150.5
    assert "never in an event" not in json.dumps(event)
    assert ("ImportDurationSeconds", "Seconds", 150.5) in metrics.metrics


def test_another_buckets_import_does_not_match_the_rule(subscribed_queue: Any) -> None:
    events, sqs, url = subscribed_queue
    ImportEvents(events, ImportEventsSettings(bus="default")).import_finished(
        {**REPORT, "bucket": "someone-elses-bucket"}, "reports/x.json"
    )
    assert received(sqs, url) == []


def test_an_event_that_cannot_be_put_is_counted_and_never_raises() -> None:
    class RefusingClient:
        def put_events(self, **_: Any) -> dict[str, Any]:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "AccessDeniedException"}]}

    class BrokenClient:
        def put_events(self, **_: Any) -> dict[str, Any]:
            raise ConnectionError("reset")

    for client in (RefusingClient(), BrokenClient()):
        metrics = Recorder()
        announced = ImportEvents(client, ImportEventsSettings(bus="default"), metrics).import_finished(
            REPORT, "reports/x.json"
        )
        assert announced is False
        assert ("ImportEventsFailed", "Count", 1) in metrics.metrics


def test_no_bus_no_event() -> None:
    class Unreachable:
        def put_events(self, **_: Any) -> dict[str, Any]:
            raise AssertionError("no bus configured: nothing may be put")

    assert ImportEvents(Unreachable(), ImportEventsSettings(bus="")).import_finished(REPORT, "r") is False
