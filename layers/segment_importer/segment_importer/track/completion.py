"""When an import completes: its report is rewritten from the ledger with the final counts."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from botocore.exceptions import ClientError

from segment_importer.import_ref import ImportRef
from segment_importer.settings import Prefixes
from segment_importer.track.import_events import ImportEvents
from segment_importer.track.ledger import Ledger
from segment_importer.track.report import report_key, write_report
from segment_importer.track.report_page import publish_report_page

logger = logging.getLogger(__name__)

# Ledger fields that make up the final report, in the order a reader wants them.
FINAL_REPORT_FIELDS = (
    "bucket", "key", "etag", "size_bytes", "format", "compression", "status",
    "records_read", "messages_queued", "batches_queued", "rejected", "rejected_by_reason", "rejects_key",
    "rejects_keys", "rejects_omitted", "filtered", "filtered_by",
    "batches_delivered", "messages_delivered", "messages_refused", "batches_failed", "messages_failed",
    "batches_redriven", "first_error", "last_error", "resolved_error", "reopened_at",
    "job", "started_at", "split_finished_at", "finished_at",
)  # fmt: skip


def final_report(item: dict[str, Any]) -> dict[str, Any]:
    return {name: item.get(name) for name in FINAL_REPORT_FIELDS}


def complete_and_report(
    s3: Any, ledger: Ledger, ref: ImportRef, prefixes: Prefixes, events: ImportEvents | None = None
) -> str | None:
    """Complete the import if every queued batch is resolved, and then rewrite its report and
    announce its end (whoever completes it: the sender, or a redrive that found nothing left)."""
    status = ledger.complete_if_done(ref)
    if status:
        publish_final_report(s3, ledger, ref, prefixes, events)
    return status


def publish_final_report(
    s3: Any, ledger: Ledger, ref: ImportRef, prefixes: Prefixes, events: ImportEvents | None = None
) -> dict[str, Any] | None:
    """Rewrite the report with the ledger's final counts and announce the import's end; returns it."""
    item = ledger.get(ref)
    if item is None:
        return None
    document = final_report(item)
    key = report_key(prefixes.reports, prefixes.imports, ref.key)
    if item.get("members"):  # an archive: its members' summaries stay (the ledger keeps a count)
        document["members"] = _members_of(s3, ref.bucket, key)
    write_report(s3, ref.bucket, key, document)
    publish_report_page(s3, ref.bucket, prefixes, document)  # the same figures as a page, beside it
    if events is not None:
        events.import_finished(document, key)
    logger.info(
        "import finished",
        extra={
            "key": ref.key,
            "status": item.get("status"),
            "messages_delivered": item.get("messages_delivered"),
            "batches_failed": item.get("batches_failed"),
            "rejected": item.get("rejected"),
        },
    )
    return document


def _members_of(s3: Any, bucket: str, key: str) -> list[Any]:
    """The member summaries of the archive's report as its split wrote it."""
    try:
        document = orjson.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except (ClientError, orjson.JSONDecodeError):
        logger.warning("archive report not readable; its members are listed in their own reports")
        return []
    members = document.get("members") if isinstance(document, dict) else None
    return members if isinstance(members, list) else []
