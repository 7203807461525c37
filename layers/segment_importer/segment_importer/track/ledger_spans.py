"""A file split in parallel byte ranges ("spans", see `read.byte_ranges`) in the ledger.

Each span's survey, part and counts live in an item of its own, in the batches table under
batch number -1 - index: the import's item stays small, and every write to it (one per
delivered batch) costs by its size.
"""

from __future__ import annotations

from typing import Any

from segment_importer.import_ref import ImportRef
from segment_importer.track.ledger_items import LedgerItems, from_dynamo, to_dynamo

SPLITTING = "SPLITTING"
SENDING = "SENDING"
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


class SpanLedger(LedgerItems):
    """The ledger's writes and reads for a split in spans."""

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
            Key=to_dynamo({"import_id": ref.import_id}),
            UpdateExpression=(
                "SET span_count = :n, spans_surveyed = if_not_exists(spans_surveyed, :zero),"
                " spans_done = if_not_exists(spans_done, :zero), updated_at = :now" + shape_update
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=to_dynamo(values),
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

    def claim_span_part(self, ref: ImportRef, index: int, part: int, attempt: int = 1) -> bool:
        """Admit part `part` of span `index` while the import is splitting, once per delivery
        of its checkpoint (see `Ledger.claim_part`); False for a repeated task, or when the
        import has failed."""
        count = {  # span_parts: how many parts the spans have run, for status and the tests
            "TableName": self._imports,
            "Key": to_dynamo({"import_id": ref.import_id}),
            "UpdateExpression": "ADD span_parts :one",
            "ConditionExpression": "#status = :splitting",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": to_dynamo({":splitting": SPLITTING, ":one": 1}),
        }
        claim = {
            **self._span_update(
                ref, index, "SET part = :part, part_attempt = :attempt", {":part": part, ":attempt": attempt}
            ),
            "ConditionExpression": (
                "attribute_not_exists(part) OR part < :part OR (part = :part AND part_attempt < :attempt)"
            ),
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
            "Key": to_dynamo({"import_id": ref.import_id}),
            "UpdateExpression": update,
            "ExpressionAttributeValues": to_dynamo(counts),
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
            "Key": to_dynamo({"import_id": ref.import_id, "batch_number": -1 - index}),
            "UpdateExpression": update,
            "ExpressionAttributeValues": to_dynamo(values),
        }

    def _spans(self, ref: ImportRef) -> list[dict[str, Any]]:
        """The items of the import's spans, in span order."""
        pages = self._db.get_paginator("query").paginate(
            TableName=self._batches,
            KeyConditionExpression="import_id = :id AND batch_number < :zero",
            ExpressionAttributeValues=to_dynamo({":id": ref.import_id, ":zero": 0}),
            ConsistentRead=True,
        )
        items = [from_dynamo(item) for page in pages for item in page.get("Items", [])]
        return sorted(items, key=lambda item: -item["batch_number"])

    def _with_span_totals(self, item: dict[str, Any]) -> dict[str, Any]:
        """While a file is split in spans, its totals so far are the sums over its spans
        (once split, they are on the item itself)."""
        if item.get("split_mode") == "spans" and item.get("status") == SPLITTING:
            item.update(_summed(self._spans(ImportRef(item["bucket"], item["key"], item["etag"]))))
        return item

    def forget_spans(self, ref: ImportRef) -> None:
        """Delete the items of the import's spans (a failed import starts over)."""
        for span in self._spans(ref):
            key = {"import_id": ref.import_id, "batch_number": span["batch_number"]}
            self._db.delete_item(TableName=self._batches, Key=to_dynamo(key))

    def span_totals(self, ref: ImportRef) -> dict[str, Any]:
        """The split's totals so far, summed over its spans."""
        return _summed(self._spans(ref))

    def complete_if_done(self, ref: ImportRef) -> str | None:
        raise NotImplementedError  # the Ledger's


def _summed(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """The split's totals over the counts of its spans."""
    counts = [span.get("counts") or {} for span in spans]
    totals: dict[str, Any] = {name: sum(count.get(name) or 0 for count in counts) for name in _SPLIT_TOTALS}
    by_reason: dict[str, int] = {}
    for count in counts:
        for reason, number in (count.get("rejected_by_reason") or {}).items():
            by_reason[reason] = by_reason.get(reason, 0) + number
    totals["rejected_by_reason"] = by_reason
    totals["rejects_keys"] = [key for count in counts for key in count.get("rejects_keys") or []]
    totals["filtered_by"] = _summed_by_name(count.get("filtered_by") for count in counts)
    return totals


def _summed_by_name(counters: Any) -> dict[str, int]:
    totals: dict[str, int] = {}
    for counter in counters:
        for name, number in (counter or {}).items():
            totals[name] = totals.get(name, 0) + number
    return totals
