"""moto keeps no SQS message or DynamoDB item after it is gone (`moto_tuning.tuned_moto`).

moto's BaseModel appended every model object to its class's `instances_tracked` until the
mock ended: every batch sent through the work queue, and the copy each receive hands out,
so a local run's memory grew with the file (about 0.65 KB per event)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models.dynamo_type import Item
from moto.sqs.models import Message

from segment_importer_local.moto_tuning import tuned_moto

BODY_CHARS = 200_000  # about a batch's body
BATCHES = 40


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws(), tuned_moto():
        yield boto3.client("sqs")


def _send_receive_delete(sqs: Any, url: str, batches: int) -> None:
    for n in range(batches):
        sqs.send_message(QueueUrl=url, MessageBody=f"{n:08d}" + "x" * BODY_CHARS)
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)],
        )


def test_deleted_messages_do_not_stay_in_memory(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    _send_receive_delete(sqs, url, 2)  # the clients' and moto's first-call caches
    tracemalloc.start()
    try:
        _send_receive_delete(sqs, url, BATCHES)
        gc.collect()  # what is kept, not the garbage the next collection frees
        traced, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # moto's own list kept each body: 40 x 200 KB = 8 MB; what stays now is not a body's worth.
    assert traced < BODY_CHARS
    assert len(Message.instances_tracked) == 0


def test_items_read_and_written_are_not_kept() -> None:
    with mock_aws(), tuned_moto():
        dynamodb = boto3.client("dynamodb")
        dynamodb.create_table(
            TableName="batches",
            KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for n in range(50):
            key = {"key": {"S": f"batch-{n % 5}"}}
            dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": "batches",
                            "Key": key,
                            "UpdateExpression": "ADD delivered :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    }
                ]
            )
            assert dynamodb.get_item(TableName="batches", Key=key, ConsistentRead=True)["Item"]
        assert len(Item.instances_tracked) == 0  # 5 items in the table; moto's list had 100
        assert dynamodb.scan(TableName="batches")["Count"] == 5


def test_the_lists_are_moto_s_own_again_after_the_block() -> None:
    with mock_aws():
        with tuned_moto():
            pass
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="after")["QueueUrl"]
        before = len(Message.instances_tracked)
        sqs.send_message(QueueUrl=url, MessageBody="kept by moto, as it always did")
        assert len(Message.instances_tracked) == before + 1
