"""Checks on template.yaml that a deploy would only reveal too late (or never).

Two views of the template: the SAM source, read through `StackTemplate` (short tags in their
long form), and the CloudFormation SAM expands it to, produced offline by aws-sam-translator
(what `sam deploy` sends). IAM is checked on the expanded form, because SAM adds statements
and managed policies of its own for event sources and destinations.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

from segment_importer_local.template_config import Resolver, StackTemplate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

REGION = "us-east-1"
ACCOUNT = "123456789012"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": "segment-importer",
    "AWS::URLSuffix": "amazonaws.com",
}
QUEUES = (
    "WorkQueue",
    "DeadLetterQueue",
    "SplitterFailureQueue",
    "SplitterFailureDeadLetterQueue",
    "ContinuationQueue",
)
# Every function of the template (the parametrized checks below cover a function added later).
FUNCTIONS = tuple(StackTemplate.load(TEMPLATE_PATH).resources_of_type("AWS::Serverless::Function"))
TABLES = ("ImportsTable", "BatchesTable", "RateLimitTable")
RUNTIME = "python3.13"
DEFAULT_BUS = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"

# The AWS managed policies SAM attaches to the roles it generates, with their published
# documents (they are not in the template, so the effective permissions need them). Any
# other managed policy makes `test_roles_attach_only_known_managed_policies` fail.
_LOGS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
_SQS_POLL = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
_XRAY = [
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
]
MANAGED_POLICIES: dict[str, list[dict[str, Any]]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {"Effect": "Allow", "Action": _LOGS, "Resource": "*"}
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        {"Effect": "Allow", "Action": [*_SQS_POLL, *_LOGS], "Resource": "*"}
    ],
    # SAM attaches it whenever `Tracing` is set, even to PassThrough (the Tracing parameter's off); X-Ray
    # has no resource-level permissions, so "*" is the narrowest there is.
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [{"Effect": "Allow", "Action": _XRAY, "Resource": "*"}],
}
BASIC_EXECUTION, SQS_EXECUTION, XRAY_WRITE_ONLY = MANAGED_POLICIES

# A Segment write key is 32 random letters and digits: flag long unbroken alphanumeric runs
# in which digits occur in several places (names such as "Are404" have one digit run).
ALNUM_RUN = re.compile(r"[A-Za-z0-9]{20,}")
SECRET_WORDS = re.compile(r"secret|token|password|passwd|api_?key|write_?key", re.IGNORECASE)


class _OfflinePolicyLoader(ManagedPolicyLoader):
    """Never calls IAM: the template names no managed policy by its short name."""

    def __init__(self) -> None:
        super().__init__(iam_client=None)  # type: ignore[arg-type]

    def load(self) -> dict[str, str]:
        return {}


# ---- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> StackTemplate:
    return StackTemplate.load(TEMPLATE_PATH)


@pytest.fixture(scope="module")
def expanded(template: StackTemplate) -> dict[str, Any]:
    """The template after the SAM transform, without AWS credentials or network."""
    document = copy.deepcopy(template.document)
    # The translator wants S3 URIs where `sam build`/`package` would have put them (cfn-lint
    # did the same when it still ran the translator).
    for resource in document["Resources"].values():
        properties = resource.get("Properties", {})
        for name in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(name), str):
                properties[name] = f"s3://placeholder-bucket/{properties[name]}"
    with pytest.MonkeyPatch.context() as env:
        # Only a region is needed (for AWS::Partition); no profile or config file is read.
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.delenv("AWS_PROFILE", raising=False)
        env.setenv("AWS_CONFIG_FILE", os.devnull)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        return transform(document, {}, _OfflinePolicyLoader())


@pytest.fixture(scope="module")
def resolver(template: StackTemplate) -> Resolver:
    """Resolves intrinsics to concrete ARNs, with parameter defaults and placeholder ids."""
    resolver = Resolver(
        parameters=template.parameter_defaults(), pseudo=PSEUDO, conditions=template.document["Conditions"]
    )
    for queue in QUEUES:
        resolver.define(
            queue,
            f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{queue}",
            Arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
        )
    for table in TABLES:
        resolver.define(table, table, Arn=f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}")
    bucket = resolver.resolve(template.resource("ImportBucket")["Properties"]["BucketName"])
    resolver.define("ImportBucket", bucket, Arn=f"arn:aws:s3:::{bucket}")
    resolver.define(
        "ImportEventsRule", "import-ends", Arn=f"arn:aws:events:{REGION}:{ACCOUNT}:rule/import-ends"
    )
    resolver.define("Dashboard", "segment-importer-imports")
    return resolver


def table_arn(resolver: Resolver, table: str) -> str:
    return resolver.lookup(f"{table}.Arn")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def parameter_of(template: StackTemplate, value: Any) -> dict[str, Any]:
    """The declaration of the parameter `value` refers to; fails if it is not a `Ref` to one."""
    assert isinstance(value, dict), f"expected a Ref to a parameter, got the literal {value!r}"
    assert set(value) == {"Ref"}, f"expected a Ref to a parameter, got {value!r}"
    parameters = template.document.get("Parameters", {})
    assert value["Ref"] in parameters, f"{value['Ref']} is not a template parameter"
    return parameters[value["Ref"]]


def queue_arn(resolver: Resolver, queue: str) -> str:
    return resolver.lookup(f"{queue}.Arn")


def bucket_objects(resolver: Resolver, prefix: str) -> str:
    return f"{resolver.lookup('ImportBucket.Arn')}/{prefix}*"


def role_of(expanded: dict[str, Any], function_id: str) -> dict[str, Any]:
    """The properties of the IAM role SAM generated for a function."""
    role_arn = expanded["Resources"][function_id]["Properties"]["Role"]
    assert set(role_arn) == {"Fn::GetAtt"}, f"{function_id} no longer uses a role from this template"
    return expanded["Resources"][role_arn["Fn::GetAtt"][0]]["Properties"]


def inline_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in role.get("Policies", [])
        for statement in as_list(policy["PolicyDocument"]["Statement"])
    ]


def effective_statements(role: dict[str, Any], resolver: Resolver) -> list[dict[str, Any]]:
    """Inline and managed statements with resources resolved to strings."""
    managed = [statement for arn in role.get("ManagedPolicyArns", []) for statement in MANAGED_POLICIES[arn]]
    resolved = []
    for statement in [*inline_statements(role), *managed]:
        statement = resolver.resolve(statement)
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in statement:
                statement[key] = as_list(statement[key])
        resolved.append(statement)
    return resolved


def key_like(text: str) -> list[str]:
    """Substrings of `text` that could be a pasted write key or access key."""
    return [run for run in ALNUM_RUN.findall(text) if len(re.findall(r"\d+", run)) >= 2]


def _matches(action: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(action.lower(), pattern.lower()) for pattern in patterns)


def allowed_resources(action: str, statements: list[dict[str, Any]]) -> set[str]:
    """Where `action` is allowed: Allow statements, narrowed by unconditional Deny statements.

    A simplified IAM evaluation (no NotAction, conditions ignored on Allow, conditional Deny not
    applied), enough to show what a role can do at most.
    """
    allowed = {
        resource
        for statement in statements
        if statement["Effect"] == "Allow" and _matches(action, statement.get("Action", []))
        for resource in statement["Resource"]
    }
    for statement in statements:
        if statement["Effect"] != "Deny" or "Condition" in statement:
            continue
        if not _matches(action, statement.get("Action", [])):
            continue
        if "NotResource" in statement:
            keep = statement["NotResource"]
            narrowed = {r for r in allowed if r != "*" and _matches(r, keep)}
            allowed = narrowed | (set(keep) if "*" in allowed else set())
        else:
            allowed = {r for r in allowed if not _matches(r, statement["Resource"])}
    return allowed


def allowed_actions(statements: list[dict[str, Any]]) -> set[str]:
    return {
        action
        for statement in statements
        if statement["Effect"] == "Allow"
        for action in statement["Action"]
        if allowed_resources(action, statements)
    }


# ---- SQS wiring ---------------------------------------------------------------------------


def test_sender_sqs_event_reports_partial_failures_and_is_tunable(template: StackTemplate) -> None:
    events = template.function_events("SenderFunction", "SQS")
    assert len(events) == 1, f"expected one SQS event on the sender, found {sorted(events)}"
    (event,) = events.values()

    assert event["Queue"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    assert event.get("FunctionResponseTypes") == ["ReportBatchItemFailures"]
    batch_size = parameter_of(template, event.get("BatchSize"))
    # Over 10 needs a MaximumBatchingWindowInSeconds, which the template does not set.
    assert 1 <= batch_size["MinValue"] <= batch_size["MaxValue"] <= 10
    concurrency = parameter_of(template, event.get("ScalingConfig", {}).get("MaximumConcurrency"))
    assert 2 <= concurrency["MinValue"] <= concurrency["MaxValue"] <= 1000, "AWS accepts 2-1000"


def test_work_queue_redrives_to_the_dead_letter_queue(template: StackTemplate) -> None:
    redrive = template.resource("WorkQueue")["Properties"].get("RedrivePolicy")
    assert redrive, "WorkQueue has no RedrivePolicy: poison batches would be retried for 14 days"

    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    max_receive = parameter_of(template, redrive["maxReceiveCount"])
    assert max_receive["MinValue"] >= 1


def test_work_queue_visibility_timeout_is_six_times_the_sender_timeout(
    template: StackTemplate, resolver: Resolver
) -> None:
    """AWS's rule for SQS event sources; shorter lets a batch be delivered twice at once."""
    visibility = resolver.resolve(template.resource("WorkQueue")["Properties"].get("VisibilityTimeout", 30))
    sender_timeout = resolver.resolve(template.function_property("SenderFunction", "Timeout") or 3)

    assert int(visibility) >= 6 * int(sender_timeout), (visibility, sender_timeout)


def test_queues_are_encrypted_at_rest(template: StackTemplate) -> None:
    queues = template.resources_of_type("AWS::SQS::Queue")
    assert set(QUEUES) <= set(queues)
    for name, queue in queues.items():
        properties = queue.get("Properties", {})
        assert properties.get("SqsManagedSseEnabled") is True or properties.get("KmsMasterKeyId"), name


# ---- the bucket ----------------------------------------------------------------------------


def test_bucket_is_encrypted_private_and_owner_enforced(template: StackTemplate) -> None:
    properties = template.resource("ImportBucket")["Properties"]

    rules = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    algorithms = {rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for rule in rules}
    assert algorithms
    assert algorithms <= {"AES256", "aws:kms", "aws:kms:dsse"}
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    ownership = [rule["ObjectOwnership"] for rule in properties["OwnershipControls"]["Rules"]]
    assert ownership == ["BucketOwnerEnforced"]


def test_bucket_policy_denies_plain_http(template: StackTemplate) -> None:
    policies = [
        policy["Properties"]
        for policy in template.resources_of_type("AWS::S3::BucketPolicy").values()
        if policy["Properties"]["Bucket"] == {"Ref": "ImportBucket"}
    ]
    assert len(policies) == 1, "expected one bucket policy on ImportBucket"
    statements = as_list(policies[0]["PolicyDocument"]["Statement"])

    deny_http = [
        statement
        for statement in statements
        if statement["Effect"] == "Deny"
        and statement.get("Principal") in ("*", {"AWS": "*"})
        and as_list(statement["Action"]) == ["s3:*"]
        and str(statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")).lower() == "false"
    ]
    assert len(deny_http) == 1, statements
    assert {"Fn::GetAtt": ["ImportBucket", "Arn"]} in as_list(deny_http[0]["Resource"])
    assert {"Fn::Sub": "${ImportBucket.Arn}/*"} in as_list(deny_http[0]["Resource"])


@pytest.mark.parametrize("prefix_variable", ["REJECTS_PREFIX", "REPORTS_PREFIX", "IMPORTS_PREFIX"])
def test_bucket_expires_rejects_and_reports(template: StackTemplate, prefix_variable: str) -> None:
    """Rejects and dropped exports hold personal data and reports pile up: each prefix needs an
    expiry rule (test_every_prefix_the_functions_use_expires covers prefixes added later)."""
    prefix = template.document["Globals"]["Function"]["Environment"]["Variables"][prefix_variable]
    rules = template.resource("ImportBucket")["Properties"]["LifecycleConfiguration"]["Rules"]

    matching = [
        rule
        for rule in rules
        if rule.get("Status") == "Enabled"
        and (rule.get("Prefix") or rule.get("Filter", {}).get("Prefix")) == prefix
        and "ExpirationInDays" in rule
    ]
    assert len(matching) == 1, f"no single enabled expiry rule for {prefix}"
    days = parameter_of(template, matching[0]["ExpirationInDays"])
    assert days["MinValue"] >= 1


# ---- the splitter's trigger ---------------------------------------------------------------


def test_splitter_async_failures_go_to_a_queue(template: StackTemplate) -> None:
    config = template.resource("SplitterFunction")["Properties"].get("EventInvokeConfig")
    assert config, "S3 invokes the splitter asynchronously: without a destination failures vanish"

    retries = parameter_of(template, config["MaximumRetryAttempts"])
    assert 0 <= retries["MinValue"] <= retries["Default"] <= retries["MaxValue"] <= 2
    # The splitter knows which run is the last (it then marks the import FAILED) from the same value.
    environment = template.function_environment("SplitterFunction")
    assert environment["SPLIT_ASYNC_RETRIES"] == config["MaximumRetryAttempts"]
    on_failure = config["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    assert on_failure["Destination"] == {"Fn::GetAtt": ["SplitterFailureQueue", "Arn"]}


def test_the_splitter_knows_the_continuation_queues_receive_count(template: StackTemplate) -> None:
    """A continued part that fails on its last receive marks the import FAILED: the splitter
    reads the count the queue's redrive policy uses, from the same parameter."""
    redrive = template.resource("ContinuationQueue")["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["SplitterFailureQueue", "Arn"]}
    environment = template.function_environment("SplitterFunction")
    assert environment["CONTINUATION_MAX_RECEIVE_COUNT"] == redrive["maxReceiveCount"]
    assert parameter_of(template, redrive["maxReceiveCount"])["MinValue"] >= 1


# ---- the splitter failure queue and the function that consumes it ------------------------


def test_split_failures_function_consumes_the_splitter_failure_queue(template: StackTemplate) -> None:
    """Without a consumer, a split killed on its last run leaves its import SPLITTING forever."""
    events = template.function_events("SplitFailuresFunction", "SQS")
    assert len(events) == 1, f"expected one SQS event on the split failures function, found {sorted(events)}"
    (event,) = events.values()
    assert event["Queue"] == {"Fn::GetAtt": ["SplitterFailureQueue", "Arn"]}
    assert event.get("FunctionResponseTypes") == ["ReportBatchItemFailures"]
    assert 1 <= event["BatchSize"] <= 10  # over 10 needs a batching window
    assert 2 <= event["ScalingConfig"]["MaximumConcurrency"] <= 1000, "AWS accepts 2-1000"
    # Both shapes of message the queue receives: the splitter's on-failure destination and the
    # continuation queue's redrive.
    config = template.resource("SplitterFunction")["Properties"]["EventInvokeConfig"]
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == event["Queue"]
    redrive = template.resource("ContinuationQueue")["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == event["Queue"]


def test_split_failures_function_knows_the_splitters_runs(template: StackTemplate) -> None:
    """A stopped split's error says how many runs it had: from the parameters that set them."""
    environment = template.function_environment("SplitFailuresFunction")
    config = template.resource("SplitterFunction")["Properties"]["EventInvokeConfig"]
    redrive = template.resource("ContinuationQueue")["Properties"]["RedrivePolicy"]
    assert environment["SPLIT_ASYNC_RETRIES"] == config["MaximumRetryAttempts"]
    assert environment["CONTINUATION_MAX_RECEIVE_COUNT"] == redrive["maxReceiveCount"]
    assert environment["IMPORTS_TABLE"] == {"Ref": "ImportsTable"}
    assert (
        environment["REPORTS_PREFIX"] == template.function_environment("SplitterFunction")["REPORTS_PREFIX"]
    )


def test_splitter_failure_queue_redrives_to_a_dead_letter_queue_of_its_own(
    template: StackTemplate, resolver: Resolver
) -> None:
    """What the function cannot resolve moves on after maxReceiveCount receives, to a queue kept
    14 days, encrypted, with an alarm (test_a_message_in_a_failure_queue_raises_an_alarm)."""
    properties = template.resource("SplitterFailureQueue")["Properties"]
    redrive = properties["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["SplitterFailureDeadLetterQueue", "Arn"]}
    dead_letters = template.resource("SplitterFailureDeadLetterQueue")["Properties"]
    assert dead_letters["SqsManagedSseEnabled"] is True
    assert dead_letters["MessageRetentionPeriod"] == 14 * 86_400
    assert "RedrivePolicy" not in dead_letters
    visibility = resolver.resolve(properties["VisibilityTimeout"])
    timeout = resolver.resolve(template.function_property("SplitFailuresFunction", "Timeout"))
    assert int(visibility) >= 6 * int(timeout), (visibility, timeout)


def test_a_continuation_task_is_received_by_the_split_failures_function_before_its_dead_letter_queue(
    template: StackTemplate,
) -> None:
    """SQS keeps a message's receive count when it moves it to a dead-letter queue: a
    continuation task arrives in the failure queue with up to ContinuationMaxReceiveCount
    receives already, and must still be received there (several times, for a retry) before
    the failure queue's own maxReceiveCount moves it on unseen."""
    continuation = parameter_of(
        template, template.resource("ContinuationQueue")["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    )
    failure_receives = template.resource("SplitterFailureQueue")["Properties"]["RedrivePolicy"][
        "maxReceiveCount"
    ]
    assert isinstance(failure_receives, int), "a literal: a parameter could be set below the continuation's"
    assert "MaxValue" in continuation, (
        "ContinuationMaxReceiveCount needs a MaxValue below the failure queue's"
    )
    assert continuation["MinValue"] <= continuation["Default"] <= continuation["MaxValue"]
    assert failure_receives - continuation["MaxValue"] >= 3, (continuation["MaxValue"], failure_receives)


def test_splitter_failure_alarm_is_on_the_imports_the_split_failures_function_fails(
    template: StackTemplate,
) -> None:
    """The failure queue is consumed, so its depth says nothing: the alarm counts SplitsKilled,
    the metric the split failures function emits (its namespace, its service dimension)."""
    from segment_importer.metrics import NAMESPACE

    properties = template.resource("SplitterFailureAlarm")["Properties"]
    service = template.function_environment("SplitFailuresFunction")["POWERTOOLS_SERVICE_NAME"]
    assert (properties["Namespace"], properties["MetricName"]) == (NAMESPACE, "SplitsKilled")
    assert properties["Dimensions"] == [{"Name": "service", "Value": service}]
    assert (properties["Statistic"], properties["Threshold"]) == ("Sum", 0)
    assert properties["ComparisonOperator"] == "GreaterThanThreshold"
    assert properties["TreatMissingData"] == "notBreaching"
    assert properties["AlarmActions"] == {
        "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
    }
    source = (ROOT / "layers/segment_importer/segment_importer/split/failures.py").read_text()
    assert '"SplitsKilled"' in source


def test_s3_event_filters_on_the_imports_prefix(template: StackTemplate) -> None:
    events = template.function_events("SplitterFunction", "S3")
    assert len(events) == 1, f"expected one S3 event on the splitter, found {sorted(events)}"
    (event,) = events.values()

    assert event["Bucket"] == {"Ref": "ImportBucket"}
    assert all(name.startswith("s3:ObjectCreated:") for name in as_list(event["Events"]))
    rules = {rule["Name"].lower(): rule["Value"] for rule in event["Filter"]["S3Key"]["Rules"]}
    imports_prefix = template.function_environment("SplitterFunction")["IMPORTS_PREFIX"]
    # reports/ and rejects/ are written to the same bucket: without the filter the splitter
    # would be triggered by its own output.
    assert rules.get("prefix") == imports_prefix == "imports/"


# ---- IAM, on the expanded template --------------------------------------------------------


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_inline_statements_name_actions_and_resources(expanded: dict[str, Any], function_id: str) -> None:
    statements = inline_statements(role_of(expanded, function_id))
    assert statements

    for statement in statements:
        assert "NotAction" not in statement, statement
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"wildcard action {action!r} in {statement}"
        if statement["Effect"] == "Allow":
            assert "NotResource" not in statement, statement
            assert "*" not in as_list(statement["Resource"]), f"Resource '*' in {statement}"


def test_roles_attach_only_known_managed_policies(expanded: dict[str, Any]) -> None:
    """The managed policies are broad (Resource '*'); each one must be accounted for here."""
    # SAM adds the SQS one for each SQS event (the sender's work queue, the splitter's
    # continuation queue, the split failures function's failure queue); the permission tests
    # check each is narrowed to its queue.
    assert set(FUNCTIONS) == {"SplitterFunction", "SenderFunction", "SplitFailuresFunction"}
    for function_id in FUNCTIONS:
        assert set(role_of(expanded, function_id).get("ManagedPolicyArns", [])) == {
            BASIC_EXECUTION,
            SQS_EXECUTION,
            XRAY_WRITE_ONLY,
        }, function_id


def test_splitter_permissions(template: StackTemplate, expanded: dict[str, Any], resolver: Resolver) -> None:
    role = role_of(expanded, "SplitterFunction")
    statements = effective_statements(role, resolver)

    assert allowed_actions(statements) == {
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
        "sqs:SendMessage",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "ssm:GetParameter",
        "events:PutEvents",
        *_SQS_POLL,
        *_LOGS,
        *_XRAY,
    }
    assert allowed_resources("events:PutEvents", statements) == {DEFAULT_BUS}
    # The write-key pre-flight reads the stack's key and a job's own (only under its prefix);
    # shaping's `hash.keyParameter` only under its prefix.
    parameter_name = template.parameter_defaults()["WriteKeyParameterName"]
    hash_keys = template.parameter_defaults()["HashKeyParameterPath"]
    job_keys = template.parameter_defaults()["JobKeyParameterPath"]
    assert allowed_resources("ssm:GetParameter", statements) == {
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{parameter_name}",
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{job_keys}*",
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{hash_keys}*",
    }
    imports, batches = table_arn(resolver, "ImportsTable"), table_arn(resolver, "BatchesTable")
    for action in ("dynamodb:PutItem", "dynamodb:GetItem"):
        assert allowed_resources(action, statements) == {imports}, action
    # Byte ranges keep their own items in the batches table (see ledger.py).
    assert allowed_resources("dynamodb:UpdateItem", statements) == {imports, batches}
    assert allowed_resources("dynamodb:Query", statements) == {batches}
    for action in _SQS_POLL:
        assert allowed_resources(action, statements) == {queue_arn(resolver, "ContinuationQueue")}, (
            f"{action} is allowed beyond the continuation queue"
        )
    # imports/: the exports and job files; reports/: an archive's report, to keep its members.
    assert allowed_resources("s3:GetObject", statements) == {
        bucket_objects(resolver, "imports/"),
        bucket_objects(resolver, "reports/"),
    }
    assert allowed_resources("s3:PutObject", statements) == {
        bucket_objects(resolver, "reports/"),
        bucket_objects(resolver, "rejects/"),
    }
    (listing,) = [s for s in statements if "s3:ListBucket" in s["Action"]]
    assert listing["Resource"] == [resolver.lookup("ImportBucket.Arn")]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "imports/*"}}
    # The template's own statements queue batches only; SAM adds SendMessage on the failure
    # queue for the EventInvokeConfig destination (Lambda sends it with the function's role).
    declared = [
        resolver.resolve(statement)
        for policy in template.resource("SplitterFunction")["Properties"]["Policies"]
        for statement in as_list(policy["Statement"])
        if "sqs:SendMessage" in as_list(statement["Action"])
    ]
    assert [as_list(statement["Resource"]) for statement in declared] == [
        [queue_arn(resolver, "WorkQueue"), queue_arn(resolver, "ContinuationQueue")]
    ]
    assert allowed_resources("sqs:SendMessage", statements) == {
        queue_arn(resolver, "WorkQueue"),
        queue_arn(resolver, "ContinuationQueue"),
        queue_arn(resolver, "SplitterFailureQueue"),
    }


def test_sender_permissions(template: StackTemplate, expanded: dict[str, Any], resolver: Resolver) -> None:
    statements = effective_statements(role_of(expanded, "SenderFunction"), resolver)
    parameter_name = template.parameter_defaults()["WriteKeyParameterName"]

    assert allowed_actions(statements) == {
        "ssm:GetParameter",
        "s3:GetObject",
        "s3:PutObject",
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "events:PutEvents",
        "sqs:SendMessage",
        *_SQS_POLL,
        *_LOGS,
        *_XRAY,
    }
    # A batch the rate limit turned away goes back on the work queue, and nowhere else.
    assert allowed_resources("sqs:SendMessage", statements) == {queue_arn(resolver, "WorkQueue")}
    # Only an archive's report, to keep its members' summaries when the import completes.
    assert allowed_resources("s3:GetObject", statements) == {bucket_objects(resolver, "reports/")}
    assert allowed_resources("events:PutEvents", statements) == {DEFAULT_BUS}
    # The stack's key, and the keys jobs name: only under JobKeyParameterPath.
    job_keys = template.parameter_defaults()["JobKeyParameterPath"]
    assert allowed_resources("ssm:GetParameter", statements) == {
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{parameter_name}",
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{job_keys}*",
    }
    assert allowed_resources("dynamodb:Query", statements) == {table_arn(resolver, "BatchesTable")}
    # rejects/: messages Segment refused; reports/: the final report when an import completes.
    assert allowed_resources("s3:PutObject", statements) == {
        bucket_objects(resolver, "rejects/"),
        bucket_objects(resolver, "reports/"),
    }
    ledger = {table_arn(resolver, "ImportsTable"), table_arn(resolver, "BatchesTable")}
    assert allowed_resources("dynamodb:GetItem", statements) == ledger
    # MaxEventsPerSecond: one conditional update per batch on the shared rate's item, no read.
    assert allowed_resources("dynamodb:UpdateItem", statements) == {
        *ledger,
        table_arn(resolver, "RateLimitTable"),
    }
    for action in _SQS_POLL:
        assert allowed_resources(action, statements) == {queue_arn(resolver, "WorkQueue")}, (
            f"{action} is allowed beyond the work queue"
        )


def test_split_failures_permissions(expanded: dict[str, Any], resolver: Resolver) -> None:
    """Least privilege: conditional updates of imports it fails, the byte ranges' totals, the
    reports it rewrites, the import's end event, and polling its own queue only."""
    statements = effective_statements(role_of(expanded, "SplitFailuresFunction"), resolver)

    assert allowed_actions(statements) == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "s3:GetObject",
        "s3:PutObject",
        "events:PutEvents",
        *_SQS_POLL,
        *_LOGS,
        *_XRAY,
    }
    imports, batches = table_arn(resolver, "ImportsTable"), table_arn(resolver, "BatchesTable")
    assert allowed_resources("dynamodb:GetItem", statements) == {imports}
    assert allowed_resources("dynamodb:UpdateItem", statements) == {imports}
    assert allowed_resources("dynamodb:Query", statements) == {batches}
    assert allowed_resources("s3:GetObject", statements) == {bucket_objects(resolver, "reports/")}
    assert allowed_resources("s3:PutObject", statements) == {bucket_objects(resolver, "reports/")}
    assert allowed_resources("events:PutEvents", statements) == {DEFAULT_BUS}
    for action in _SQS_POLL:
        assert allowed_resources(action, statements) == {queue_arn(resolver, "SplitterFailureQueue")}, (
            f"{action} is allowed beyond the splitter failure queue"
        )
    assert not allowed_resources("sqs:SendMessage", statements)


@pytest.mark.parametrize(
    ("prefix", "allowed"),
    [
        ("/segment-importer/write-keys/", True),
        ("/team-a/segment/", True),
        ("/", False),  # every parameter in the account
        ("//", False),
        ("/segment-importer/write-keys", False),  # `...write-keys*` would match `write-keys-old`
        ("/segment-importer/*/", False),
        ("segment-importer/write-keys/", False),
    ],
)
def test_the_job_key_path_is_a_real_path(template: StackTemplate, prefix: str, allowed: bool) -> None:
    assert (template.parameter_problem("JobKeyParameterPath", prefix) is None) is allowed


@pytest.mark.parametrize(
    ("hosts", "allowed"),
    [
        ("https://api.segment.io,https://events.eu1.segmentapis.com", True),
        ("https://events.eu1.segmentapis.com", True),
        ("http://api.segment.io", False),
        ("https://api.segment.io/v1", False),
        ("https://api.segment.io, https://events.eu1.segmentapis.com", False),
        ("", False),
    ],
)
def test_job_hosts_are_https_hosts(template: StackTemplate, hosts: str, allowed: bool) -> None:
    assert (template.parameter_problem("JobSegmentHosts", hosts) is None) is allowed


def test_per_job_write_keys_are_scoped_by_one_prefix(
    template: StackTemplate, expanded: dict[str, Any], resolver: Resolver
) -> None:
    """Both functions read job-named keys only under the prefix their code enforces (the same
    parameter), read no secret and decrypt nothing themselves (SSM decrypts SecureStrings)."""
    defaults = template.parameter_defaults()
    prefix = defaults["JobKeyParameterPath"]
    assert prefix.endswith("/")
    assert prefix != "/"
    # A job-named key is never the HMAC key of hashed fields, nor the stack's own by accident.
    assert not defaults["HashKeyParameterPath"].startswith(prefix)
    assert not prefix.startswith(defaults["HashKeyParameterPath"])
    assert not defaults["WriteKeyParameterName"].startswith(prefix)
    for function in ("SplitterFunction", "SenderFunction"):
        environment = template.function_environment(function)
        assert environment["JOB_KEY_PARAMETER_PATH"] == {"Ref": "JobKeyParameterPath"}
        assert environment["JOB_SEGMENT_HOSTS"] == {"Ref": "JobSegmentHosts"}
        assert environment["SEGMENT_HOST"] == {"Ref": "SegmentHost"}
        statements = effective_statements(role_of(expanded, function), resolver)
        under_prefix = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{prefix}"
        readable = allowed_resources("ssm:GetParameter", statements)
        assert {res for res in readable if res.startswith(under_prefix)} == {under_prefix + "*"}
        # No other wildcard could reach a job-named key (e.g. a broader path).
        wildcards = {resource.removesuffix("*") for resource in readable if resource.endswith("*")}
        assert [w for w in wildcards if under_prefix.startswith(w)] == [under_prefix], function
        actions = allowed_actions(statements)
        assert not {action for action in actions if action.startswith(("kms:", "secretsmanager:"))}, function


def test_expanded_event_source_mappings(expanded: dict[str, Any]) -> None:
    mappings = {
        r["Properties"]["FunctionName"]["Ref"]: r["Properties"]
        for r in expanded["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    assert set(mappings) == {"SenderFunction", "SplitterFunction", "SplitFailuresFunction"}
    sender = mappings["SenderFunction"]
    assert sender["EventSourceArn"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    assert sender["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    splitter = mappings["SplitterFunction"]
    assert splitter["EventSourceArn"] == {"Fn::GetAtt": ["ContinuationQueue", "Arn"]}
    assert splitter["BatchSize"] == 1  # one checkpoint, one part, per invocation
    failures = mappings["SplitFailuresFunction"]
    assert failures["EventSourceArn"] == {"Fn::GetAtt": ["SplitterFailureQueue", "Arn"]}
    assert failures["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_continued_splits_are_allowed_past_loop_detection(template: StackTemplate) -> None:
    properties = template.resource("SplitterFunction")["Properties"]
    assert properties["RecursiveLoop"] == "Allow"
    continuation = template.resource("ContinuationQueue")["Properties"]
    assert continuation["VisibilityTimeout"] >= 6 * template.function_property("SplitterFunction", "Timeout")


# ---- secrets, runtime, lint ----------------------------------------------------------------


def test_no_secret_in_parameters_or_environment(template: StackTemplate, resolver: Resolver) -> None:
    """The write key lives in SSM; the template only names the parameter that holds it."""
    found = key_like(TEMPLATE_PATH.read_text(encoding="utf-8"))
    assert not found, f"template text contains key-like strings: {found}"

    for name, spec in template.document["Parameters"].items():
        if SECRET_WORDS.search(name) and not name.endswith(("ParameterName", "SecretName", "Arn")):
            assert spec.get("NoEcho") is True, f"{name} looks like a secret but is not NoEcho"
            assert "Default" not in spec, f"{name} looks like a secret but has a Default"

    for function_id in template.resources_of_type("AWS::Serverless::Function"):
        environment = template.function_environment(function_id)
        for variable, value in environment.items():
            if SECRET_WORDS.search(variable):
                assert variable.endswith("_PARAMETER"), f"{function_id}: {variable} looks like a secret"
            resolved = str(resolver.resolve(value))
            assert not key_like(resolved), f"{function_id}: {variable}={resolved!r}"
    write_key = parameter_of(template, template.function_environment("SenderFunction")["WRITE_KEY_PARAMETER"])
    assert str(write_key["Default"]).startswith("/"), "WRITE_KEY_PARAMETER must hold an SSM parameter name"
    assert str(write_key.get("AllowedPattern", "")).startswith("^/")


def test_functions_and_layer_target_python_3_13(template: StackTemplate) -> None:
    functions = template.resources_of_type("AWS::Serverless::Function")
    assert set(functions) == {"SplitterFunction", "SenderFunction", "SplitFailuresFunction"}
    for function_id in functions:
        assert template.function_property(function_id, "Runtime") == RUNTIME, function_id
        assert {"Ref": "DomainLayer"} in template.function_property(function_id, "Layers"), function_id

    layer = template.resource("DomainLayer")
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert RUNTIME in layer["Properties"]["CompatibleRuntimes"]
    architectures = template.function_property("SplitterFunction", "Architectures")
    assert architectures == ["arm64"], "Graviton is the default: about 20% less per GB-second"
    assert [layer["Metadata"]["BuildArchitecture"]] == architectures
    assert layer["Properties"]["CompatibleArchitectures"] == architectures


def test_the_layer_makefile_builds_for_the_functions_architecture_and_runtime(
    template: StackTemplate,
) -> None:
    """The layer's Makefile installs wheels for one platform: it must be the template's."""
    makefile = (ROOT / "layers" / "segment_importer" / "Makefile").read_text(encoding="utf-8")
    platform = re.search(r"^LAYER_PLATFORM \?= (\S+)$", makefile, re.MULTILINE)
    version = re.search(r"^LAYER_PYTHON_VERSION \?= (\S+)$", makefile, re.MULTILINE)
    assert platform, "LAYER_PLATFORM not found in the layer's Makefile"
    assert version, "LAYER_PYTHON_VERSION not found in the layer's Makefile"
    wanted = {"arm64": "aarch64", "x86_64": "x86_64"}[
        template.function_property("SplitterFunction", "Architectures")[0]
    ]
    assert platform.group(1) == wanted
    assert f"python{version.group(1)}" == RUNTIME


def test_the_parquet_layer_is_the_splitters_only_when_enabled(
    template: StackTemplate, expanded: dict[str, Any]
) -> None:
    """pyarrow (~100 MB) is a layer of its own, chosen by EnableParquet; the sender never has it."""
    parameter = template.document["Parameters"]["EnableParquet"]
    assert parameter["Default"] == "false"
    assert sorted(parameter["AllowedValues"]) == ["false", "true"]
    assert template.document["Conditions"]["ParquetEnabled"] == {
        "Fn::Equals": [{"Ref": "EnableParquet"}, "true"]
    }
    layer = template.resource("ParquetLayer")
    assert layer["Condition"] == "ParquetEnabled"
    assert layer["Properties"]["ContentUri"] == "layers/parquet/"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert RUNTIME in layer["Properties"]["CompatibleRuntimes"]
    choice = {"Fn::If": ["ParquetEnabled", {"Ref": "ParquetLayer"}, {"Ref": "AWS::NoValue"}]}
    assert template.function_property("SplitterFunction", "Layers") == [{"Ref": "DomainLayer"}, choice]
    assert template.function_property("SenderFunction", "Layers") == [{"Ref": "DomainLayer"}]
    functions = lambda_functions(expanded)
    splitter = next(props for name, props in functions.items() if name.startswith("SplitterFunction"))
    assert splitter["Layers"] == [
        {"Ref": _layer_version(expanded, "DomainLayer")},
        _resolved(choice, expanded),
    ]
    requirements = (ROOT / "layers" / "parquet" / "requirements.txt").read_text()
    assert "pyarrow" in requirements
    assert "pyarrow" not in (ROOT / "layers" / "segment_importer" / "requirements.txt").read_text()


def _layer_version(expanded: dict[str, Any], layer: str) -> str:
    """The logical id SAM gives a layer's AWS::Lambda::LayerVersion (the name plus a hash)."""
    return next(name for name in expanded["Resources"] if name.startswith(layer) and name != layer)


def _resolved(choice: dict[str, Any], expanded: dict[str, Any]) -> dict[str, Any]:
    condition, _, otherwise = choice["Fn::If"]
    return {"Fn::If": [condition, {"Ref": _layer_version(expanded, "ParquetLayer")}, otherwise]}


def _cfn_lint() -> str:
    beside = Path(sys.executable).with_name("cfn-lint")
    found = str(beside) if beside.exists() else shutil.which("cfn-lint")
    assert found, "cfn-lint is a dev dependency: pip install -e '.[dev]'"
    return found


def test_cfn_lint_passes() -> None:
    result = subprocess.run(
        [_cfn_lint(), str(TEMPLATE_PATH)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- security: logs, retention, outputs, environment, suppressions -------------------------

# CloudWatch Logs' valid RetentionInDays values.
LOG_RETENTION_DAYS = {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653}  # fmt: skip
DYNAMIC_SECRET = re.compile(r"\{\{resolve:(ssm-secure|secretsmanager):", re.IGNORECASE)
CHECK_ID = re.compile(r"CKV2?_AWS_\d+")


def lambda_functions(expanded: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The AWS::Lambda::Function resources SAM generates (Globals merged in)."""
    return {
        name: resource.get("Properties", {})
        for name, resource in expanded["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_each_function_logs_to_a_group_with_retention(
    template: StackTemplate, expanded: dict[str, Any], function_id: str
) -> None:
    """Without its own group, Lambda creates /aws/lambda/<name> on first use and keeps the logs
    forever. The group must be the function's default one (or the one LoggingConfig names)."""
    groups = {
        name: resource["Properties"]
        for name, resource in template.resources_of_type("AWS::Logs::LogGroup").items()
        if resource["Properties"].get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{function_id}}}"}
    }
    assert len(groups) == 1, f"{function_id} has no log group of its own: {sorted(groups)}"
    (group_id, group), *_ = groups.items()
    retention = parameter_of(template, group.get("RetentionInDays"))
    assert set(retention["AllowedValues"]) <= LOG_RETENTION_DAYS
    assert int(retention["Default"]) in LOG_RETENTION_DAYS
    logging_config = expanded["Resources"][function_id]["Properties"].get("LoggingConfig", {})
    assert logging_config.get("LogGroup", {"Ref": group_id}) == {"Ref": group_id}, logging_config


def test_every_prefix_the_functions_use_expires(template: StackTemplate) -> None:
    """Each *_PREFIX the functions write to or read from has an enabled expiry rule, and the
    bucket is not versioned (on a versioned bucket, expiry only hides personal data behind a
    delete marker)."""
    variables = dict(template.document["Globals"]["Function"]["Environment"]["Variables"])
    for function_id in template.resources_of_type("AWS::Serverless::Function"):
        variables.update(template.function_environment(function_id))
    prefixes = {value for name, value in variables.items() if name.endswith("_PREFIX")}
    assert {"imports/", "reports/", "rejects/"} <= prefixes

    properties = template.resource("ImportBucket")["Properties"]
    rules = properties["LifecycleConfiguration"]["Rules"]
    rules = [rule for rule in rules if rule.get("Status") == "Enabled"]
    expiring = {
        rule.get("Prefix") or rule.get("Filter", {}).get("Prefix")
        for rule in rules
        if "ExpirationInDays" in rule or "ExpirationDate" in rule
    }
    assert prefixes <= expiring, f"no expiry rule for {sorted(prefixes - expiring)}"
    assert any("AbortIncompleteMultipartUpload" in rule for rule in rules), "abandoned uploads never expire"
    versioning = properties.get("VersioningConfiguration", {}).get("Status", "Suspended")
    noncurrent_expire = any("NoncurrentVersionExpiration" in rule for rule in rules)
    assert versioning != "Enabled" or noncurrent_expire, "versioned: expired objects stay as old versions"


def test_tables_are_encrypted_at_rest(template: StackTemplate) -> None:
    tables = template.resources_of_type("AWS::DynamoDB::Table")
    assert tables, "no ledger tables: update this test"
    for name, table in tables.items():
        assert table["Properties"].get("SSESpecification", {}).get("SSEEnabled") is True, name


def test_outputs_hold_nothing_secret(template: StackTemplate, resolver: Resolver) -> None:
    """Stack outputs are readable by anyone with cloudformation:DescribeStacks."""
    parameters = template.document.get("Parameters", {})
    no_echo = {name for name, spec in parameters.items() if spec.get("NoEcho")}
    for name, output in template.document.get("Outputs", {}).items():
        text = json.dumps(output)
        assert not SECRET_WORDS.search(name), f"output {name} is named like a secret"
        assert not DYNAMIC_SECRET.search(text), f"output {name} resolves a secret"
        for referenced in [*no_echo, "WriteKeyParameterName"]:
            assert f'"Ref": "{referenced}"' not in text, f"output {name} exposes {referenced}"
            assert f"${{{referenced}}}" not in text, f"output {name} exposes {referenced}"
        assert not key_like(str(resolver.resolve(output["Value"]))), f"output {name} looks like a key"


def test_no_environment_variable_can_hold_the_write_key(expanded: dict[str, Any]) -> None:
    """On the deployed functions (Globals merged): the write key's parameter is named, never
    resolved into the configuration, which anyone with lambda:GetFunctionConfiguration reads."""
    parameters = expanded.get("Parameters", {})
    ssm_typed = {name for name, spec in parameters.items() if str(spec.get("Type")).startswith("AWS::SSM")}
    for function_id, properties in lambda_functions(expanded).items():
        variables = properties.get("Environment", {}).get("Variables", {})
        for variable, value in variables.items():
            text = json.dumps(value)
            assert not DYNAMIC_SECRET.search(text), f"{function_id}: {variable} resolves a secret"
            assert not any(f'"Ref": "{name}"' in text for name in ssm_typed), (
                f"{function_id}: {variable} takes an SSM parameter's value"
            )
            if "WriteKeyParameterName" in text:
                assert (variable, value) == ("WRITE_KEY_PARAMETER", {"Ref": "WriteKeyParameterName"}), (
                    f"{function_id}: {variable} = {value}"
                )
            if re.search(r"WRITE_?KEY", variable, re.IGNORECASE):
                assert variable == "WRITE_KEY_PARAMETER", f"{function_id}: {variable}"


def test_powertools_never_logs_whole_events(expanded: dict[str, Any]) -> None:
    """POWERTOOLS_LOGGER_LOG_EVENT would log every S3 event and every SQS batch (personal data)."""
    for function_id, properties in lambda_functions(expanded).items():
        variables = properties.get("Environment", {}).get("Variables", {})
        for variable in ("POWERTOOLS_LOGGER_LOG_EVENT", "POWERTOOLS_DEBUG"):
            assert str(variables.get(variable, "false")).lower() == "false", f"{function_id}: {variable}"


def test_every_checkov_suppression_carries_a_one_line_justification(template: StackTemplate) -> None:
    """`Metadata: checkov: skip: [{id, comment}]` on a resource; cfn-lint's ignore_checks need a
    `Metadata: cfn-lint: comments: {CHECK: why}` entry each (cfn-lint has no field of its own)."""
    resources = {"(template)": template.document, **template.document["Resources"]}
    for name, resource in resources.items():
        metadata = resource.get("Metadata", {})
        skips = metadata.get("checkov", {}).get("skip", [])
        ids = [skip.get("id", "") for skip in skips]
        assert len(ids) == len(set(ids)), f"{name}: a check is skipped twice"
        for skip in skips:
            assert CHECK_ID.fullmatch(skip.get("id", "")), f"{name}: {skip}"
            comment = str(skip.get("comment", "")).strip()
            assert len(comment) >= 20, f"{name}: {skip['id']} needs a reason"
            assert "\n" not in comment, f"{name}: {skip['id']}: one line"
        lint = metadata.get("cfn-lint", {})
        for check in lint.get("config", {}).get("ignore_checks", []):
            reason = str(lint.get("comments", {}).get(check, "")).strip()
            assert len(reason) >= 20, f"{name}: cfn-lint {check} needs a reason"
            assert "\n" not in reason, f"{name}: cfn-lint {check}: one line"


@pytest.mark.parametrize(
    ("alarm", "queue"),
    [
        ("DeadLetterQueueAlarm", "DeadLetterQueue"),
        ("SplitterFailureDeadLetterAlarm", "SplitterFailureDeadLetterQueue"),
    ],
)
def test_a_message_in_a_failure_queue_raises_an_alarm(
    template: StackTemplate, alarm: str, queue: str
) -> None:
    """Dead-lettered batches, and splitter failures the split failures function could not
    resolve (not readable, or no such import)."""
    properties = template.resource(alarm)["Properties"]
    assert properties["Namespace"] == "AWS/SQS"
    assert properties["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert properties["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    assert (properties["Threshold"], properties["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert properties["AlarmActions"] == {
        "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
    }


def test_samconfig_overrides_name_template_parameters_with_values_the_template_allows(
    template: StackTemplate,
) -> None:
    import tomllib

    with (ROOT / "samconfig.toml").open("rb") as stream:
        deploy = tomllib.load(stream)["default"]["deploy"]["parameters"]
    parameters = template.document["Parameters"]
    assert deploy["parameter_overrides"], "samconfig.toml should name the settings deployments change"
    for override in deploy["parameter_overrides"]:
        name, value = override.split("=", 1)
        assert name in parameters, f"samconfig.toml overrides {name}, which template.yaml does not declare"
        spec = parameters[name]
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"].strip("^$"), value), override
        if "AllowedValues" in spec:
            assert value in [str(v) for v in spec["AllowedValues"]], override
    assert "project=" in deploy["tags"]


def test_preflight_host_is_an_https_url_or_empty(template: StackTemplate) -> None:
    pattern = template.document["Parameters"]["PreflightHost"]["AllowedPattern"]
    for good in ("https://cdn.segment.com", ""):
        assert re.match(pattern, good), good
    for bad in ("http://cdn.segment.com", "cdn.segment.com", "https://cdn.segment.com/path"):
        assert not re.match(pattern, bad), bad
