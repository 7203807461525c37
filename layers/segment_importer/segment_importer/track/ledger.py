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

import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from segment_importer.import_ref import ImportRef
from segment_importer.settings import LedgerTables
from segment_importer.track.report import utc_now

SPLITTING = "SPLITTING"
SENDING = "SENDING"
COMPLETE = "COMPLETE"
COMPLETE_WITH_ERRORS = "COMPLETE_WITH_ERRORS"
FAILED = "FAILED"
FINAL_STATUSES = frozenset({COMPLETE, COMPLETE_WITH_ERRORS, FAILED})

DELIVERED = "DELIVERED"
DEAD_LETTERED = "DEAD_LETTERED"

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
# The split's counts, which a file split in spans keeps per span (see `with_span_totals`).
_SPLIT_TOTALS = (
    "records_read",
    "bytes_read",
    "messages_queued",
    "batches_queued",
    "rejected",
    "rejects_omitted",
    "filtered",
)
# What every span shares: kept once on the import's item, not with each span's counts.
_KEPT_ONCE = frozenset({"format", "compression", "job", "rejects_key"})
_CONFLICT_RETRIES = 5
_REOPEN = "SET #status = :sending, reopened_at = :now, updated_at = :now REMOVE finished_at"
_NEXT_PART = "#status = :splitting AND (attribute_not_exists(split_part) OR split_part < :part)"
_BATCH_RESOLUTION = "SET #state = :state, resolved_at = :now, message_count = :messages"
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class Ledger:
    """Reads and writes the two ledger tables; takes its DynamoDB client and table names."""

    def __init__(
        self,
        dynamodb: Any,
        imports_table: str,
        batches_table: str,
        *,
        retention_days: int = 0,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._db = dynamodb
        self._imports = imports_table
        self._batches = batches_table
        self._retention_seconds = retention_days * 86_400  # 0: items never expire
        self._clock = clock

    @classmethod
    def for_tables(cls, dynamodb: Any, tables: LedgerTables | None) -> Ledger | None:
        """The ledger a function's settings name, or None where none is configured."""
        if tables is None:
            return None
        return cls(dynamodb, tables.imports, tables.batches, retention_days=tables.retention_days)

    def _expiry(self) -> dict[str, int]:
        """The TTL attribute DynamoDB deletes items by (the ledger holds keys and error texts)."""
        if not self._retention_seconds:
            return {}
        return {"expires_at": int(time.time()) + self._retention_seconds}

    # --- splitter ------------------------------------------------------------------------

    def start_split(self, ref: ImportRef, size_bytes: int, request_id: str) -> bool:
        """Claim the import for this splitter invocation; False if another already has it.

        A new import, a FAILED one, or this same request (Lambda retries an async event
        under the same request id) may start; a repeated S3 event for an import that is
        splitting, sending or complete may not.
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
            "started_at": now,
            "updated_at": now,
            **dict.fromkeys(_COUNTERS, 0),
            **self._expiry(),
        }
        try:
            self._db.put_item(
                TableName=self._imports,
                Item=_to_dynamo(item),
                ConditionExpression=(
                    "attribute_not_exists(import_id) OR #status = :failed OR splitter_request_id = :rid"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_to_dynamo({":failed": FAILED, ":rid": request_id}),
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def claim_part(self, ref: ImportRef, part: int) -> bool:
        """Admit part `part` of a continued split once; False for a repeated checkpoint."""
        return self._update_if(
            ref,
            "SET split_part = :part, updated_at = :now",
            _NEXT_PART,
            {":part": part, ":now": self._clock(), ":splitting": SPLITTING},
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

    # --- a split in parallel byte ranges (spans) -----------------------------------------
    # Each span's survey, part and counts live in an item of its own, in the batches table
    # under batch number -1 - index: the import's item stays small, and every write to it
    # (one per delivered batch) costs by its size.

    def plan_spans(self, ref: ImportRef, count: int, shape: dict[str, Any]) -> None:
        """The import will be split in `count` spans; `shape` (format, compression, job) is
        kept once for all of them. A repeated plan keeps the counts so far (a claim of the
        file by a new S3 event replaces the whole item instead)."""
        values = {":n": count, ":zero": 0, ":now": self._clock()}
        names = {f"#s{i}": name for i, name in enumerate(shape)}
        values.update({f":s{i}": value for i, value in enumerate(shape.values())})
        shape_update = "".join(f", #s{i} = :s{i}" for i in range(len(shape)))
        self._db.update_item(
            TableName=self._imports,
            Key=_to_dynamo({"import_id": ref.import_id}),
            UpdateExpression=(
                "SET span_count = :n, spans_surveyed = if_not_exists(spans_surveyed, :zero),"
                " spans_done = if_not_exists(spans_done, :zero), updated_at = :now" + shape_update
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_to_dynamo(values),
        )

    def record_survey(
        self, ref: ImportRef, index: int, survey: dict[str, Any]
    ) -> list[dict[str, Any]] | None:
        """Keep one span's survey (counted once, if repeated); once every span is surveyed,
        returns all the surveys in span order, else None."""
        self._first_time(ref, index, {"survey": survey}, "spans_surveyed")
        item = self._item(ref)
        if item is None or item.get("spans_surveyed", 0) < item.get("span_count", 0):
            return None
        return [span.get("survey", {}) for span in self._spans(ref)]

    def begin_span_split(self, ref: ImportRef) -> None:
        """The surveys proved the spans: the import is split in them."""
        self._set(ref, {"split_mode": "spans", "updated_at": self._clock()})

    def claim_span_part(self, ref: ImportRef, index: int, part: int) -> bool:
        """Admit part `part` of span `index` once, while the import is splitting; False for a
        repeated task, or when the import has failed."""
        count = {  # span_parts: how many parts the spans have run, for status and the tests
            "TableName": self._imports,
            "Key": _to_dynamo({"import_id": ref.import_id}),
            "UpdateExpression": "ADD span_parts :one",
            "ConditionExpression": "#status = :splitting",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": _to_dynamo({":splitting": SPLITTING, ":one": 1}),
        }
        claim = {
            **self._span_update(ref, index, "SET part = :part", {":part": part}),
            "ConditionExpression": "attribute_not_exists(part) OR part < :part",
        }
        return self._transact([{"Update": count}, {"Update": claim}])

    def record_span_counts(self, ref: ImportRef, index: int, counts: dict[str, Any], *, done: bool) -> bool:
        """One span's running totals (absolute, safe to repeat); True once every span is done."""
        kept = {name: value for name, value in counts.items() if name not in _KEPT_ONCE}
        if not done:
            self._db.update_item(**self._span_update(ref, index, "SET counts = :value", {":value": kept}))
            return False
        # The import names the first rejects file written; `segment-importer rejects` joins all.
        also = {"rejects_key": counts["rejects_key"]} if counts.get("rejects_key") else {}
        if not self._first_time(ref, index, {"counts": kept, "done": True}, "spans_done", if_not_set=also):
            self._db.update_item(**self._span_update(ref, index, "SET counts = :value", {":value": kept}))
        item = self._item(ref)
        return item is not None and item.get("spans_done", 0) >= item.get("span_count", 0)

    def finish_span_split(self, ref: ImportRef) -> str | None:
        """Every span is split: their totals on the import and status SENDING (once), then
        complete if nothing is pending."""
        totals = _summed(self._spans(ref))
        values = {":sending": SENDING, ":now": self._clock(), ":splitting": SPLITTING}
        update = "SET #status = :sending, split_finished_at = :now, updated_at = :now"
        for number, (name, value) in enumerate(totals.items()):
            update += f", {name} = :t{number}"
            values[f":t{number}"] = value
        if not self._update_if(ref, update, "#status = :splitting", values):
            return None
        return self.complete_if_done(ref)

    def _first_time(
        self,
        ref: ImportRef,
        index: int,
        values: dict[str, Any],
        counter: str,
        *,
        if_not_set: dict[str, Any] | None = None,
    ) -> bool:
        """SET `values` on the span's item and ADD 1 to the import's `counter`, in one
        transaction, if the span's item has no value yet for the last of `values`' names;
        False (nothing written) if it has."""
        names = list(values)
        assignments = ", ".join(f"{name} = :v{number}" for number, name in enumerate(names))
        mark = {
            **self._span_update(
                ref, index, f"SET {assignments}", {f":v{n}": value for n, value in enumerate(values.values())}
            ),
            "ConditionExpression": f"attribute_not_exists({names[-1]})",
        }
        update, counts = f"ADD {counter} :one SET updated_at = :now", {":one": 1, ":now": self._clock()}
        attribute_names = {}
        for number, (name, first) in enumerate((if_not_set or {}).items()):
            update += f", #n{number} = if_not_exists(#n{number}, :n{number})"
            attribute_names[f"#n{number}"], counts[f":n{number}"] = name, first
        count = {
            "TableName": self._imports,
            "Key": _to_dynamo({"import_id": ref.import_id}),
            "UpdateExpression": update,
            "ExpressionAttributeValues": _to_dynamo(counts),
            **({"ExpressionAttributeNames": attribute_names} if attribute_names else {}),
        }
        return self._transact([{"Update": mark}, {"Update": count}])

    def _span_update(self, ref: ImportRef, index: int, update: str, values: dict[str, Any]) -> dict[str, Any]:
        """An UpdateItem request for span `index`'s item (its expiry set like a batch's)."""
        values = {**values, ":now": self._clock()}
        update += ", updated_at = :now"
        if expiry := self._expiry():
            values[":expires"] = expiry["expires_at"]
            update += ", expires_at = :expires"
        return {
            "TableName": self._batches,
            "Key": _to_dynamo({"import_id": ref.import_id, "batch_number": -1 - index}),
            "UpdateExpression": update,
            "ExpressionAttributeValues": _to_dynamo(values),
        }

    def _spans(self, ref: ImportRef) -> list[dict[str, Any]]:
        """The items of the import's spans, in span order."""
        pages = self._db.get_paginator("query").paginate(
            TableName=self._batches,
            KeyConditionExpression="import_id = :id AND batch_number < :zero",
            ExpressionAttributeValues=_to_dynamo({":id": ref.import_id, ":zero": 0}),
            ConsistentRead=True,
        )
        items = [_from_dynamo(item) for page in pages for item in page.get("Items", [])]
        return sorted(items, key=lambda item: -item["batch_number"])

    def _with_span_totals(self, item: dict[str, Any]) -> dict[str, Any]:
        """While a file is split in spans, its totals so far are the sums over its spans
        (once split, they are on the item itself)."""
        if item.get("split_mode") == "spans" and item.get("status") == SPLITTING:
            item.update(_summed(self._spans(ImportRef(item["bucket"], item["key"], item["etag"]))))
        return item

    def _item(self, ref: ImportRef) -> dict[str, Any] | None:
        response = self._db.get_item(
            TableName=self._imports, Key=_to_dynamo({"import_id": ref.import_id}), ConsistentRead=True
        )
        return _from_dynamo(response["Item"]) if "Item" in response else None

    # --- sender --------------------------------------------------------------------------

    def record_delivered(self, ref: ImportRef, batch_number: int, messages: int, refused: int) -> bool:
        """Count a delivered batch once; False if it was already counted as delivered."""
        accepted = messages - refused
        counters = {"batches_delivered": 1, "messages_delivered": accepted, "messages_refused": refused}
        if self._resolve(ref, batch_number, DELIVERED, None, counters, messages):
            return True
        # A batch that was dead-lettered and then redriven moves from failed to delivered.
        moved = {**counters, "batches_failed": -1, "messages_failed": -messages}
        return self._resolve(ref, batch_number, DELIVERED, DEAD_LETTERED, moved, messages)

    def record_dead_lettered(self, ref: ImportRef, batch_number: int, messages: int, reason: str) -> bool:
        """Count a batch on its way to the dead-letter queue; False if already resolved."""
        counters = {"batches_failed": 1, "messages_failed": messages}
        return self._resolve(ref, batch_number, DEAD_LETTERED, None, counters, messages, error=reason)

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
            items.extend(_from_dynamo(item) for item in page.get("Items", []))
        chosen = [self._with_span_totals(item) for item in items if item["key"].startswith(key_prefix)]
        return sorted(chosen, key=lambda item: (item.get("started_at", ""), item["key"]))

    # --- internals -----------------------------------------------------------------------

    def _update_if(self, ref: ImportRef, update: str, condition: str, values: dict[str, Any]) -> bool:
        """A conditional update of the import's item; False when the condition does not hold."""
        try:
            self._db.update_item(
                TableName=self._imports,
                Key=_to_dynamo({"import_id": ref.import_id}),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_to_dynamo(values),
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def _set(self, ref: ImportRef, values: dict[str, Any], *, first_error: str | None = None) -> None:
        names = {f"#f{i}": name for i, name in enumerate(values)}
        assignments = [f"#f{i} = :v{i}" for i in range(len(values))]
        attribute_values = {f":v{i}": value for i, value in enumerate(values.values())}
        if first_error is not None:
            assignments.append("first_error = if_not_exists(first_error, :first_error)")
            attribute_values[":first_error"] = first_error
        self._db.update_item(
            TableName=self._imports,
            Key=_to_dynamo({"import_id": ref.import_id}),
            UpdateExpression="SET " + ", ".join(assignments),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_to_dynamo(attribute_values),
        )

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
            "Key": _to_dynamo({"import_id": ref.import_id, "batch_number": batch_number}),
            "UpdateExpression": resolution,
            "ConditionExpression": "attribute_not_exists(#state)" if from_state is None else "#state = :from",
            "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": _to_dynamo(batch_values),
        }
        count_import = {
            "TableName": self._imports,
            "Key": _to_dynamo({"import_id": ref.import_id}),
            "UpdateExpression": import_update,
            "ExpressionAttributeValues": _to_dynamo(import_values),
        }
        return self._transact([{"Update": mark_batch}, {"Update": count_import}])

    def _transact(self, items: list[dict[str, Any]]) -> bool:
        """Run a transaction; False if a condition failed, retried on write conflicts."""
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._db.transact_write_items(TransactItems=items)
            except ClientError as error:
                if _is_condition_failure(error):
                    return False
                if not _is_conflict(error) or attempt == _CONFLICT_RETRIES - 1:
                    raise
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
            else:
                return True
        return False  # unreachable: the last attempt returns or raises


def _summed(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """The split's totals over the counts of its spans."""
    counts = [span.get("counts") or {} for span in spans]
    totals: dict[str, Any] = {name: sum(count.get(name) or 0 for count in counts) for name in _SPLIT_TOTALS}
    by_reason: dict[str, int] = {}
    for count in counts:
        for reason, number in (count.get("rejected_by_reason") or {}).items():
            by_reason[reason] = by_reason.get(reason, 0) + number
    totals["rejected_by_reason"] = by_reason
    totals["filtered_by"] = _summed_by_name(count.get("filtered_by") for count in counts)
    return totals


def _summed_by_name(counters: Any) -> dict[str, int]:
    totals: dict[str, int] = {}
    for counter in counters:
        for name, number in (counter or {}).items():
            totals[name] = totals.get(name, 0) + number
    return totals


def _counter_update(counters: dict[str, int], now: str, error: str | None) -> tuple[str, dict[str, Any]]:
    adds = [f"{name} :c{i}" for i, name in enumerate(counters)]
    values: dict[str, Any] = {f":c{i}": value for i, value in enumerate(counters.values())}
    sets = ["updated_at = :now"]
    values[":now"] = now
    if error is not None:
        sets += ["last_error = :error", "first_error = if_not_exists(first_error, :error)"]
        values[":error"] = error
    return f"ADD {', '.join(adds)} SET {', '.join(sets)}", values


def _is_condition_failure(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    return code == "TransactionCanceledException" and "ConditionalCheckFailed" in _cancellation_codes(error)


def _is_conflict(error: ClientError) -> bool:
    """Another transaction touched the same import item at the same moment: try again."""
    code = error.response.get("Error", {}).get("Code")
    if code == "TransactionConflictException":
        return True
    return code == "TransactionCanceledException" and "TransactionConflict" in _cancellation_codes(error)


def _cancellation_codes(error: ClientError) -> set[str]:
    reasons = error.response.get("CancellationReasons") or []
    codes = {reason.get("Code", "") for reason in reasons}
    if not codes:  # botocore may only have the codes in the message: "[ConditionalCheckFailed, None]"
        message = error.response.get("Error", {}).get("Message", "")
        codes = {code.strip() for code in message[message.find("[") + 1 : message.rfind("]")].split(",")}
    return codes


def _to_dynamo(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(_dynamo_value(value)) for name, value in values.items()}


def _dynamo_value(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: _dynamo_value(item) for key, item in value.items()}
    return value


def _from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
