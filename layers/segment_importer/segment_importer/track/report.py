"""The per-file import report: what was read, queued and rejected, and the outcome."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

STATUS_QUEUED = "QUEUED"  # every valid record is on the work queue
STATUS_CONTINUING = "CONTINUING"  # this part is queued; the next part continues the file
STATUS_DRY_RUN = "DRY_RUN"  # validated and counted, nothing queued
STATUS_FAILED = "FAILED"  # the file could not be read to its end; see `error`
STATUS_SKIPPED = "SKIPPED"  # not an export (a job file or a folder marker)
STATUS_DUPLICATE = "DUPLICATE"  # a repeated S3 event for an import already under way or done


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class ImportReport:
    bucket: str
    key: str
    etag: str = ""
    size_bytes: int = 0
    format: str = ""
    compression: str = ""
    status: str = ""
    records_read: int = 0
    # Bytes of the object read so far (stored bytes: compressed for gzip), for progress.
    # A split in byte ranges counts each range's own bytes; the ledger sums them.
    bytes_read: int = 0
    messages_queued: int = 0
    batches_queued: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rejects_key: str | None = None
    rejects_omitted: int = 0  # counted in `rejected` but not listed: the rejects file was full
    job: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """The handler's answer: no record content, just where the file stands."""
        return {"key": self.key, "status": self.status, "messages_queued": self.messages_queued}

    def split_counts(self) -> dict[str, Any]:
        """What the ledger keeps of the split: counts and shapes, never record content."""
        return {
            "records_read": self.records_read,
            "bytes_read": self.bytes_read,
            "messages_queued": self.messages_queued,
            "batches_queued": self.batches_queued,
            "rejected": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "rejects_key": self.rejects_key,
            "rejects_omitted": self.rejects_omitted,
            "format": self.format,
            "compression": self.compression,
            "job": self.job,
        }


def write_report(s3: Any, bucket: str, key: str, document: dict[str, Any]) -> None:
    body = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def report_key(reports_prefix: str, imports_prefix: str, key: str) -> str:
    return derived_key(reports_prefix, key, imports_prefix, ".report.json")


def derived_key(prefix: str, key: str, imports_prefix: str, suffix: str) -> str:
    """`imports/a/b.csv` -> `<prefix>a/b.csv<suffix>`: reports and rejects mirror the drop."""
    relative = key.removeprefix(imports_prefix)
    return f"{prefix}{relative}{suffix}"
