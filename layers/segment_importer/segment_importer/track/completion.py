"""When an import completes: its report is rewritten from the ledger with the final counts."""

from __future__ import annotations

import logging
from typing import Any

from segment_importer.import_ref import ImportRef
from segment_importer.settings import Prefixes
from segment_importer.track.import_events import ImportEvents
from segment_importer.track.ledger import Ledger
from segment_importer.track.report import report_key, write_report

logger = logging.getLogger(__name__)

# Ledger fields that make up the final report, in the order a reader wants them.
FINAL_REPORT_FIELDS = (
    "bucket", "key", "etag", "size_bytes", "format", "compression", "status",
    "records_read", "messages_queued", "batches_queued", "rejected", "rejected_by_reason", "rejects_key",
    "rejects_omitted",
    "batches_delivered", "messages_delivered", "messages_refused", "batches_failed", "messages_failed",
    "first_error", "last_error", "job", "started_at", "split_finished_at", "finished_at",
)  # fmt: skip


def final_report(item: dict[str, Any]) -> dict[str, Any]:
    return {name: item.get(name) for name in FINAL_REPORT_FIELDS}


def publish_final_report(
    s3: Any, ledger: Ledger, ref: ImportRef, prefixes: Prefixes, events: ImportEvents | None = None
) -> dict[str, Any] | None:
    """Rewrite the report with the ledger's final counts and announce the import's end; returns it."""
    item = ledger.get(ref)
    if item is None:
        return None
    document = final_report(item)
    key = report_key(prefixes.reports, prefixes.imports, ref.key)
    write_report(s3, ref.bucket, key, document)
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
