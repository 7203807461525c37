"""The import ledger: where every import stands, in DynamoDB.

Two tables. The imports table has one item per imported file (bucket, key, ETag): its
status, the splitter's counts, the sender's delivered/failed counts, the first and last
error reasons, and the times. The batches table has one item per delivered or dead-lettered
batch; it makes the sender's counting idempotent.

- The splitter is the only writer of the queued counts. It SETs absolute values, so a
  re-run of the same file converges on the same numbers instead of adding them twice.
- The sender resolves a batch in one transaction: it marks the batch item (conditionally:
  only the first resolution of a batch wins) and ADDs to the import's counters. A
  redelivered SQS message, or two senders racing on the same batch, counts once.
- An import completes when its status is SENDING (the splitter has finished) and every
  queued batch is resolved. Whoever sees that first, splitter or sender, makes the
  transition with a conditional update on the status, so it happens exactly once.

- A file split in parallel byte ranges ("spans", see `byte_ranges`) keeps each span's
  survey, part and counts in an item of its own (in the batches table, batch number
  -1 - index), each count SET absolutely by that span's parts; while it splits, readers get
  the totals summed. The import's item counts surveyed and finished spans (ADDed once per
  span, in a transaction with the span's item); the span that finds every span done puts
  the totals on the import and moves it to SENDING.

Statuses: SPLITTING -> SENDING -> COMPLETE | COMPLETE_WITH_ERRORS, or FAILED when the file
cannot be split. COMPLETE_WITH_ERRORS means some records were rejected, refused by Segment
or dead-lettered. No record content is ever stored here; error texts are reason codes and
counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from segment_importer.import_ref import ImportRef
from segment_importer.settings import LedgerTables
from segment_importer.track.ledger_items import ClientError, from_dynamo, is_condition_failure, to_dynamo
from segment_importer.track.ledger_spans import SENDING, SPLITTING, SpanLedger

COMPLETE = "COMPLETE"
COMPLETE_WITH_ERRORS = "COMPLETE_WITH_ERRORS"
FAILED = "FAILED"
FINAL_STATUSES = frozenset({COMPLETE, COMPLETE_WITH_ERRORS, FAILED})
__all__ = [
    "COMPLETE",
    "COMPLETE_WITH_ERRORS",
    "FAILED",
    "FINAL_STATUSES",
    "SENDING",
    "SPLITTING",
    "Ledger",
    "StoppedRun",
]
# What `Ledger.fail_killed_split` found: it marked the import FAILED; it had done so already
# (the same message again); the import has moved on (another run, a restart, a final status);
# no such import.
KILLED, ALREADY_KILLED, MOVED_ON, NOT_FOUND = "killed", "already_killed", "moved_on", "not_found"

DELIVERED = "DELIVERED"
DEAD_LETTERED = "DEAD_LETTERED"
# Moved back from the dead-letter queue: pending again, no longer counted failed (a redriven
# batch that counted as resolved would let the import complete before it was delivered).
REDRIVEN = "REDRIVEN"

_COUNTERS = (
    "records_read",
    "messages_queued",
    "batches_queued",
    "rejected",
    "batches_delivered",
    "messages_delivered",
    "messages_refused",
    "batches_failed",
    "messages_failed",
)
# messages_refused split by the HTTP status they were refused with, e.g. messages_refused_http_413.
REFUSED_STATUS_PREFIX = "messages_refused_http_"
_REOPEN = "SET #status = :sending, reopened_at = :now, updated_at = :now REMOVE finished_at"
_NEXT_PART = (
    "#status = :splitting AND (attribute_not_exists(split_part) OR split_part < :part"
    " OR (split_part = :part AND part_attempt < :attempt))"
)
_SPLIT_COUNTERS = (
    "records_read",
    "bytes_read",
    "messages_queued",
    "batches_queued",
    "rejected",
    "rejects_omitted",
    "filtered",
)
_SPAN_FIELDS = ("span_count", "spans_surveyed", "spans_done", "split_mode", "span_parts")
_BATCH_RESOLUTION = "SET #state = :state, resolved_at = :now, message_count = :messages"


@dataclass(frozen=True, slots=True)
class StoppedRun:
    """A splitter run whose last attempt was stopped (timed out, out of memory, the runtime
    exited), as the ledger knows runs: by the request id that claimed the import (the S3
    event's, which its checkpoints and survey tasks carry on), and the part it ran."""

    claim: str
    part: int | None = None  # a continued part; None: the run the S3 event started
    span: int | None = None  # the byte range of a span's part, or of a survey
    survey: bool = False  # a byte range's survey (part is None)

    @property
    def started_by_event(self) -> bool:
        return self.part is None and self.span is None


class Ledger(SpanLedger):
    """Reads and writes the two ledger tables; takes its DynamoDB client and table names."""

    @classmethod
    def for_tables(cls, dynamodb: Any, tables: LedgerTables | None) -> Ledger | None:
        """The ledger a function's settings name, or None where none is configured."""
        if tables is None:
            return None
        return cls(dynamodb, tables.imports, tables.batches, retention_days=tables.retention_days)

    # --- splitter ------------------------------------------------------------------------

    def start_split(self, ref: ImportRef, size_bytes: int, request_id: str) -> int:
        """Claim the import for this splitter invocation; returns the attempt (1 for a new
        claim), or 0 if another invocation has it.

        A new import, a FAILED one, or this same request (Lambda retries an async event
        under the same request id) may start; a repeated S3 event for an import that is
        splitting, sending or complete may not. A restart keeps the sender's counters: the
        batches they count stay resolved in the batches table, and the split queues them
        again under the same numbers, so they must not be counted from zero.
        """
        now = self._clock()
        item = {
            "import_id": ref.import_id,
            "bucket": ref.bucket,
            "key": ref.key,
            "etag": ref.etag,
            "size_bytes": size_bytes,
            "status": SPLITTING,
            "splitter_request_id": request_id,
            "split_attempt": 1,
            "started_at": now,
            "updated_at": now,
            **dict.fromkeys(_COUNTERS, 0),
            **self._expiry(),
        }
        try:
            self._db.put_item(
                TableName=self._imports,
                Item=to_dynamo(item),
                ConditionExpression="attribute_not_exists(import_id)",
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
        else:
            return 1
        return self._restart_split(ref, size_bytes, request_id)

    def _restart_split(self, ref: ImportRef, size_bytes: int, request_id: str) -> int:
        """The split starts over: its own counts from zero, the sender's kept (see start_split)."""
        values = {
            ":splitting": SPLITTING,
            ":rid": request_id,
            ":size": size_bytes,
            ":now": self._clock(),
            ":zero": 0,
            ":one": 1,
            ":none": {},
            ":no_keys": [],
        }
        split_counts = ", ".join(f"{name} = :zero" for name in _SPLIT_COUNTERS)
        restart = (
            f"SET #status = :splitting, splitter_request_id = :rid, size_bytes = :size, {split_counts},"
            " rejected_by_reason = :none, rejects_keys = :no_keys, updated_at = :now, started_at = :now"
        )
        forget = " REMOVE split_part, part_attempt, finished_at, split_finished_at, last_error, rejects_key"
        retry = restart + ", split_attempt = if_not_exists(split_attempt, :zero) + :one" + forget
        attempt = self._update_returning(ref, retry, "splitter_request_id = :rid", values, "split_attempt")
        if attempt:  # Lambda's retry of the same invocation
            return attempt
        # A failed import dropped again: a split in byte ranges is planned afresh.
        again = restart + ", split_attempt = :one" + forget + ", " + ", ".join(_SPAN_FIELDS)
        failed = {**values, ":failed": FAILED}
        attempt = self._update_returning(ref, again, "#status = :failed", failed, "split_attempt")
        if attempt:
            self.forget_spans(ref)
        return attempt

    def claim_part(self, ref: ImportRef, part: int, attempt: int = 1) -> bool:
        """Admit part `part` of a continued split: once per delivery of its checkpoint.

        A repeated checkpoint (another copy, the same receive count) or one of a part already
        passed is refused; a redelivery after a failed or killed run (a higher receive count
        `attempt`) runs the part again, from the same checkpoint, giving the same batches.
        """
        return self._update_if(
            ref,
            "SET split_part = :part, part_attempt = :attempt, updated_at = :now",
            _NEXT_PART,
            {":part": part, ":attempt": attempt, ":now": self._clock(), ":splitting": SPLITTING},
        )

    def record_split_progress(self, ref: ImportRef, counts: dict[str, Any]) -> None:
        """The splitter's running totals (absolute values, safe to repeat)."""
        self._set(ref, {**counts, "updated_at": self._clock()})

    def finish_split(self, ref: ImportRef, counts: dict[str, Any]) -> str | None:
        """Final split counts; status SENDING, or straight to complete if nothing is pending."""
        self._set(ref, {**counts, "status": SENDING, "split_finished_at": self._clock()})
        return self.complete_if_done(ref)

    def fail_split(self, ref: ImportRef, error: str, counts: dict[str, Any]) -> None:
        now = self._clock()
        self._set(
            ref, {**counts, "status": FAILED, "finished_at": now, "last_error": error}, first_error=error
        )

    def fail_killed_split(self, ref: ImportRef, run: StoppedRun, error: str) -> str:
        """FAILED, with `error` and the counts recorded so far, for an import whose splitter
        run was stopped for good (its code never got to `fail_split`), but only while the
        import is SPLITTING and waits on that very run: claimed by the same request id, and
        - the S3 event's run: no part continued it and no byte ranges were planned;
        - a continued part: the ledger's last admitted part is this one, or the one before
          (this one was stopped before it was admitted);
        - a byte range's part or survey: its range has not moved past it.
        Anything else (a restart, a later part, SENDING, COMPLETE) is left as it is. Returns
        KILLED, ALREADY_KILLED (this message, again), MOVED_ON or NOT_FOUND."""
        values: dict[str, Any] = {":splitting": SPLITTING, ":claim": run.claim}
        condition = "#status = :splitting AND splitter_request_id = :claim"
        totals: dict[str, Any] = {}
        if run.started_by_event:
            condition += " AND attribute_not_exists(split_part) AND attribute_not_exists(span_count)"
        elif run.span is None:
            condition += " AND (attribute_not_exists(split_part) OR split_part <= :part)"
            values[":part"] = run.part
        elif self._span_waits_on(ref, run):
            totals = self.span_totals(ref)  # what the ranges queued: the import's item had only their sum
        else:
            return self._after_kill(ref, run, error)
        now = self._clock()
        failed = {**totals, "status": FAILED, "finished_at": now, "updated_at": now, "last_error": error}
        if self._set_if(ref, failed, condition, values, first_error=error):
            return KILLED
        return self._after_kill(ref, run, error)

    def _span_waits_on(self, ref: ImportRef, run: StoppedRun) -> bool:
        """Whether the run's byte range has not moved past it: not yet surveyed (a survey), or
        not done and no later part admitted (a span's part)."""
        spans = [span for span in self._spans(ref) if span["batch_number"] == -1 - (run.span or 0)]
        span = spans[0] if spans else {}
        if run.survey:
            return "survey" not in span
        return not span.get("done") and span.get("part", -1) <= (run.part or 0)

    def _after_kill(self, ref: ImportRef, run: StoppedRun, error: str) -> str:
        item = self._item(ref)
        if item is None:
            return NOT_FOUND
        same = item.get("splitter_request_id") == run.claim and item.get("last_error") == error
        return ALREADY_KILLED if item.get("status") == FAILED and same else MOVED_ON

    # --- sender --------------------------------------------------------------------------

    def record_delivered(
        self,
        ref: ImportRef,
        batch_number: int,
        messages: int,
        refused: int,
        *,
        refused_by_status: Mapping[int, int] | None = None,
    ) -> bool:
        """Count a delivered batch once; False if it was already counted as delivered.
        `refused_by_status` splits `refused` by the HTTP status (`messages_refused_http_<status>`),
        so a 413 from a proxy is reported as a 413, not as Segment's 400."""
        accepted = messages - refused
        counters = {"batches_delivered": 1, "messages_delivered": accepted, "messages_refused": refused}
        by_status = (refused_by_status or {}).items()
        counters |= {f"{REFUSED_STATUS_PREFIX}{status}": count for status, count in by_status if count}
        if self._resolve(ref, batch_number, DELIVERED, None, counters, messages):
            return True
        redriven = {**counters, "batches_redriven": -1}
        if self._resolve(ref, batch_number, DELIVERED, REDRIVEN, redriven, messages):
            return True
        # Dead-lettered, then moved back without the ledger knowing: from failed to delivered.
        moved = {**counters, "batches_failed": -1, "messages_failed": -messages}
        return self._resolve(ref, batch_number, DELIVERED, DEAD_LETTERED, moved, messages)

    def record_dead_lettered(self, ref: ImportRef, batch_number: int, messages: int, reason: str) -> bool:
        """Count a batch on its way to the dead-letter queue; False if already resolved."""
        counters = {"batches_failed": 1, "messages_failed": messages}
        if self._resolve(ref, batch_number, DEAD_LETTERED, None, counters, messages, error=reason):
            return True
        again = {**counters, "batches_redriven": -1}
        return self._resolve(ref, batch_number, DEAD_LETTERED, REDRIVEN, again, messages, error=reason)

    def record_redriven(self, ref: ImportRef, batch_number: int, messages: int) -> bool:
        """A dead-lettered batch is moved back to the work queue: pending again, not failed;
        False if the ledger does not hold it as dead-lettered."""
        counters = {"batches_failed": -1, "messages_failed": -messages, "batches_redriven": 1}
        return self._resolve(ref, batch_number, REDRIVEN, DEAD_LETTERED, counters, messages)

    def complete_if_done(self, ref: ImportRef) -> str | None:
        """Make the final transition if every queued batch is resolved; returns the new status."""
        item = self.get(ref)
        if not item or item.get("status") != SENDING:
            return None
        resolved = item["batches_delivered"] + item["batches_failed"]
        if resolved < item["batches_queued"]:
            return None
        errors = item["batches_failed"] or item["rejected"] or item["messages_refused"]
        status = COMPLETE_WITH_ERRORS if errors else COMPLETE
        values = {":status": status, ":now": self._clock(), ":sending": SENDING}
        finish = "SET #status = :status, finished_at = :now, updated_at = :now"
        if not item["batches_failed"] and item.get("last_error"):
            # Every dead-lettered batch was redriven and delivered: its error is history.
            finish += ", resolved_error = :resolved REMOVE first_error, last_error"
            values[":resolved"] = item["last_error"]
        # Only one caller can move it out of SENDING: the others see the condition fail.
        return status if self._update_if(ref, finish, "#status = :sending", values) else None

    def reopen(self, ref: ImportRef) -> bool:
        """Back to SENDING after its dead-lettered batches were redriven; False if not finished."""
        values = {":sending": SENDING, ":now": self._clock(), ":with_errors": COMPLETE_WITH_ERRORS}
        return self._update_if(ref, _REOPEN, "#status = :with_errors", values)

    # --- reading -------------------------------------------------------------------------

    def get(self, ref: ImportRef) -> dict[str, Any] | None:
        item = self._item(ref)
        return self._with_span_totals(item) if item else None

    def list_imports(self, key_prefix: str = "") -> list[dict[str, Any]]:
        """Every import whose key starts with `key_prefix`, oldest first."""
        items: list[dict[str, Any]] = []
        for page in self._db.get_paginator("scan").paginate(TableName=self._imports, ConsistentRead=True):
            items.extend(from_dynamo(item) for item in page.get("Items", []))
        chosen = [self._with_span_totals(item) for item in items if item["key"].startswith(key_prefix)]
        return sorted(chosen, key=lambda item: (item.get("started_at", ""), item["key"]))

    # --- internals -----------------------------------------------------------------------

    def _resolve(
        self,
        ref: ImportRef,
        batch_number: int,
        state: str,
        from_state: str | None,
        counters: dict[str, int],
        messages: int,
        *,
        error: str | None = None,
    ) -> bool:
        """One transaction: mark the batch (if in `from_state`, or new) and add to the import."""
        now = self._clock()
        batch_values: dict[str, Any] = {":state": state, ":now": now, ":messages": messages}
        resolution = _BATCH_RESOLUTION
        if expiry := self._expiry():
            batch_values[":expires"] = expiry["expires_at"]
            resolution += ", expires_at = :expires"
        if from_state is not None:
            batch_values[":from"] = from_state
        import_update, import_values = _counter_update(counters, now, error)
        mark_batch = {
            "TableName": self._batches,
            "Key": to_dynamo({"import_id": ref.import_id, "batch_number": batch_number}),
            "UpdateExpression": resolution,
            "ConditionExpression": "attribute_not_exists(#state)" if from_state is None else "#state = :from",
            "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": to_dynamo(batch_values),
        }
        count_import = {
            "TableName": self._imports,
            "Key": to_dynamo({"import_id": ref.import_id}),
            "UpdateExpression": import_update,
            "ExpressionAttributeValues": to_dynamo(import_values),
        }
        return self._transact([{"Update": mark_batch}, {"Update": count_import}])


def _counter_update(counters: dict[str, int], now: str, error: str | None) -> tuple[str, dict[str, Any]]:
    adds = [f"{name} :c{i}" for i, name in enumerate(counters)]
    values: dict[str, Any] = {f":c{i}": value for i, value in enumerate(counters.values())}
    sets = ["updated_at = :now"]
    values[":now"] = now
    if error is not None:
        sets += ["last_error = :error", "first_error = if_not_exists(first_error, :error)"]
        values[":error"] = error
    return f"ADD {', '.join(adds)} SET {', '.join(sets)}", values
