"""The stack's resources in moto, built from template.yaml, and its functions' handlers.

Nothing is copied from the template: names, queue attributes, the redrive policy, function
environments, timeouts and the sender's batch size are all read and resolved from it.
The caller activates moto (`mock_aws`) around the stack's lifetime.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from segment_importer.settings import Prefixes
from segment_importer_local.disk_exports import DiskExports
from segment_importer_local.iam_guard import RolePolicy, expanded_template, role_statements
from segment_importer_local.template_config import Resolver, StackTemplate, TemplateError

STACK_NAME = "segment-importer-local"
PSEUDO_PARAMETERS = {
    "AWS::StackName": STACK_NAME,
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "SqsManagedSseEnabled",
)


@dataclass(frozen=True, slots=True)
class LocalFunction:
    logical_id: str
    handler: Callable[[dict[str, Any], Any], Any]
    timeout_seconds: int
    memory_mb: int
    environment: dict[str, str]


class LocalLambdaContext:
    """What Lambda passes as `context`, with a real clock for the remaining time."""

    def __init__(self, function: LocalFunction) -> None:
        self.function_name = f"{STACK_NAME}-{function.logical_id}"
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = function.memory_mb
        self.invoked_function_arn = (
            f"arn:aws:lambda:{PSEUDO_PARAMETERS['AWS::Region']}:{PSEUDO_PARAMETERS['AWS::AccountId']}"
            f":function:{self.function_name}"
        )
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + function.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalStack:
    """Creates the bucket, queues and write-key parameter of template.yaml in moto."""

    def __init__(
        self,
        template: StackTemplate,
        parameter_overrides: dict[str, str] | None = None,
        *,
        enforce_iam: bool = False,
        exports: DiskExports | None = None,
    ) -> None:
        self.template = template
        # Set: the exports are served from their files, not uploaded into moto (disk_exports).
        self.exports = exports
        # Opt-in: each function's clients refuse what its role in template.yaml does not grant.
        self.enforce_iam = enforce_iam
        self.role_policies: list[RolePolicy] = []  # one per function environment loaded
        self._expanded: dict[str, Any] | None = None
        self.parameters = {**template.parameter_defaults(), **(parameter_overrides or {})}
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.ssm = boto3.client("ssm")
        self.dynamodb = boto3.client("dynamodb")
        self.queue_urls: dict[str, str] = {}
        self.resolver = Resolver(
            self.parameters, PSEUDO_PARAMETERS, conditions=self.template.document.get("Conditions", {})
        )

    def create(self, write_key: str, job_write_keys: dict[str, str] | None = None) -> LocalStack:
        """The resources, and the write keys in SSM: the stack's own, and those of the
        parameters job files name ({name: key}, e.g. under JobKeyParameterPath)."""
        self._create_queues()
        self._create_bucket()
        self._create_tables()
        keys = {**(job_write_keys or {}), self.parameters["WriteKeyParameterName"]: write_key}
        for name, key in keys.items():
            self.ssm.put_parameter(Name=name, Value=key, Type="SecureString", Overwrite=True)
        return self

    def put_export(self, path: Path, key: str) -> None:
        """The export in the bucket at `key`, as `upload_file` puts it there; served from the
        file itself when the stack has `exports` (moto would hold all its bytes in memory)."""
        if self.exports is None:
            self.s3.upload_file(str(path), self.bucket, key)
            return
        rules = self.s3.get_bucket_encryption(Bucket=self.bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
        encryption = rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] if rules else None
        self.exports.add(self.bucket, key, path, server_side_encryption=encryption)

    @property
    def bucket(self) -> str:
        return self.resolver.resolve(self.template.resource("ImportBucket")["Properties"]["BucketName"])

    @property
    def work_queue_url(self) -> str:
        return self.queue_urls["WorkQueue"]

    @property
    def dead_letter_queue_url(self) -> str:
        return self.queue_urls["DeadLetterQueue"]

    @property
    def prefixes(self) -> Prefixes:
        """The bucket's prefixes, as the functions are configured with them."""
        environment = self.resolver.resolve(self.template.function_environment("SplitterFunction"))
        return Prefixes.from_env({name: str(value) for name, value in environment.items()})

    def sqs_batch_size(self, function_id: str) -> int:
        """The BatchSize of the function's (one) SQS event source."""
        (event,) = self.template.function_events(function_id, "SQS").values()
        return int(self.resolver.resolve(event.get("BatchSize", 10)))

    def async_retries(self, function_id: str) -> int:
        """Lambda's retries of a failed asynchronous invocation (EventInvokeConfig; AWS's default 2)."""
        config = self.template.resource(function_id).get("Properties", {}).get("EventInvokeConfig", {})
        return int(self.resolver.resolve(config.get("MaximumRetryAttempts", 2)))

    def on_failure_queue(self, function_id: str) -> str | None:
        """The queue (logical id) a failed asynchronous invocation's record goes to, if any."""
        config = self.template.resource(function_id).get("Properties", {}).get("EventInvokeConfig", {})
        destination = config.get("DestinationConfig", {}).get("OnFailure", {})
        if destination.get("Type") != "SQS":
            return None
        arn = self.resolver.resolve(destination["Destination"])
        return next(
            (queue for queue in self.queue_urls if self.resolver.attributes[f"{queue}.Arn"] == arn), None
        )

    def sqs_consumer(self, queue_id: str) -> str | None:
        """The function (logical id) whose SQS event source polls the queue, if one does."""
        for function_id in self.template.resources_of_type("AWS::Serverless::Function"):
            for event in self.template.function_events(function_id, "SQS").values():
                if event.get("Queue") == {"Fn::GetAtt": [queue_id, "Arn"]}:
                    return function_id
        return None

    def queue_arn(self, queue_id: str) -> str:
        return self.resolver.attributes[f"{queue_id}.Arn"]

    def max_receive_count(self) -> int:
        policy = self.template.resource("WorkQueue")["Properties"]["RedrivePolicy"]
        return int(self.resolver.resolve(policy["maxReceiveCount"]))

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The function's environment variables, resolved from the template."""
        resolved = self.resolver.resolve(self.template.function_environment(logical_id))
        return {name: str(value) for name, value in resolved.items()}

    def function(self, logical_id: str) -> LocalFunction:
        code_dir = self.template.root / self.template.function_property(logical_id, "CodeUri")
        module_file, handler_name = self.template.function_property(logical_id, "Handler").rsplit(".", 1)
        settings = self.function_environment(logical_id)
        with environment(settings):  # module-level code (the Logger) reads its settings on import
            module = _load_handler(code_dir / f"{module_file}.py", logical_id)
        if self.enforce_iam:
            self._guard_clients(module, logical_id)
        handler = getattr(module, handler_name)
        return LocalFunction(
            logical_id=logical_id,
            handler=handler,
            timeout_seconds=int(self.template.function_property(logical_id, "Timeout") or 3),
            memory_mb=int(self.template.function_property(logical_id, "MemorySize") or 128),
            environment=settings,
        )

    def _guard_clients(self, module: Any, logical_id: str) -> None:
        """The handler builds its clients with its module's `_client(service)`: build them
        guarded by the function's role instead."""
        if self._expanded is None:
            self._expanded = expanded_template(self.template)
        policy = RolePolicy(
            logical_id,
            role_statements(self._expanded, logical_id, self.resolver),
            region=PSEUDO_PARAMETERS["AWS::Region"],
            account=PSEUDO_PARAMETERS["AWS::AccountId"],
        )
        self.role_policies.append(policy)
        module._client = functools.cache(lambda service: policy.guard(boto3.client(service)))

    def _create_queues(self) -> None:
        queues = self.template.resources_of_type("AWS::SQS::Queue")
        for logical_id in redrive_order(queues):  # a dead-letter queue before the queues that point at it
            self._create_queue(logical_id, queues[logical_id].get("Properties", {}))

    def _create_queue(self, logical_id: str, properties: dict[str, Any]) -> None:
        attributes = {
            name: _attribute_text(self.resolver.resolve(properties[name]))
            for name in _QUEUE_ATTRIBUTES
            if name in properties
        }
        if "RedrivePolicy" in properties:
            attributes["RedrivePolicy"] = json.dumps(self.resolver.resolve(properties["RedrivePolicy"]))
        url = self.sqs.create_queue(QueueName=f"{STACK_NAME}-{logical_id}", Attributes=attributes)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.queue_urls[logical_id] = url
        self.resolver.define(logical_id, url, Arn=arn)

    def table_name(self, logical_id: str) -> str:
        return self.resolver.refs[logical_id]

    def _create_tables(self) -> None:
        for logical_id, resource in self.template.resources_of_type("AWS::DynamoDB::Table").items():
            properties = self.resolver.resolve(resource["Properties"])
            name = f"{STACK_NAME}-{logical_id}"
            self.dynamodb.create_table(
                TableName=name,
                KeySchema=properties["KeySchema"],
                AttributeDefinitions=properties["AttributeDefinitions"],
                BillingMode=properties.get("BillingMode", "PAY_PER_REQUEST"),
                SSESpecification={"Enabled": bool(properties.get("SSESpecification", {}).get("SSEEnabled"))},
            )
            arn = self.dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
            self.resolver.define(logical_id, name, Arn=arn)

    def _create_bucket(self) -> None:
        properties = self.template.resource("ImportBucket")["Properties"]
        bucket = self.bucket
        self.s3.create_bucket(Bucket=bucket)
        # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
        rules = [
            {
                "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                **_without(rule, "ServerSideEncryptionByDefault"),
            }
            for rule in properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        self.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
        self.s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
        )
        self.resolver.define("ImportBucket", bucket, Arn=f"arn:aws:s3:::{bucket}")


def redrive_order(queues: dict[str, dict[str, Any]]) -> list[str]:
    """The queues' logical ids, each after the dead-letter queue its RedrivePolicy names (moto,
    like SQS, resolves that queue when the policy is set), in template order otherwise. Chains
    work (ContinuationQueue -> SplitterFailureQueue -> SplitterFailureDeadLetterQueue)."""
    ordered: list[str] = []

    def place(logical_id: str, chain: tuple[str, ...]) -> None:
        if logical_id in ordered:
            return
        if logical_id in chain:
            raise TemplateError(
                f"the queues' redrive policies form a loop: {' -> '.join((*chain, logical_id))}"
            )
        target = _dead_letter_target(queues[logical_id])
        if target is not None:
            if target not in queues:
                raise TemplateError(
                    f"{logical_id}'s redrive policy names {target}, not a queue of the template"
                )
            place(target, (*chain, logical_id))
        ordered.append(logical_id)

    for logical_id in queues:
        place(logical_id, ())
    return ordered


def _dead_letter_target(queue: dict[str, Any]) -> str | None:
    """The logical id of the queue's dead-letter queue (`!GetAtt Queue.Arn`), if it has one."""
    redrive = queue.get("Properties", {}).get("RedrivePolicy")
    if not redrive:
        return None
    target = redrive.get("deadLetterTargetArn")
    if isinstance(target, dict) and "Fn::GetAtt" in target:
        return str(target["Fn::GetAtt"][0])
    raise TemplateError(f"a RedrivePolicy's deadLetterTargetArn must be !GetAtt Queue.Arn, not {target!r}")


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in mapping.items() if name != key}


def _attribute_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _load_handler(path: Any, logical_id: str) -> Any:
    """Import a function's handler file fresh, as a new Lambda execution environment would."""
    spec = importlib.util.spec_from_file_location(f"local_{logical_id}_{uuid.uuid4().hex}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _log_to_current_stdout(module)
    return module


def _log_to_current_stdout(module: Any) -> None:
    """Powertools keeps one handler per service across imports, bound to the stdout of the
    first run: point it at this run's stdout (its functions.log), as a new Lambda would."""
    logger = getattr(module, "logger", None)
    handler = getattr(logger, "registered_handler", None)
    if isinstance(handler, logging.StreamHandler):
        handler.acquire()  # not setStream: it would flush the old stream, closed by now
        try:
            handler.stream = sys.stdout
        finally:
            handler.release()


@contextmanager
def one_moto_request_at_a_time() -> Iterator[None]:
    """moto's in-memory backends are not thread-safe (SQS's delete rebuilds the queue's
    message list, so a message sent meanwhile from another thread would be lost): while the
    splitter and the sender run in threads of their own, moto handles one request at a time.
    Under the GIL this costs next to nothing; each request is Python work either way."""
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.process_request
    lock = threading.RLock()

    def serialized(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return original(self, request)

    BotocoreStubber.process_request = serialized  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.process_request = original  # type: ignore[method-assign]


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set process environment variables for a block (a Lambda's configured environment)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
