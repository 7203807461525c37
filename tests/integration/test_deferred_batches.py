"""Fault QA 1: batches the sender put back on the work queue, delayed, under MaxEventsPerSecond.

The local run stopped draining while they were still delayed (they were never sent), and the
run's delivered.ndjson listed them as delivered, so `run --resume` skipped them and said OK
with them lost. Real moto queues and the sender's own log records; no mocks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from segment_importer.batch.envelope import batch_body
from segment_importer.batch.packing import Batch
from segment_importer.deliver.sender import DEFERRED_MESSAGE, DELIVERED_MESSAGE
from segment_importer.deliver.sender import logger as sender_logger
from segment_importer.import_ref import ImportRef
from segment_importer_local.event_source import SqsPoller
from segment_importer_local.resume import DELIVERED_FILE, Delivered, DeliveredLog
from segment_importer_local.stack import LocalFunction

REF = ImportRef("bucket", "imports/a.ndjson", "etag")


def body(number: int) -> str:
    return batch_body(REF, Batch(number, [b'{"type":"track"}'] * 3)).decode()


def test_the_drain_waits_for_a_batch_sent_back_with_a_delay() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="work")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.send_message(QueueUrl=url, MessageBody=body(1))
        handled: list[str] = []

        def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
            for record in event["Records"]:
                handled.append(record["body"])
                if len(handled) == 1:  # as the sender defers under a busy rate: a delayed copy
                    sqs.send_message(QueueUrl=url, MessageBody=record["body"], DelaySeconds=1)
            return {"batchItemFailures": []}

        sender = LocalFunction("SenderFunction", handler, 120, 512, {})
        SqsPoller(sqs, url, arn, sender, 10).drain()
    assert handled == [body(1), body(1)]  # the delayed copy was waited for, and handled


def test_a_deferred_batch_is_not_written_down_as_delivered(tmp_path: Path) -> None:
    log = DeliveredLog(tmp_path, Delivered())
    level = sender_logger.level
    sender_logger.setLevel(logging.INFO)  # as a run's function logging sets it
    try:
        sender_logger.info(DEFERRED_MESSAGE, extra={"key": REF.key, "batch_number": 1})
        assert log.deferred(body(1))
        log.batch_done(body(1))  # the sender reported the original done: its copy is queued
        sender_logger.info(DELIVERED_MESSAGE, extra={"key": REF.key, "batch_number": 1, "refused": 0})
        assert not log.deferred(body(1))
        log.batch_done(body(1))  # the copy, delivered
    finally:
        sender_logger.setLevel(level)
        log.close()
    lines = (tmp_path / DELIVERED_FILE).read_text().splitlines()
    assert len(lines) == 1


def test_a_batch_segment_answered_before_a_stop_is_written_down_as_delivered(tmp_path: Path) -> None:
    """QA3 Q2: batches Segment had answered whose invocation had not finished at the stop (its
    other batches still posting) were not in delivered.ndjson: the resume sent them again, and
    the stop's count, `status` and the endpoint disagreed. Written down when the log closes,
    which a stop does; a batch handed over as done is written once."""
    log = DeliveredLog(tmp_path, Delivered())
    level = sender_logger.level
    sender_logger.setLevel(logging.INFO)  # as a run's function logging sets it
    try:
        for number in (1, 2):
            extra = {"key": REF.key, "batch_number": number, "delivered": 2, "refused": 1}
            sender_logger.info(DELIVERED_MESSAGE, extra=extra)
        log.batch_done(body(1))  # the invocation of batch 1 finished; batch 2's was cut short
    finally:
        sender_logger.setLevel(level)
        log.close()
    delivered = Delivered.read(tmp_path)
    assert delivered.batches == {(REF.key, 1): 3, (REF.key, 2): 3}
    assert delivered.refused == {(REF.key, 1): 1, (REF.key, 2): 1}
