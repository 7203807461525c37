"""IAM for the local stack: each function's clients refuse what its role does not grant.

moto answers every call, so a handler that calls an action its role lacks works locally and
fails in AWS with AccessDenied. Here the template is expanded as `sam deploy` would
(aws-sam-translator, offline), each function's role is read from it (inline statements and
the AWS managed policies SAM attaches), its intrinsics resolved to the local stack's ARNs,
and a botocore `before-parameter-build` hook on the function's clients checks every call's
IAM action and resource ARN against it before anything is sent.

The evaluation is IAM's (explicit Deny wins, then an Allow must match; nothing matched is
an implicit deny) over Action/NotAction, Resource/NotResource and the StringLike and
StringEquals conditions the template uses; any other condition operator is an error, not a
silent allow. An API call maps to the IAM actions AWS authorises it by: SendMessageBatch
needs sqs:SendMessage, HeadObject s3:GetObject, each item of a TransactWriteItems its own
action on its own table.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from segment_importer_local.template_config import Resolver, StackTemplate

_LOGS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
_SQS_POLL = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
# The published documents of the AWS managed policies SAM attaches (not in the template).
MANAGED_POLICIES: dict[str, list[dict[str, Any]]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {"Effect": "Allow", "Action": _LOGS, "Resource": "*"}
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        {"Effect": "Allow", "Action": [*_SQS_POLL, *_LOGS], "Resource": "*"}
    ],
    # SAM attaches it whenever `Tracing` is set (the template's Tracing parameter).
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
}
_S3_OBJECT_WRITES = frozenset(
    {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"}
)
_SQS_BATCH_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
_TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
_TRANSACT_ACTIONS["ConditionCheck"] = "ConditionCheckItem"


@dataclass(frozen=True, slots=True)
class Request:
    """One IAM authorisation an API call needs."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()


def expanded_template(template: StackTemplate) -> dict[str, Any]:
    """The template after the SAM transform (what `sam deploy` sends), offline."""
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class OfflinePolicyLoader(ManagedPolicyLoader):  # never calls IAM
        def __init__(self) -> None:
            super().__init__(iam_client=None)  # type: ignore[arg-type]

        def load(self) -> dict[str, str]:
            return {}

    document = copy.deepcopy(template.document)
    for resource in document["Resources"].values():  # where `sam package` puts S3 URIs
        properties = resource.get("Properties", {})
        for name in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(name), str):
                properties[name] = f"s3://placeholder-bucket/{properties[name]}"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator needs one
    return transform(document, {}, OfflinePolicyLoader())


def role_statements(expanded: dict[str, Any], function_id: str, resolver: Resolver) -> list[dict[str, Any]]:
    """Every statement of the function's role, inline and managed, with ARNs resolved."""
    role_ref = expanded["Resources"][function_id]["Properties"]["Role"]
    role = expanded["Resources"][role_ref["Fn::GetAtt"][0]]["Properties"]
    inline = [
        statement
        for policy in role.get("Policies", [])
        for statement in _as_list(policy["PolicyDocument"]["Statement"])
    ]
    managed = [statement for arn in role.get("ManagedPolicyArns", []) for statement in MANAGED_POLICIES[arn]]
    return [resolver.resolve(statement) for statement in [*inline, *managed]]


@dataclass
class RolePolicy:
    """One function's permissions, and what was asked of them."""

    function_id: str
    statements: list[dict[str, Any]]
    region: str
    account: str
    allowed: Counter[str] = field(default_factory=Counter)
    denied: list[str] = field(default_factory=list)

    def guard(self, client: Any) -> Any:
        """Make `client` refuse what this role may not do; returns it."""
        service = client.meta.service_model.signing_name
        client.meta.events.register(
            f"before-parameter-build.{client.meta.service_model.service_id.hyphenize()}",
            lambda params, model, **_: self.check(service, model.name, params),
        )
        return client

    def check(self, service: str, operation: str, params: dict[str, Any]) -> None:
        for request in requests_of(service, operation, params, self.region, self.account):
            if not self.allows(request):
                self.denied.append(f"{request.action} on {request.resource}")
                raise ClientError(
                    {
                        "Error": {
                            "Code": "AccessDenied" if service == "s3" else "AccessDeniedException",
                            "Message": f"{self.function_id}'s role is not authorized to perform: "
                            f"{request.action} on resource: {request.resource}",
                        }
                    },
                    operation,
                )
            self.allowed[request.action] += 1

    def allows(self, request: Request) -> bool:
        matching = [statement for statement in self.statements if _applies(statement, request)]
        if any(statement["Effect"] == "Deny" for statement in matching):
            return False
        return any(statement["Effect"] == "Allow" for statement in matching)


def requests_of(
    service: str, operation: str, params: dict[str, Any], region: str, account: str
) -> Iterator[Request]:
    """The IAM authorisations one API call needs."""
    if service == "s3":
        yield _s3_request(operation, params)
    elif service == "sqs":
        queue = params.get("QueueUrl") or params.get("QueueName", "*")
        name = urlparse(queue).path.rsplit("/", 1)[-1] if "://" in queue else queue
        action = _SQS_BATCH_ACTIONS.get(operation, operation)
        yield Request(f"sqs:{action}", f"arn:aws:sqs:{region}:{account}:{name}")
    elif service == "dynamodb":
        yield from _dynamodb_requests(operation, params, f"arn:aws:dynamodb:{region}:{account}:table/")
    elif service == "ssm":
        for name in params.get("Names") or [params.get("Name", "*")]:
            yield Request(f"ssm:{operation}", f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}")
    elif service == "secretsmanager":
        secret = params.get("SecretId", "*")
        arn = (
            secret
            if secret.startswith("arn:")
            else f"arn:aws:secretsmanager:{region}:{account}:secret:{secret}"
        )
        yield Request(f"secretsmanager:{operation}", arn)
    elif service == "events" and operation == "PutEvents":
        for bus in {entry.get("EventBusName") or "default" for entry in params.get("Entries", [])}:
            arn = bus if bus.startswith("arn:") else f"arn:aws:events:{region}:{account}:event-bus/{bus}"
            yield Request("events:PutEvents", arn)
    else:
        yield Request(f"{service}:{operation}", "*")


def _s3_request(operation: str, params: dict[str, Any]) -> Request:
    bucket = f"arn:aws:s3:::{params.get('Bucket', '*')}"
    if operation in {"ListObjectsV2", "ListObjects", "HeadBucket"}:
        return Request("s3:ListBucket", bucket, (("s3:prefix", params.get("Prefix", "")),))
    if operation in {"GetObject", "HeadObject"}:
        return Request("s3:GetObject", f"{bucket}/{params['Key']}")
    if operation in _S3_OBJECT_WRITES:
        return Request("s3:PutObject", f"{bucket}/{params['Key']}")
    return Request(f"s3:{operation}", f"{bucket}/{params['Key']}" if "Key" in params else bucket)


def _dynamodb_requests(operation: str, params: dict[str, Any], tables: str) -> Iterator[Request]:
    if operation == "TransactWriteItems":
        for item in params["TransactItems"]:
            ((kind, request),) = item.items()
            yield Request(f"dynamodb:{_TRANSACT_ACTIONS[kind]}", tables + request["TableName"])
    elif operation == "TransactGetItems":
        for item in params["TransactItems"]:
            yield Request("dynamodb:GetItem", tables + item["Get"]["TableName"])
    elif operation in {"BatchWriteItem", "BatchGetItem"}:
        for table in params["RequestItems"]:
            yield Request(f"dynamodb:{operation}", tables + table)
    else:
        yield Request(f"dynamodb:{operation}", tables + params.get("TableName", "*"))


def _applies(statement: dict[str, Any], request: Request) -> bool:
    if "Action" in statement:
        action_ok = _any_match(request.action.lower(), statement["Action"], lower=True)
    else:
        action_ok = not _any_match(request.action.lower(), statement["NotAction"], lower=True)
    if "Resource" in statement:
        resource_ok = _any_match(request.resource, statement["Resource"])
    else:
        resource_ok = not _any_match(request.resource, statement["NotResource"])
    return (
        action_ok and resource_ok and _conditions_hold(statement.get("Condition", {}), dict(request.context))
    )


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        if operator not in {"StringLike", "StringEquals"}:
            raise ValueError(f"condition operator {operator} is not evaluated locally: add it to iam_guard")
        for key, patterns in tests.items():
            if key not in context:
                return False  # a key the request lacks: the condition does not hold
            value = context[key]
            if operator == "StringEquals" and value not in _as_list(patterns):
                return False
            if operator == "StringLike" and not _any_match(value, patterns):
                return False
    return True


def _any_match(value: str, patterns: Any, *, lower: bool = False) -> bool:
    return any(fnmatchcase(value, pattern.lower() if lower else pattern) for pattern in _as_list(patterns))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
