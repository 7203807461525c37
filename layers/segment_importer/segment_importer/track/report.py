"""The per-file import report: what was read, queued and rejected, and the outcome."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from segment_importer.mapping.shaping import redacted
from segment_importer.track.keys import derived_key, report_key

__all__ = ["ImportReport", "derived_key", "report_key", "utc_now", "write_report"]

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
    rejects_key: str | None = None  # the first rejects file written (see `rejects_keys`)
    rejects_keys: list[str] = field(default_factory=list)  # every part's, in file order
    rejects_omitted: int = 0  # counted in `rejected` but not listed: the rejects file was full
    # Valid messages the job's shaping rules left out (neither sent nor rejected), per rule.
    filtered: int = 0
    filtered_by: dict[str, int] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # An archive's: one summary per member, each split as an import of its own (split.archives).
    members: list[dict[str, Any]] = field(default_factory=list)
    # Records whose declared messageId repeated with another event/user/time (not merged).
    message_id_collisions: int = 0
    # Records whose declared messageId repeated with the same event/user/time but other
    # content: one messageId, so Segment keeps the first (warned: they may be distinct).
    message_id_merges: int = 0
    # What was tolerated and how (a repeated CSV column read as `name_2`): worth a look.
    warnings: list[str] = field(default_factory=list)
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        if not self.members:  # only an archive's report lists members
            del document["members"]
        document["job"] = redacted(self.job)
        return document

    def summary(self) -> dict[str, Any]:
        """The handler's answer: no record content, just where the file stands."""
        return {"key": self.key, "status": self.status, "messages_queued": self.messages_queued}

    def split_counts(self) -> dict[str, Any]:
        """What the ledger keeps of the split: counts and shapes, never record content.

        An archive's batches are its members' (imports of their own, which the sender credits):
        its own item counts what it held but waits for no batch."""
        if self.members:
            imports = sum(1 for member in self.members if member["status"] != STATUS_SKIPPED)
            return {**self._counts(), "messages_queued": 0, "batches_queued": 0, "members": imports}
        return self._counts()

    def _counts(self) -> dict[str, Any]:
        return {
            "records_read": self.records_read,
            "bytes_read": self.bytes_read,
            "messages_queued": self.messages_queued,
            "batches_queued": self.batches_queued,
            "rejected": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "rejects_key": self.rejects_key,
            "rejects_keys": list(self.rejects_keys),
            "rejects_omitted": self.rejects_omitted,
            "filtered": self.filtered,
            "filtered_by": dict(self.filtered_by),
            "format": self.format,
            "compression": self.compression,
            "job": redacted(self.job),
        }


def write_report(s3: Any, bucket: str, key: str, document: dict[str, Any]) -> None:
    body = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
