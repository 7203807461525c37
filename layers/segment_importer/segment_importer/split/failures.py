"""Splits stopped for good: the splitter failure queue's messages, and the imports they fail.

A splitter run whose code fails calls `Ledger.fail_split` itself on its last attempt. A run
that is *killed* (a Lambda timeout, out of memory, the runtime exiting) runs no code at all,
so without this its import would stay SPLITTING forever. Its task reaches the splitter
failure queue in one of two shapes:

- Lambda's invocation record (EventInvokeConfig OnFailure) for an S3 event whose every
  attempt failed: `requestContext` (the request id the split was claimed with, `condition`,
  `approximateInvokeCount`), `requestPayload` (the S3 event), `responseContext` and
  `responsePayload` (the error: `errorType`, `errorMessage`);
- a continuation task (a checkpoint, or a byte range's survey) that SQS moved there after
  `ContinuationMaxReceiveCount` receives: the message body as the splitter wrote it.

Each names the import and the run; the ledger marks the import FAILED only if it still waits
on that very run (`Ledger.fail_killed_split`), then the report, its page and the import's
event are rewritten as for any import that ends. An error text is copied only from Lambda's
own errors (`Sandbox.*`, `Runtime.*`): the message of a Python exception may quote a record,
so it is never stored or logged. A message that cannot be read, or whose import the ledger
does not hold, is left to the queue's redrive policy (its own dead-letter queue and alarm).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from segment_importer.import_ref import ImportRef
from segment_importer.job import is_job_file
from segment_importer.metrics import MetricsSink, NullMetrics
from segment_importer.read.byte_ranges import SpanRead
from segment_importer.settings import SplitFailureSettings
from segment_importer.split.continuation import Checkpoint, read_task
from segment_importer.split.s3_events import is_s3_event, notified_objects
from segment_importer.track.completion import publish_final_report
from segment_importer.track.import_events import ImportEvents
from segment_importer.track.ledger import ALREADY_KILLED, KILLED, NOT_FOUND, Ledger, StoppedRun

logger = logging.getLogger(__name__)

# Lambda's own error types: their messages are the platform's ("Task timed out after 900.00
# seconds", "Runtime exited with error: signal: killed"), never the function's data.
PLATFORM_ERROR_PREFIXES = ("Sandbox.", "Runtime.")
MAX_ERROR_MESSAGE = 200
_ERROR_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,99}")
_REQUEST_ID_PREFIX = re.compile(r"^(RequestId: \S+\s+)?(Error: )?")


class UnreadableFailure(ValueError):
    """A failure queue message that names no import this function can look up (the reason is
    a fixed text: never the message's content)."""


@dataclass(frozen=True, slots=True)
class StoppedSplit:
    """One import whose splitter run was stopped for good, and what its error will say."""

    ref: ImportRef
    run: StoppedRun
    error: str
    error_type: str = ""  # Lambda's errorType, if the message has one (for the log)


@dataclass(frozen=True, slots=True)
class FailureServices:
    """What the split failures function talks to; built by its handler (or a test)."""

    s3: Any
    ledger: Ledger
    metrics: MetricsSink = field(default_factory=NullMetrics)
    events: ImportEvents | None = None


def fail_stopped_splits(
    records: Iterable[Any], services: FailureServices, settings: SplitFailureSettings
) -> dict[str, Any]:
    """Each SQS record (`message_id`, `body`) of the failure queue; the answer names the ones to
    receive again (ReportBatchItemFailures): unreadable, not found, or failed here."""
    failures = []
    for record in records:
        try:
            resolved = _resolve(record.body, services, settings)
        except Exception as error:  # the record comes back; its message is never logged
            logger.warning(
                "split failure not resolved; the message comes back",
                extra={"message_id": record.message_id, "error": type(error).__name__},
            )
            resolved = False
        if not resolved:
            services.metrics.add_metric("SplitFailuresUnresolved", "Count", 1)
            failures.append({"itemIdentifier": record.message_id})
    return {"batchItemFailures": failures}


def read_failure_message(body: str, settings: SplitFailureSettings) -> list[StoppedSplit]:
    """The imports and runs a failure queue message names: an invocation record's S3 objects
    (job files and folder markers are no imports), or a continuation task's import."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UnreadableFailure("not JSON") from None
    if isinstance(document, dict) and "requestContext" in document:
        return _from_invocation_record(document, settings)
    return [_from_continuation_task(body, settings)]


def _resolve(body: str, services: FailureServices, settings: SplitFailureSettings) -> bool:
    """Fail what the message names; False if it cannot be read or an import is not found."""
    try:
        stopped = read_failure_message(body, settings)
    except UnreadableFailure as problem:
        logger.warning("split failure message not readable", extra={"problem": str(problem)})
        return False
    outcomes = [_fail(split, services, settings) for split in stopped]  # each one, whatever the others
    return all(outcomes)


def _fail(split: StoppedSplit, services: FailureServices, settings: SplitFailureSettings) -> bool:
    outcome = services.ledger.fail_killed_split(split.ref, split.run, split.error)
    where = {
        "key": split.ref.key,
        "run": describe_run(split.run),
        "outcome": outcome,
        "error_type": split.error_type,
    }
    if outcome == KILLED:
        logger.warning("stopped split: import FAILED", extra={**where, "error": split.error})
        services.metrics.add_metric("SplitsKilled", "Count", 1)
        services.metrics.add_metric("ImportsFailed", "Count", 1)
    elif outcome == NOT_FOUND:
        logger.warning("stopped split: no such import in the ledger", extra=where)
        return False
    else:
        logger.info("stopped split: the import had moved on, or was failed already", extra=where)
        services.metrics.add_metric("SplitFailuresMovedOn", "Count", 1)
    if outcome in (KILLED, ALREADY_KILLED):  # again, for a message that comes back after a failure here
        publish_final_report(services.s3, services.ledger, split.ref, settings.prefixes, services.events)
    return True


def describe_run(run: StoppedRun) -> str:
    if run.survey:
        return f"the survey of byte range {run.span}"
    if run.span is not None:
        return f"part {run.part} of byte range {run.span}"
    return "the S3 event's run" if run.part is None else f"part {run.part}"


# --- Lambda's invocation record ------------------------------------------------------------


def _from_invocation_record(document: dict[str, Any], settings: SplitFailureSettings) -> list[StoppedSplit]:
    context = document.get("requestContext")
    request_id = context.get("requestId") if isinstance(context, dict) else None
    if not isinstance(request_id, str) or not request_id:
        raise UnreadableFailure("an invocation record without a request id")
    payload = document.get("requestPayload")
    if not is_s3_event(payload):
        raise UnreadableFailure("an invocation record of something else than an S3 event")
    try:
        objects = notified_objects(payload)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UnreadableFailure("an S3 event without bucket, key or ETag") from None
    error_type, error = invocation_error(document, settings)
    stopped = []
    for notified in objects:
        if is_job_file(notified.key) or notified.key.endswith("/"):
            continue  # the splitter skips them: no import to fail
        if not notified.etag:
            raise UnreadableFailure("an S3 event without the object's ETag")
        ref = ImportRef(notified.bucket, notified.key, notified.etag)
        stopped.append(StoppedSplit(ref, StoppedRun(claim=request_id), error, error_type))
    return stopped


def invocation_error(document: dict[str, Any], settings: SplitFailureSettings) -> tuple[str, str]:
    """Lambda's error type, and the ledger's text for it: "the splitter run was stopped:
    Sandbox.Timedout after 3 attempts: Task timed out after 900.00 seconds"."""
    context = document.get("requestContext") or {}
    attempts = _count(context.get("approximateInvokeCount"), settings.event_attempts)
    condition = _error_type(context.get("condition"))
    response = document.get("responsePayload")
    response = response if isinstance(response, dict) else {}
    function_error = _error_type((document.get("responseContext") or {}).get("functionError"))
    error_type = _error_type(response.get("errorType")) or function_error
    tried = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
    if condition and condition != "RetriesExhausted":
        tried += f" ({condition})"
    if not error_type:
        return "", f"the splitter run was given up {tried}"
    if not error_type.startswith(PLATFORM_ERROR_PREFIXES):  # a Python exception: its text may quote a record
        return error_type, f"the splitter run failed: {error_type} {tried} (its message is not kept)"
    message = platform_message(response.get("errorMessage"))
    stopped = f"the splitter run was stopped: {error_type} {tried}"
    return error_type, f"{stopped}: {message}" if message else stopped


def platform_message(text: Any) -> str:
    """A Lambda platform error's message, without its request id, on one line, cut short."""
    if not isinstance(text, str):
        return ""
    text = "".join(character for character in text if character.isprintable() or character.isspace())
    text = " ".join(_REQUEST_ID_PREFIX.sub("", " ".join(text.split()), count=1).split())
    return text if len(text) <= MAX_ERROR_MESSAGE else text[: MAX_ERROR_MESSAGE - 3] + "..."


def _error_type(value: Any) -> str:
    return value if isinstance(value, str) and _ERROR_TYPE.fullmatch(value) else ""


def _count(value: Any, default: int) -> int:
    return value if isinstance(value, int) and value > 0 else default


# --- a continuation task -------------------------------------------------------------------


def _from_continuation_task(body: str, settings: SplitFailureSettings) -> StoppedSplit:
    try:
        task = read_task(body)
        if isinstance(task, Checkpoint):
            span = SpanRead.from_document(task.span).index if task.span else None
            run = StoppedRun(claim=task.claim, part=task.part, span=span)
        else:
            run = StoppedRun(claim=task.claim, span=task.index, survey=True)
        ref = ImportRef(task.bucket, task.key, task.etag)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UnreadableFailure("neither an invocation record nor a continuation task") from None
    if not all(isinstance(value, str) and value for value in (ref.bucket, ref.key, ref.etag, run.claim)):
        raise UnreadableFailure("a continuation task without its import or claim")
    if not all(isinstance(number, int) for number in (run.part or 0, run.span or 0)):
        raise UnreadableFailure("a continuation task whose part or range is not a number")
    runs = settings.continuation_attempts
    error = (
        f"the splitter run was stopped in {describe_run(run)}: its task ran {runs} time"
        f"{'s' if runs != 1 else ''} and never finished (a timeout, out of memory or a crash;"
        " see the splitter's log)"
    )
    return StoppedSplit(ref, run, error)
