"""Black-box QA of the deployed-stack commands' region: `status --stack`, `rejects --stack` and
`redrive --stack` against a stack in eu-west-1 (moto), the region set the ways a user sets it.

In-process (`cli.main` with real arguments) so the CLI's boto3 clients talk to moto's mock."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from segment_importer.import_ref import ImportRef
from segment_importer.track.ledger import Ledger
from segment_importer_local import cli

STACK, REGION = "importer-eu", "eu-west-1"
KEY = "imports/2019/events.csv"
_TEMPLATE = {
    "Resources": {
        "ImportsTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "import_id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "import_id", "KeyType": "HASH"}],
            },
        },
        "BatchesTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": "import_id", "AttributeType": "S"},
                    {"AttributeName": "batch_number", "AttributeType": "N"},
                ],
                "KeySchema": [
                    {"AttributeName": "import_id", "KeyType": "HASH"},
                    {"AttributeName": "batch_number", "KeyType": "RANGE"},
                ],
            },
        },
        "ImportBucket": {"Type": "AWS::S3::Bucket"},
        "WorkQueue": {"Type": "AWS::SQS::Queue"},
        "DeadLetterQueue": {"Type": "AWS::SQS::Queue"},
    }
}


@pytest.fixture
def stack_in_eu(monkeypatch: pytest.MonkeyPatch):
    """A deployed stack's resources in eu-west-1, one import in its ledger with a reject."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        cloudformation.create_stack(StackName=STACK, TemplateBody=json.dumps(_TEMPLATE))

        def physical(logical_id: str) -> str:
            detail = cloudformation.describe_stack_resource(StackName=STACK, LogicalResourceId=logical_id)
            return detail["StackResourceDetail"]["PhysicalResourceId"]

        ledger = Ledger(
            boto3.client("dynamodb", region_name=REGION), physical("ImportsTable"), physical("BatchesTable")
        )
        ledger.start_split(ImportRef(physical("ImportBucket"), KEY, "etag"), 100, "request-1")
        s3 = boto3.client("s3", region_name=REGION)
        s3.put_object(Bucket=physical("ImportBucket"), Key="reports/2019/events.csv.report.json", Body=b"{}")
        s3.put_object(
            Bucket=physical("ImportBucket"),
            Key="rejects/2019/events.csv.rejects.ndjson",
            Body=b'{"number":2}\n',
        )
        yield monkeypatch


COMMANDS = [
    ["status", "--stack", STACK, "--json"],
    ["rejects", "2019/events.csv", "--stack", STACK],
    ["redrive", "--stack", STACK],
]


@pytest.mark.parametrize("arguments", COMMANDS, ids=lambda a: a[0])
@pytest.mark.parametrize(
    ("environment", "flag"),
    [
        ({"AWS_REGION": REGION, "AWS_DEFAULT_REGION": "us-east-1"}, []),  # AWS_REGION wins
        ({"AWS_DEFAULT_REGION": REGION}, []),
        (
            {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"},
            ["--region", REGION],
        ),  # --region wins
    ],
    ids=["AWS_REGION", "AWS_DEFAULT_REGION", "--region"],
)
def test_deployed_commands_use_the_region_the_user_set(
    stack_in_eu, capsys: pytest.CaptureFixture[str], arguments, environment, flag
) -> None:
    """QA 6: boto3 reads AWS_DEFAULT_REGION, not AWS_REGION (the name every other AWS tool and
    Lambda use), and there was no --region: the stack in eu-west-1 was looked for elsewhere."""
    for name, value in environment.items():
        stack_in_eu.setenv(name, value)

    code = cli.main([*arguments, *flag])
    out, err = capsys.readouterr()

    assert code == 0, out + err
    assert "does not exist" not in err
    if arguments[0] == "status":
        assert [status["key"] for status in json.loads(out)] == [KEY]
    elif arguments[0] == "rejects":
        assert out == '{"number":2}\n'
    else:
        assert "moved 0 batches back to the work queue" in out


def test_a_region_without_the_stack_says_so_in_one_line(
    stack_in_eu, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["status", "--stack", STACK, "--region", "us-west-2"])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("error: AWS answered ")
