"""The per-file import report: what was read, queued and rejected, and the outcome."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

STATUS_QUEUED = "QUEUED"  # every valid record is on the work queue
STATUS_DRY_RUN = "DRY_RUN"  # validated and counted, nothing queued
STATUS_FAILED = "FAILED"  # the file could not be read to its end; see `error`
STATUS_SKIPPED = "SKIPPED"  # not an export (a job file or a folder marker)


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
    messages_queued: int = 0
    batches_queued: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rejects_key: str | None = None
    job: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2)


def derived_key(prefix: str, key: str, imports_prefix: str, suffix: str) -> str:
    """`imports/a/b.csv` -> `<prefix>a/b.csv<suffix>`: reports and rejects mirror the drop."""
    relative = key.removeprefix(imports_prefix)
    return f"{prefix}{relative}{suffix}"
