"""`hash.keyParameter`: the deployed splitter handler reads the HMAC key from SSM (moto), only
under the template's HashKeyParameterPath; the key is in no report."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from moto import mock_aws

from segment_importer_local.event_source import invoke, s3_put_event
from segment_importer_local.stack import LocalStack, environment
from segment_importer_local.template_config import StackTemplate

SECRET = "hmac key from ssm"


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws():
        yield LocalStack(StackTemplate.load(), {"PreflightHost": ""}).create(write_key="k")


def split_with(stack: LocalStack, tmp_path: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Drop a job and an export, and hand the S3 event to the splitter's handler."""
    export = tmp_path / "users.ndjson"
    lines = [
        {"type": "identify", "userId": f"user-{n}", "traits": {"email": f"u{n}@example.com"}}
        for n in range(5)
    ]
    export.write_text("\n".join(json.dumps(line) for line in lines))
    stack.s3.put_object(Bucket=stack.bucket, Key="imports/crm/job.json", Body=json.dumps(job).encode())
    key = "imports/crm/users.ndjson"
    stack.s3.upload_file(str(export), stack.bucket, key)
    head = stack.s3.head_object(Bucket=stack.bucket, Key=key)
    splitter = stack.function("SplitterFunction")
    with environment(splitter.environment):
        invoke(splitter, s3_put_event(stack.bucket, key, head["ContentLength"], head["ETag"].strip('"')))
    report_key = "reports/crm/users.ndjson.report.json"
    return orjson.loads(stack.s3.get_object(Bucket=stack.bucket, Key=report_key)["Body"].read())


def queued_messages(stack: LocalStack) -> list[dict[str, Any]]:
    messages = []
    while True:
        got = stack.sqs.receive_message(QueueUrl=stack.work_queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not got:
            return messages
        messages += [m for body in got for m in orjson.loads(body["Body"])["batch"]]


def test_the_key_comes_from_ssm(stack: LocalStack, tmp_path: Path) -> None:
    name = stack.parameters["HashKeyParameterPath"] + "crm"
    stack.ssm.put_parameter(Name=name, Value=SECRET, Type="SecureString")
    report = split_with(
        stack, tmp_path, {"type": "identify", "hash": {"paths": ["traits.email"], "keyParameter": name}}
    )
    assert report["status"] == "QUEUED"
    messages = queued_messages(stack)
    assert len(messages) == 5
    for message in messages:
        number = message["userId"].removeprefix("user-")
        expected = hmac.new(SECRET.encode(), f"u{number}@example.com".encode(), hashlib.sha256).hexdigest()
        assert message["traits"]["email"] == expected


def test_a_parameter_outside_the_prefix_fails_the_import_plainly(stack: LocalStack, tmp_path: Path) -> None:
    stack.ssm.put_parameter(Name="/segment-importer/write-key-copy", Value=SECRET, Type="SecureString")
    job = {"hash": {"paths": ["userId"], "keyParameter": "/segment-importer/write-key-copy"}}
    report = split_with(stack, tmp_path, job)
    assert report["status"] == "FAILED"
    assert "'hash.keyParameter' must be under /segment-importer/hash-keys/" in report["error"]
    assert queued_messages(stack) == []


def test_a_parameter_that_does_not_exist_fails_the_import_naming_it(
    stack: LocalStack, tmp_path: Path
) -> None:
    """QA F-med-4: it failed after three attempts as an internal error, the log naming only
    ParameterNotFound."""
    name = stack.parameters["HashKeyParameterPath"] + "missing"
    report = split_with(stack, tmp_path, {"hash": {"paths": ["userId"], "keyParameter": name}})
    assert report["status"] == "FAILED"
    assert f"'hash.keyParameter' {name!r} is not in SSM" in report["error"]
    assert queued_messages(stack) == []
