"""The sample events in events/ stay usable with `sam local invoke` and match the code.

`sam local invoke --env-vars` only overrides variables the template declares, so env.json
must name exactly those; the event samples must be what the handlers actually parse.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from aws_lambda_powertools.utilities.data_classes import S3Event

from segment_importer.batch.envelope import QueuedBatch, read_envelope
from segment_importer.mapping.timestamps import format_timestamp, parse_timestamp
from segment_importer.mapping.validation import check_fields
from segment_importer.settings import SenderSettings, SplitterSettings
from segment_importer_local.template_config import Resolver, StackTemplate

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
FUNCTIONS = ("SplitterFunction", "SenderFunction")
SAMPLE_ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def template() -> StackTemplate:
    return StackTemplate.load(ROOT / "template.yaml")


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def samconfig_global() -> dict[str, Any]:
    with (ROOT / "samconfig.toml").open("rb") as stream:
        return tomllib.load(stream)["default"]["global"]["parameters"]


# ---- env.json ------------------------------------------------------------------------------


def test_env_json_names_exactly_the_template_variables(template: StackTemplate) -> None:
    env = load_event("env.json")

    assert set(env) == set(FUNCTIONS) == set(template.resources_of_type("AWS::Serverless::Function"))
    for function_id in FUNCTIONS:
        assert set(env[function_id]) == set(template.function_environment(function_id)), function_id


def test_env_json_values_are_template_defaults_or_placeholders(template: StackTemplate) -> None:
    """Literal and parameter values equal the template's; resource ids are placeholders."""
    env = load_event("env.json")
    resolver = Resolver(parameters=template.parameter_defaults(), conditions=template.document["Conditions"])
    resources = set(template.document["Resources"])

    for function_id in FUNCTIONS:
        for variable, value in template.function_environment(function_id).items():
            sample = env[function_id][variable]
            assert isinstance(sample, str), f"{function_id}.{variable}: sam local wants strings"
            if isinstance(value, dict) and value.get("Ref") in resources:
                assert sample, f"{function_id}.{variable} needs a placeholder"
            else:
                assert sample == str(resolver.resolve(value)), f"{function_id}.{variable}"


def test_env_json_settings_load() -> None:
    """The handlers read their settings from these values; they must parse."""
    env = load_event("env.json")

    splitter = SplitterSettings.from_env(env["SplitterFunction"])
    sender = SenderSettings.from_env(env["SenderFunction"])

    assert splitter.queue_url.startswith("https://sqs.")
    assert sender.write_key_parameter.startswith("/"), "a parameter name, never the key"


# ---- s3-put.json ---------------------------------------------------------------------------


def test_s3_sample_parses_to_the_decoded_key(template: StackTemplate) -> None:
    raw = load_event("s3-put.json")
    (record,) = S3Event(raw).records

    assert record.event_name == "ObjectCreated:Put"
    assert record.s3.get_object.key == "imports/demo/spreadsheet.csv"
    # As S3 sends it: URL-encoded with '+' for spaces, slashes kept.
    assert raw["Records"][0]["s3"]["object"]["key"] == quote_plus(record.s3.get_object.key, safe="/")
    (s3_event,) = template.function_events("SplitterFunction", "S3").values()
    (prefix,) = [rule["Value"] for rule in s3_event["Filter"]["S3Key"]["Rules"] if rule["Name"] == "prefix"]
    assert record.s3.get_object.key.startswith(prefix), "the template's filter would not deliver it"


def test_s3_sample_bucket_is_the_stack_bucket(template: StackTemplate) -> None:
    config = samconfig_global()
    resolver = Resolver(
        parameters=template.parameter_defaults(),
        pseudo={
            "AWS::StackName": config["stack_name"],
            "AWS::Region": config["region"],
            "AWS::AccountId": SAMPLE_ACCOUNT,
        },
    )
    bucket = resolver.resolve(template.resource("ImportBucket")["Properties"]["BucketName"])
    (record,) = S3Event(load_event("s3-put.json")).records

    assert record.s3.bucket.name == bucket
    assert record.aws_region == config["region"]


# ---- sqs-batch.json ------------------------------------------------------------------------


def test_sqs_sample_bodies_are_queued_batches() -> None:
    records = load_event("sqs-batch.json")["Records"]
    s3_object = load_event("s3-put.json")["Records"][0]["s3"]
    assert len(records) == 2
    assert len({record["messageId"] for record in records}) == 2

    for expected_number, record in enumerate(records, start=1):
        assert record["eventSource"] == "aws:sqs"
        batch = QueuedBatch.from_body(record["body"])
        envelope = read_envelope(record["body"])
        assert (batch.ref.bucket, batch.key) == (s3_object["bucket"]["name"], s3_object["object"]["key"])
        assert envelope["source"]["etag"] == s3_object["object"]["eTag"]
        assert batch.number == envelope["batch_number"] == expected_number
        assert envelope["message_count"] == len(batch.messages)


def test_sqs_sample_messages_are_valid_tracks() -> None:
    messages = [
        message
        for record in load_event("sqs-batch.json")["Records"]
        for message in QueuedBatch.from_body(record["body"]).messages
    ]
    assert len(messages) >= 2
    assert len({message["messageId"] for message in messages}) == len(messages)

    for message in messages:
        assert message["type"] == "track"
        check_fields(message)
        assert 0 < len(message["messageId"]) < 100
        # ISO 8601 UTC as the splitter writes it (parses and formats back unchanged).
        assert format_timestamp(parse_timestamp(message["timestamp"])) == message["timestamp"]
