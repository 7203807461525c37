"""The sample events in events/ stay usable with `sam local invoke` and match the code.

`sam local invoke --env-vars` only overrides variables the template declares, so env.json
names only those: the ones that point at the local stack (docs/sam-local.md); the event
samples must be what the handlers actually parse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from aws_lambda_powertools.utilities.data_classes import S3Event

from segment_importer.batch.envelope import QueuedBatch, read_envelope
from segment_importer.import_ref import ImportRef
from segment_importer.mapping.timestamps import format_timestamp, parse_timestamp
from segment_importer.mapping.validation import check_fields
from segment_importer.settings import SenderSettings, SplitFailureSettings, SplitterSettings
from segment_importer.split.failures import read_failure_message
from segment_importer.track.ledger import StoppedRun
from segment_importer_local.sam_local import LOCAL_PARAMETERS, MOTO_URL
from segment_importer_local.stack import PSEUDO_PARAMETERS, STACK_NAME
from segment_importer_local.template_config import Resolver, StackTemplate

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
# Every function of the template: env.json has an entry for each, events/ a sample for each.
FUNCTIONS = tuple(StackTemplate.load(ROOT / "template.yaml").resources_of_type("AWS::Serverless::Function"))


@pytest.fixture(scope="module")
def template() -> StackTemplate:
    return StackTemplate.load(ROOT / "template.yaml")


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


# ---- env.json ------------------------------------------------------------------------------


def test_env_json_names_only_template_variables_and_every_resource_one(template: StackTemplate) -> None:
    """Undeclared names would be ignored; a variable naming a resource has no value SAM knows."""
    env = load_event("env.json")
    resources = set(template.document["Resources"])

    assert set(env) == set(FUNCTIONS) == set(template.resources_of_type("AWS::Serverless::Function"))
    for function_id in FUNCTIONS:
        declared = template.function_environment(function_id)
        assert set(env[function_id]) <= set(declared), function_id
        naming_resources = {
            name
            for name, value in declared.items()
            if isinstance(value, dict) and value.get("Ref") in resources
        }
        assert naming_resources <= set(env[function_id]), function_id


def test_env_json_values_point_at_the_local_stack(template: StackTemplate) -> None:
    """Resources are moto's on 127.0.0.1; a parameter value is the template's default unless the
    local run overrides the parameter (the Segment hosts: the embedded endpoint)."""
    env = load_event("env.json")
    resolver = Resolver(
        parameters={**template.parameter_defaults(), **LOCAL_PARAMETERS},
        conditions=template.document["Conditions"],
    )
    resources = set(template.document["Resources"])

    for function_id in FUNCTIONS:
        declared = template.function_environment(function_id)
        for variable, sample in env[function_id].items():
            value = declared[variable]
            assert isinstance(sample, str), f"{function_id}.{variable}: sam local wants strings"
            if isinstance(value, dict) and value.get("Ref") in resources:
                assert sample.startswith((STACK_NAME, MOTO_URL)), f"{function_id}.{variable}: {sample}"
            else:
                assert sample == str(resolver.resolve(value)), f"{function_id}.{variable}"


def test_env_json_settings_load(template: StackTemplate) -> None:
    """The handlers read their settings from what `sam local` hands them (the template's values
    with env.json's on top); they must parse and name the local resources."""
    env = load_event("env.json")
    resolver = Resolver(parameters=template.parameter_defaults(), conditions=template.document["Conditions"])

    def container_env(function_id: str) -> dict[str, str]:
        declared = template.function_environment(function_id)
        defaults = {name: value for name, value in declared.items() if name not in env[function_id]}
        return {**{name: str(v) for name, v in resolver.resolve(defaults).items()}, **env[function_id]}

    splitter = SplitterSettings.from_env(container_env("SplitterFunction"))
    sender = SenderSettings.from_env(container_env("SenderFunction"))
    split_failures = SplitFailureSettings.from_env(container_env("SplitFailuresFunction"))

    assert splitter.queue_url.startswith(MOTO_URL)
    assert sender.write_key_parameter.startswith("/"), "a parameter name, never the key"
    assert split_failures.ledger_tables is not None
    assert split_failures.ledger_tables.imports.startswith(STACK_NAME)
    assert split_failures.continuation_attempts == splitter.continuation_attempts
    assert split_failures.event_attempts == splitter.event_attempts


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


def test_s3_sample_bucket_is_the_local_stack_bucket(template: StackTemplate) -> None:
    """The bucket `scripts/moto_stack.py` and `make local-invoke` create (the local stack's)."""
    resolver = Resolver(
        parameters=template.parameter_defaults(),
        pseudo=PSEUDO_PARAMETERS,
        conditions=template.document["Conditions"],
    )
    bucket = resolver.resolve(template.resource("ImportBucket")["Properties"]["BucketName"])
    (record,) = S3Event(load_event("s3-put.json")).records

    assert record.s3.bucket.name == bucket
    assert record.aws_region == PSEUDO_PARAMETERS["AWS::Region"]


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


# ---- split-failure.json --------------------------------------------------------------------


def test_split_failure_sample_is_what_the_splitter_failure_queue_delivers(template: StackTemplate) -> None:
    """An SQS batch from the splitter failure queue: Lambda's invocation record of the sample
    S3 event (every attempt timed out), and a continuation task of the same import that SQS
    redrove; both name the import s3-put.json drops and the request that claimed it."""
    records = load_event("split-failure.json")["Records"]
    s3_event = load_event("s3-put.json")
    (s3_object,) = [record["s3"] for record in s3_event["Records"]]
    queue = template.resource("SplitFailuresFunction")["Properties"]["Events"]
    (source,) = [event["Properties"]["Queue"]["Fn::GetAtt"][0] for event in queue.values()]
    region, account = PSEUDO_PARAMETERS["AWS::Region"], PSEUDO_PARAMETERS["AWS::AccountId"]
    ref = ImportRef(s3_object["bucket"]["name"], s3_object["object"]["key"], s3_object["object"]["eTag"])

    assert len(records) == 2
    assert len({record["messageId"] for record in records}) == 2
    for record in records:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == f"arn:aws:sqs:{region}:{account}:{STACK_NAME}-{source}"
    invocation = json.loads(records[0]["body"])
    assert invocation["requestPayload"] == s3_event
    assert set(invocation) == {
        "version", "timestamp", "requestContext", "requestPayload", "responseContext", "responsePayload",
    }  # fmt: skip
    settings = SplitFailureSettings()
    (killed,) = read_failure_message(records[0]["body"], settings)
    (redriven,) = read_failure_message(records[1]["body"], settings)
    claim = invocation["requestContext"]["requestId"]
    assert (killed.ref, killed.run) == (ref, StoppedRun(claim))
    assert killed.error_type == "Sandbox.Timedout"
    assert (redriven.ref, redriven.run) == (ref, StoppedRun(claim, part=1))
