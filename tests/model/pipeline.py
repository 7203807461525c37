"""The local stack driven one Lambda invocation at a time, with faults in between.

Both functions run with IAM enforced (their clients refuse what their template roles do not
grant). A test chooses each step: an S3 event, a continuation task, a sender invocation;
and what goes wrong: the invocation dies at its n-th AWS call (a Lambda killed mid-work:
its records come back after the visibility timeout), dies after its handler returned, a
batch is delivered twice or late, the endpoint refuses for a while. `quiesce` then lets
the stack finish as AWS would (and redrives the dead-letter queue, as an operator would),
and `check` states the delivery promise against what the endpoint received.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import orjson

from segment_importer.import_ref import ImportRef
from segment_importer.track.completion import complete_and_report
from segment_importer.track.ledger import COMPLETE, COMPLETE_WITH_ERRORS, Ledger
from segment_importer.track.redrive import redrive
from segment_importer.track.report import report_key
from segment_importer_local.event_source import SqsPoller, s3_put_event
from segment_importer_local.segment_endpoint import SegmentEndpoint
from segment_importer_local.stack import LocalFunction, LocalLambdaContext, LocalStack, environment
from segment_importer_local.template_config import StackTemplate

S3_EVENT_ATTEMPTS = 3  # Lambda's asynchronous invoke: the first try and two retries


class InvocationDied(BaseException):
    """The execution environment died: nothing after this point of the invocation ran."""


@dataclass
class Faults:
    """What was injected, for the figures."""

    counts: Counter[str] = field(default_factory=Counter)


class Pipeline:
    def __init__(self, endpoint: SegmentEndpoint, overrides: dict[str, str], write_key: str) -> None:
        parameters = {"SegmentHost": endpoint.url, "PreflightHost": "", **overrides}
        self.endpoint = endpoint
        self.stack = LocalStack(StackTemplate.load(), parameters, enforce_iam=True).create(write_key)
        self.splitter = self.stack.function("SplitterFunction")
        self.sender = self.stack.function("SenderFunction")
        self.ledger = Ledger(
            self.stack.dynamodb, self.stack.table_name("ImportsTable"), self.stack.table_name("BatchesTable")
        )
        self.continuation = self._poller("ContinuationQueue", self.splitter)
        self.work = self._poller("WorkQueue", self.sender)
        self.faults = Faults()
        self.refs: list[ImportRef] = []
        self.held: list[dict[str, Any]] = []  # received work messages kept back: delivered late
        self._calls_left: int | None = None
        self._invoking = False
        self._events = boto3.DEFAULT_SESSION._session.get_component("event_emitter")  # type: ignore[union-attr]
        # On the session, so the clients the handlers create inherit it (theirs only: see _invoking).
        self._events.register("before-call", self._maybe_die)

    def close(self) -> None:
        self._events.unregister("before-call", self._maybe_die)

    # --- steps ---------------------------------------------------------------------------

    def drop(self, path: Path, key: str, *, die_at_call: int | None = None, repeat: bool = False) -> None:
        """Upload an export and deliver its S3 event (async: retried under the same request id)."""
        self.stack.s3.upload_file(str(path), self.stack.bucket, key)
        head = self.stack.s3.head_object(Bucket=self.stack.bucket, Key=key)
        etag = head["ETag"].strip('"')
        self.refs.append(ImportRef(self.stack.bucket, key, etag))
        event = s3_put_event(self.stack.bucket, key, head["ContentLength"], etag)
        request_id = str(uuid.uuid4())
        for attempt in range(S3_EVENT_ATTEMPTS):
            if self._run(self.splitter, event, request_id, die_at_call if attempt == 0 else None):
                break
        if repeat:  # S3 notifications are at-least-once: the same event again, a new request
            self.faults.counts["duplicate_s3_event"] += 1
            self._run(self.splitter, event, str(uuid.uuid4()), None)

    def split_step(self, *, die_at_call: int | None = None, duplicate: bool = False) -> bool:
        """One continuation task (if any) through the splitter; False when there was none."""
        return self._step(self.continuation, self.splitter, die_at_call, duplicate=duplicate)

    def send_step(
        self, *, die_at_call: int | None = None, die_after: bool = False, duplicate: bool = False
    ) -> bool:
        """One sender invocation over up to its batch size of work messages."""
        return self._step(self.work, self.sender, die_at_call, die_after=die_after, duplicate=duplicate)

    def hold_one(self) -> None:
        """Receive a work message and keep it back (a slow, late delivery)."""
        messages = self._receive(self.work, 1)
        if messages:
            self.faults.counts["late_delivery"] += 1
            self.held.extend(messages)

    def release_held(self) -> None:
        """The late deliveries arrive now, with their old receipts."""
        held, self.held = self.held, []
        if held:
            self._deliver(self.work, self.sender, held, None)

    def redrive(self, *, force: bool = False) -> int:
        prefixes = self.stack.prefixes
        result = redrive(
            self.stack.sqs,
            self.stack.dead_letter_queue_url,
            self.stack.work_queue_url,
            ledger=self.ledger,
            force=force,
            complete=lambda ref: complete_and_report(self.stack.s3, self.ledger, ref, prefixes),
        )
        self.faults.counts["redriven_batches"] += result.moved
        return result.moved

    def quiesce(self, max_rounds: int = 12) -> None:
        """No more faults: run every queue dry and redrive what was dead-lettered."""
        self.endpoint.faults = None
        for _ in range(max_rounds):
            self.release_held()
            while self.split_step():
                pass
            while self.send_step():
                pass
            if not self.redrive() and not self.held:
                return
        raise AssertionError(f"the stack did not settle in {max_rounds} rounds")

    # --- reading -------------------------------------------------------------------------

    def queue_depth(self, logical_id: str) -> int:
        attributes = self.stack.sqs.get_queue_attributes(
            QueueUrl=self.stack.queue_urls[logical_id],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def report(self, ref: ImportRef) -> dict[str, Any]:
        prefixes = self.stack.prefixes
        key = report_key(prefixes.reports, prefixes.imports, ref.key)
        return orjson.loads(self.stack.s3.get_object(Bucket=ref.bucket, Key=key)["Body"].read())

    def rejected_numbers(self, ref: ImportRef) -> list[int]:
        """Record numbers in every rejects file of the import (each part's, each range's)."""
        prefixes = self.stack.prefixes
        prefix = prefixes.rejects + ref.key.removeprefix(prefixes.imports) + ".rejects"
        numbers: list[int] = []
        pages = self.stack.s3.get_paginator("list_objects_v2").paginate(Bucket=ref.bucket, Prefix=prefix)
        for page in pages:
            for entry in page.get("Contents", []):
                body = self.stack.s3.get_object(Bucket=ref.bucket, Key=entry["Key"])["Body"].read()
                numbers += [orjson.loads(line)["number"] for line in body.splitlines()]
        return numbers

    def check(self, ref: ImportRef, valid: set[int], invalid: set[int]) -> dict[str, int]:
        """The delivery promise at quiescence; returns the figures."""
        ids_per_record: dict[int, set[str]] = {}
        for message in self.endpoint.accepted:
            if message["properties"].get("file") == ref.key:
                ids_per_record.setdefault(message["properties"]["seq"], set()).add(message["messageId"])
        lost = sorted(valid - set(ids_per_record))
        doubled = sorted(seq for seq, ids in ids_per_record.items() if len(ids) > 1)
        assert not lost, f"lost {len(lost)} valid records, e.g. {lost[:5]} ({self.faults.counts})"
        assert not doubled, f"{len(doubled)} records under several messageIds, e.g. {doubled[:5]}"
        assert not set(ids_per_record) & invalid, "an invalid record reached Segment"
        assert sorted(self.rejected_numbers(ref)) == sorted(invalid)
        for logical_id in ("WorkQueue", "DeadLetterQueue", "ContinuationQueue", "SplitterFailureQueue"):
            assert self.queue_depth(logical_id) == 0, f"{logical_id} is not empty at quiescence"
        item = self.ledger.get(ref) or {}
        expected_status = COMPLETE_WITH_ERRORS if invalid else COMPLETE
        assert item.get("status") == expected_status, (item.get("status"), item.get("last_error"))
        assert item["messages_delivered"] == len(ids_per_record) == len(valid)
        assert item["batches_delivered"] == item["batches_queued"]
        assert (item["batches_failed"], item["messages_failed"], item.get("batches_redriven", 0)) == (0, 0, 0)
        assert item["rejected"] == len(invalid)
        assert item.get("last_error") is None
        report = self.report(ref)
        assert (report["status"], report["messages_delivered"]) == (expected_status, len(valid))
        assert self.denied() == [], (
            f"a handler called what its role does not grant: {sorted(set(self.denied()))}"
        )
        return {"valid": len(valid), "invalid": len(invalid), **self.faults.counts}

    def denied(self) -> list[str]:
        return [denial for policy in self.stack.role_policies for denial in policy.denied]

    # --- internals -----------------------------------------------------------------------

    def _poller(self, logical_id: str, function: LocalFunction) -> SqsPoller:
        url = self.stack.queue_urls[logical_id]
        arn = self.stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return SqsPoller(
            self.stack.sqs,
            url,
            arn["Attributes"]["QueueArn"],
            function,
            self.stack.sqs_batch_size(function.logical_id),
        )

    def _step(
        self,
        poller: SqsPoller,
        function: LocalFunction,
        die_at_call: int | None,
        *,
        die_after: bool = False,
        duplicate: bool = False,
    ) -> bool:
        messages = self._receive(poller, self.stack.sqs_batch_size(function.logical_id))
        if not messages:
            return False
        if duplicate:  # at-least-once: the same body again as a new message, later
            self.faults.counts[f"duplicate_{function.logical_id}_message"] += 1
            self.stack.sqs.send_message(QueueUrl=poller._queue_url, MessageBody=messages[0]["Body"])
        self._deliver(poller, function, messages, die_at_call, die_after=die_after)
        return True

    def _receive(self, poller: SqsPoller, count: int) -> list[dict[str, Any]]:
        response = self.stack.sqs.receive_message(
            QueueUrl=poller._queue_url, MaxNumberOfMessages=count, AttributeNames=["All"], WaitTimeSeconds=0
        )
        return response.get("Messages", [])

    def _deliver(
        self,
        poller: SqsPoller,
        function: LocalFunction,
        messages: list[dict[str, Any]],
        die_at_call: int | None,
        *,
        die_after: bool = False,
    ) -> None:
        """One invocation with ReportBatchItemFailures; a death returns every record."""
        event = {"Records": [poller._record(message) for message in messages]}
        response = self._run(function, event, str(uuid.uuid4()), die_at_call, answer=True)
        if die_after and response is not None:
            self.faults.counts["died_after_handler"] += 1
            response = None
        failed = (
            {message["MessageId"] for message in messages}
            if response is None
            else {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        )
        for message in messages:
            if message["MessageId"] in failed:  # its visibility timeout runs out (at once, here)
                self.stack.sqs.change_message_visibility(
                    QueueUrl=poller._queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                self.stack.sqs.delete_message(
                    QueueUrl=poller._queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def _run(
        self,
        function: LocalFunction,
        event: dict[str, Any],
        request_id: str,
        die_at_call: int | None,
        *,
        answer: bool = False,
    ) -> Any:
        """Invoke the handler; None (or False) if it died or raised."""
        context = LocalLambdaContext(function)
        context.aws_request_id = request_id
        self._calls_left = die_at_call
        self._invoking = True
        try:
            with environment(function.environment):
                response = function.handler(event, context)
        except InvocationDied:
            self.faults.counts[f"{function.logical_id}_died_mid_invocation"] += 1
            return None if answer else False
        except Exception:  # Lambda counts the invocation failed; the records come back
            self.faults.counts[f"{function.logical_id}_raised"] += 1
            return None if answer else False
        finally:
            self._invoking = False
            self._calls_left = None
        return response if answer else True

    def _maybe_die(self, **_: Any) -> None:
        if not self._invoking or self._calls_left is None:
            return
        if self._calls_left <= 0:
            raise InvocationDied
        self._calls_left -= 1
