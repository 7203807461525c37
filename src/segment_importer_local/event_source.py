"""Lambda's event sources, emulated against moto: S3 notifications and SQS polling.

An S3 notification is an asynchronous invocation (`AsyncInvoker`): a failed one is run again
under the same request id, `MaximumRetryAttempts` times, and then Lambda's invocation record
(`invocation_record`, the shape AWS sends) goes to the function's OnFailure destination. A
Lambda kill (a timeout, out of memory, the runtime exiting) is `InvocationStopped` to the
code: fault injection raises it, and nothing but the emulated Lambda catches it.

The SQS poller behaves like an event source mapping with ReportBatchItemFailures: it
receives up to the template's batch size, deletes the records the handler did not report
as failed, and makes the failed ones visible again at once (the local stand-in for their
visibility timeout expiring). moto applies the queue's redrive policy, so a batch received
more than `maxReceiveCount` times moves to the dead-letter queue, as in AWS.

Records are deleted (and failed ones made visible) ten to a call, as the event source
mapping does: in moto every call walks the whole queue, so one call per record would cost
the square of the queue's depth. While a producer is still filling the queue (the splitter,
in a thread of its own: see `QueueGate`), `drain` keeps polling instead of stopping at the
first empty receive.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from segment_importer_local.stack import PSEUDO_PARAMETERS, LocalFunction, LocalLambdaContext

logger = logging.getLogger(__name__)
SQS_RECEIVE_MAX = 10


def s3_put_event(bucket: str, key: str, size: int, etag: str) -> dict[str, Any]:
    """An S3 ObjectCreated:Put notification as Lambda receives it (key URL-encoded)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": PSEUDO_PARAMETERS["AWS::Region"],
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag},
                },
            }
        ]
    }


def invoke(function: LocalFunction, event: dict[str, Any], request_id: str | None = None) -> Any:
    """One invocation of the function's handler (a fresh request id unless given: a retry's)."""
    context = LocalLambdaContext(function)
    if request_id is not None:
        context.aws_request_id = request_id
    return function.handler(event, context)


class InvocationStopped(BaseException):
    """A Lambda timeout, out-of-memory kill or runtime exit, as the code sees it: the invocation
    ends right here (no `except Exception`, no cleanup the code chose to run). Raised by fault
    injection; the emulated Lambda reports it with Lambda's own error type."""

    def __init__(self, error_type: str = "Sandbox.Timedout", message: str = "Task timed out") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def invocation_record(
    function: LocalFunction,
    request_id: str,
    event: dict[str, Any],
    attempts: int,
    error: BaseException,
    *,
    condition: str = "RetriesExhausted",
) -> dict[str, Any]:
    """What Lambda sends an asynchronous invocation's OnFailure destination when its last
    attempt failed: the request, the condition, and the error as the runtime reported it (a
    Python exception's type, message and stack trace; a kill's Sandbox.* or Runtime.* type)."""
    if isinstance(error, InvocationStopped):
        response: dict[str, Any] = {
            "errorMessage": f"RequestId: {request_id} Error: {error.message}",
            "errorType": error.error_type,
        }
    else:
        response = {
            "errorMessage": str(error),
            "errorType": getattr(error, "lambda_error_type", None) or type(error).__name__,
            "requestId": request_id,
            "stackTrace": traceback.format_tb(error.__traceback__),
        }
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{LocalLambdaContext(function).invoked_function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": response,
    }


class AsyncInvoker:
    """Invokes a function as Lambda runs an asynchronous invocation (an S3 notification): on an
    error or a kill, again under the same request id, `retries` times; when the last attempt
    fails, its invocation record goes to `on_failure` (the OnFailure destination)."""

    def __init__(
        self, function: LocalFunction, retries: int, on_failure: Callable[[dict[str, Any]], None] | None
    ) -> None:
        self._function, self._retries, self._on_failure = function, retries, on_failure
        self.failed_attempts = 0
        self.records_sent = 0

    def invoke(self, event: dict[str, Any], request_id: str | None = None) -> Any:
        """The handler's answer, or None when every attempt failed (the record is sent on)."""
        request_id = request_id or str(uuid.uuid4())
        error: BaseException | None = None
        for _ in range(1 + self._retries):
            try:
                return invoke(self._function, event, request_id)
            except RunStopped:  # the local run is stopping: no retry, no failure record
                raise
            except (Exception, InvocationStopped) as failure:  # Lambda records any failure the same way
                # Where, not what: an exception's message may quote a record (its frames are code).
                logger.warning(
                    "asynchronous invocation failed; Lambda runs it again until its retries are used up",
                    extra={
                        "function": self._function.logical_id,
                        "error": getattr(failure, "error_type", None) or type(failure).__name__,
                        "frames": "".join(traceback.format_tb(failure.__traceback__)[-5:]),
                    },
                )
                self.failed_attempts += 1
                error = failure
        assert error is not None  # every attempt raised
        if self._on_failure is not None:
            self._on_failure(invocation_record(self._function, request_id, event, 1 + self._retries, error))
            self.records_sent += 1
        return None


@dataclass
class PollStats:
    invocations: int = 0
    handler_errors: int = 0
    crashes: int = 0
    records_succeeded: int = 0
    records_failed: int = 0
    batch_calls: int = 0  # DeleteMessageBatch and ChangeMessageVisibilityBatch calls


class QueueGate:
    """Keeps a queue shallow while a producer fills it and a poller drains it.

    The producer calls `wait_for_room` before each send: it blocks while the queue holds
    `depth` messages or more (visible or in flight, as moto counts them), so memory stays
    bounded by the depth rather than by the file. The poller calls `drained` after its
    deletes, and `idle` to sleep until the producer sent something or finished, instead of
    spinning on empty receives. `close` releases a blocked producer for good (the poller
    stopped: waiting would hang the run).
    """

    def __init__(self, count_messages: Callable[[], int], depth: int) -> None:
        self._count_messages = count_messages
        self.depth = depth
        self._changed = threading.Condition()
        self._producing = False
        self._closed = False
        self._aborted = False
        self.waits = 0  # how often the producer had to wait: the queue was full
        self.deepest = 0  # the most messages it found in the queue before a send

    @property
    def producing(self) -> bool:
        return self._producing

    @contextmanager
    def producer(self) -> Iterator[None]:
        """The block in which the producer runs; the poller keeps polling until it ends."""
        with self._changed:
            self._producing = True
        try:
            yield
        finally:
            with self._changed:
                self._producing = False
                self._changed.notify_all()

    def wait_for_room(self) -> None:
        with self._changed:
            while not self._closed:
                if self._aborted:
                    raise RunStopped("the sender stopped: the split stops at its next send")
                count = self._count_messages()
                self.deepest = max(self.deepest, count)
                if count < self.depth and not self._aborted:
                    return
                self.waits += 1
                self._changed.wait(timeout=0.5)  # the count is re-read: a move to the DLQ frees room too

    def sent(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def drained(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def idle(self) -> None:
        with self._changed:
            if self._producing:
                self._changed.wait(timeout=0.05)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def abort(self) -> None:
        """The poller failed or was interrupted (Ctrl-C): the producer's next send raises
        `RunStopped`, so the run stops instead of splitting the rest of the file first."""
        with self._changed:
            self._aborted = True
            self._changed.notify_all()


_WAIT_FOR_DELAYED = 0.05  # seconds between polls of a queue whose messages are all delayed
# Messages a queue still holds: visible, received and in flight, and sent with a delay.
_QUEUE_DEPTH = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


class RunStopped(Exception):
    """Raised in the producer's thread when the poller has stopped (`QueueGate.abort`)."""


class SqsPoller:
    """Drains a queue through a handler, the way Lambda's SQS event source mapping does."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        function: LocalFunction,
        batch_size: int,
        *,
        crashes: Callable[[], bool] | None = None,
        gate: QueueGate | None = None,
    ) -> None:
        self._gate = gate  # set: a producer may still be filling the queue
        self._crashes = crashes  # fault injection: the invocation dies after its handler ran
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._function = function
        self._batch_size = batch_size
        self.stats = PollStats()

    def drain(self, on_batch_done: Callable[[str], None] | None = None) -> PollStats:
        """Poll until the queue has nothing visible or in flight, and no producer is filling it."""
        gate = self._gate
        while True:
            messages = self._receive()
            if not messages:
                if gate is not None and gate.producing:
                    gate.idle()
                    continue
                if self._is_empty():
                    return self.stats
                time.sleep(_WAIT_FOR_DELAYED)  # in flight elsewhere, or delayed: not a busy loop
                continue
            for body in self._invoke(messages):
                if on_batch_done:
                    on_batch_done(body)

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < self._batch_size:
            response = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=min(SQS_RECEIVE_MAX, self._batch_size - len(messages)),
                AttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            received = response.get("Messages", [])
            if not received:
                break
            messages.extend(received)
        return messages

    def _invoke(self, messages: list[dict[str, Any]]) -> list[str]:
        """Invoke the handler once; returns the bodies of the records it handled."""
        self.stats.invocations += 1
        event = {"Records": [self._record(message) for message in messages]}
        try:
            response = invoke(self._function, event)
            failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
        except RunStopped:  # the local run is stopping: its records are left as they are
            raise
        except (Exception, InvocationStopped):  # Lambda counts an error or a kill as every record failed
            logger.exception("invocation failed; every record in it returns to the queue")
            self.stats.handler_errors += 1
            failed = {message["MessageId"] for message in messages}
        if self._crashes and self._crashes():  # died after its work, before Lambda saw the answer
            self.stats.crashes += 1
            failed = {message["MessageId"] for message in messages}
        done = [message for message in messages if message["MessageId"] not in failed]
        retry = [message for message in messages if message["MessageId"] in failed]
        self.stats.records_failed += len(retry)
        self.stats.records_succeeded += len(done)
        self._in_tens(self._sqs.change_message_visibility_batch, retry, VisibilityTimeout=0)
        self._in_tens(self._sqs.delete_message_batch, done)
        if self._gate is not None:
            self._gate.drained()
        return [message["Body"] for message in done]

    def _in_tens(self, call: Callable[..., Any], messages: list[dict[str, Any]], **entry: Any) -> None:
        """A batch call (delete, change visibility) per ten records; refuse a partial failure."""
        for start in range(0, len(messages), SQS_RECEIVE_MAX):
            entries = [
                {"Id": str(number), "ReceiptHandle": message["ReceiptHandle"], **entry}
                for number, message in enumerate(messages[start : start + SQS_RECEIVE_MAX])
            ]
            self.stats.batch_calls += 1
            failed = call(QueueUrl=self._queue_url, Entries=entries).get("Failed", [])
            if failed:  # a receipt handle we just received: a bug here, not a condition to ride out
                raise RuntimeError(f"{call.__name__} failed for {len(failed)} records: {failed[0]}")

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue_arn,
            "awsRegion": PSEUDO_PARAMETERS["AWS::Region"],
        }

    def _is_empty(self) -> bool:
        """Nothing visible, in flight, or delayed (a batch the sender deferred under
        MaxEventsPerSecond: the drain stopped before it came back, and it was never sent)."""
        attributes = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=_QUEUE_DEPTH)[
            "Attributes"
        ]
        return sum(int(attributes[name]) for name in _QUEUE_DEPTH) == 0
