"""Splitting a file across invocations: the part budget, the checkpoint and the hand-over.

A file too large for one 15-minute invocation is split in parts. Before the remaining time
runs low (or after `SPLIT_RECORDS_PER_PART` records, a knob for tests and for keeping parts
short), the splitter closes and queues the batch it was filling, so every record up to
the last one it read is on the queue, and sends a checkpoint to the continuation queue.
The splitter function consumes that queue, re-opens the object where the previous part
stopped, and goes on numbering batches from there:
- plain NDJSON and CSV: a ranged GetObject from the byte offset of the next record (for
  CSV after the header's bytes). The CSV reader counts the bytes of the lines it gives the
  csv module, which takes a line only when a row needs one, so the offset after a row is
  exact even when quoted cells hold line breaks;
- gzip NDJSON and CSV: the object is decompressed again and the content before that
  offset is discarded unread (no parsing; gzip cannot seek);
- JSON arrays (and CSV in a multi-byte encoding such as UTF-16): the records earlier parts
  handled are read again and skipped, never mapped or queued.

The ledger admits each part once per delivery of its checkpoint (`Ledger.claim_part`): a
second copy of a checkpoint is refused, and a redelivery after a run that failed or was
killed runs the part again from the same checkpoint. A part reads the same records and
packs them into the same numbered batches every time, so a run that is repeated queues
nothing new: the sender counts each batch number once, Segment dedupes each messageId.
A large plain file can also be split in parallel byte ranges
(`byte_ranges`, `parallel_split`): the same queue carries their survey tasks, and each range
is a chain of parts of its own (`Checkpoint.span`).

The continuation goes through SQS, so Lambda's recursive loop detection would stop a chain
of more than 16 parts: the template sets `RecursiveLoop: Allow` on the splitter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from segment_importer.batch.queueing import SQS_BATCH_ENTRIES, send_entries
from segment_importer.read.records import ResumePoint
from segment_importer.track.report import ImportReport

CHECKPOINT_VERSION = 1
# Check the clock every this many records: cheap enough, and far below a second of work.
_CLOCK_EVERY = 256


@dataclass(slots=True)
class PartBudget:
    """When a part must stop: near the end of the invocation, or after `max_records`."""

    remaining_seconds: Callable[[], float]
    reserve_seconds: float = 60.0  # time to queue the last batch and write rejects and report
    max_records: int = 0  # 0: no limit

    def exhausted(self, records_in_part: int) -> bool:
        if self.count_reached(records_in_part):
            return True
        return records_in_part % _CLOCK_EVERY == 0 and self.remaining_seconds() < self.reserve_seconds

    def count_reached(self, records_in_part: int) -> bool:
        """The part has its `max_records`: it ends right here, on every run of it."""
        return bool(self.max_records) and records_in_part >= self.max_records


@dataclass(slots=True)
class Checkpoint:
    """Where the next part starts, and the counts of the parts before it."""

    bucket: str
    key: str
    etag: str
    size_bytes: int
    claim: str  # the request id that claimed the import in the ledger
    part: int  # the part to run next (the first part is 0)
    after_record: int  # records numbered up to this were handled by earlier parts
    records_read: int
    messages_queued: int
    batches_queued: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rejects_omitted: int = 0
    rejects_keys: list[str] = field(default_factory=list)  # the earlier parts' rejects files
    filtered_by: dict[str, int] = field(default_factory=dict)  # shaping: per rule, earlier parts
    job: dict[str, Any] = field(default_factory=dict)
    # Where record `after_record + 1` starts in the content (decompressed for gzip), so the
    # next part reads from there instead of re-parsing what came before (NDJSON, and CSV in
    # an encoding whose byte lengths are known); a CSV's header ends at `resume_header_end`.
    resume_offset: int | None = None
    resume_header_end: int = 0
    compression: str = ""
    # The format the first part detected: a later part reads on as it, never re-detecting
    # from a line in the middle of the file (headerless Snowplow TSV has nothing else to go by).
    format: str = ""
    started_at: str = ""
    # One byte range of a file split in parallel (a `byte_ranges.SpanRead` document): the
    # counts above are then the range's own, and `part` numbers the range's parts.
    span: dict[str, Any] | None = None

    def to_body(self) -> str:
        return orjson.dumps({"v": CHECKPOINT_VERSION, "checkpoint": asdict(self)}).decode()

    @classmethod
    def build(
        cls,
        report: ImportReport,
        claim: str,
        *,
        part: int,
        after_record: int,
        resume: ResumePoint | None = None,
        span: dict[str, Any] | None = None,
    ) -> Checkpoint:
        """The checkpoint of part `part`, carrying the counts in `report` (the parts before it)."""
        return cls(
            bucket=report.bucket,
            key=report.key,
            etag=report.etag,
            size_bytes=report.size_bytes,
            claim=claim,
            part=part,
            after_record=after_record,
            records_read=report.records_read,
            messages_queued=report.messages_queued,
            batches_queued=report.batches_queued,
            rejected_by_reason=dict(report.rejected_by_reason),
            rejects_omitted=report.rejects_omitted,
            rejects_keys=list(report.rejects_keys),
            filtered_by=dict(report.filtered_by),
            job=report.job,
            started_at=report.started_at,
            resume_offset=resume.offset if resume else None,
            resume_header_end=resume.header_end if resume else 0,
            compression=report.compression,
            format=report.format or "",
            span=span,
        )

    def report(self) -> ImportReport:
        """The report the part starts from: the counts of the parts before it."""
        return ImportReport(
            bucket=self.bucket,
            key=self.key,
            etag=self.etag,
            size_bytes=self.size_bytes,
            compression=self.compression,
            format=self.format,
            records_read=self.records_read,
            messages_queued=self.messages_queued,
            batches_queued=self.batches_queued,
            rejected=sum(self.rejected_by_reason.values()),
            rejected_by_reason=dict(self.rejected_by_reason),
            rejects_key=self.rejects_keys[0] if self.rejects_keys else None,
            rejects_keys=list(self.rejects_keys),
            rejects_omitted=self.rejects_omitted,
            filtered=sum(self.filtered_by.values()),
            filtered_by=dict(self.filtered_by),
            job=self.job,
            started_at=self.started_at,
        )

    def resume_point(self) -> ResumePoint | None:
        """Where the part reads from, when the previous part knew the offset."""
        if self.resume_offset is None:
            return None
        return ResumePoint(self.resume_offset, self.after_record + 1, self.resume_header_end)


@dataclass(slots=True)
class SurveyTask:
    """Survey one byte range of a file split in parallel (see `byte_ranges`)."""

    bucket: str
    key: str
    etag: str
    size_bytes: int
    claim: str  # the request id that claimed the import in the ledger
    index: int
    count: int
    start: int  # the nominal range
    end: int
    format: str
    delimiter: str = ""
    header_line: int = 0
    header_end: int = 0
    job: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""

    def to_body(self) -> str:
        return orjson.dumps({"v": CHECKPOINT_VERSION, "survey": asdict(self)}).decode()


def read_task(body: str) -> Checkpoint | SurveyTask:
    """A continuation queue message: a checkpoint, or a byte range's survey."""
    document = orjson.loads(body)
    if document.get("v") != CHECKPOINT_VERSION:
        raise ValueError(f"unknown checkpoint version {document.get('v')!r}")
    if "survey" in document:
        return SurveyTask(**document["survey"])
    return Checkpoint(**document["checkpoint"])


def hand_over(sqs: Any, queue_url: str, task: Checkpoint | SurveyTask) -> None:
    sqs.send_message(QueueUrl=queue_url, MessageBody=task.to_body())


def hand_over_all(sqs: Any, queue_url: str, tasks: list[Checkpoint] | list[SurveyTask]) -> None:
    """Send tasks ten to a request (entries SQS answers `Failed` are sent again)."""
    for first in range(0, len(tasks), SQS_BATCH_ENTRIES):
        bodies = {str(i): task.to_body() for i, task in enumerate(tasks[first : first + SQS_BATCH_ENTRIES])}
        send_entries(sqs, queue_url, bodies, what="continuation tasks")
