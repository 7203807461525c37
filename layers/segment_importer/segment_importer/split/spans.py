"""A large plain NDJSON or CSV file, split in parallel byte ranges ("spans").

How the spans give exactly the sequential read is in `byte_ranges`. Here is who does what:

1. **Plan** (the invocation the S3 event starts): `survey_tasks` decides whether a file is
   split in spans: plain (not gzip) NDJSON or CSV, larger than the span size, and for CSV a
   header provably on one line, in an encoding where a newline is one byte. `SpanPlanning`
   records the plan in the ledger and queues one survey task per span on the continuation
   queue.
2. **Survey** (one invocation per span, in parallel): `survey_span` aligns the span, counts
   its newlines and, for CSV, proves its rows are one line each. The survey that completes
   the set dispatches (`dispatch`): one checkpoint per span, numbered from the lines before
   it; or, when a proof fails, one sequential checkpoint, and the file is split as any other.
   A repeated survey or dispatch is harmless: the ledger admits each span's part once.
3. **Split** (one chain of parts per span): the splitter's ordinary part, reading the span's
   bytes only. Its batches are numbered from `index * SPAN_BATCH_STRIDE`, so batch numbers
   stay unique within the import. `finish_span` counts it done; the last one moves the
   import on to sending.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from segment_importer.import_ref import ImportRef
from segment_importer.job import JobOptions, JobOptionsError, columns_by_position
from segment_importer.mapping.mapper import column_collisions
from segment_importer.mapping.shaping import redacted
from segment_importer.read.byte_ranges import (
    AlignedSpan,
    SpanRead,
    SpanSurvey,
    csv_header,
    csv_span_problem,
    first_lines,
    plan_spans,
    spans_tile,
)
from segment_importer.read.formats import MAX_RECORD_BYTES, FileFormatError, open_records, plain_shape
from segment_importer.read.reader import Format
from segment_importer.read.registry import reader_for
from segment_importer.settings import Prefixes
from segment_importer.split.continuation import Checkpoint, SurveyTask, hand_over, hand_over_all
from segment_importer.split.s3_objects import ObjectIdentity, open_body, read_range
from segment_importer.track.completion import final_report, publish_final_report
from segment_importer.track.import_events import ImportEvents
from segment_importer.track.ledger import Ledger
from segment_importer.track.report import (
    STATUS_CONTINUING,
    STATUS_FAILED,
    STATUS_QUEUED,
    ImportReport,
    report_key,
    write_report,
)

logger = logging.getLogger(__name__)

# Batches of span k are numbered from k * SPAN_BATCH_STRIDE + 1: a span would need more
# than a million batches (2.5 billion messages) to run into the next one's numbers.
SPAN_BATCH_STRIDE = 1_000_000
MAX_SPANS = 500  # a larger file gets larger spans; each span is one more ledger item
_HEAD_BYTES = MAX_RECORD_BYTES + (64 << 10)  # enough for any CSV header line


def survey_tasks(
    s3: Any,
    ref: ImportRef,
    identity: ObjectIdentity,
    job: JobOptions,
    span_bytes: int,
    *,
    claim: str,
    started_at: str = "",
) -> list[SurveyTask]:
    """The survey tasks of a file to split in spans; empty when it is split sequentially."""
    if not span_bytes or identity.size <= span_bytes:
        return []
    head = read_range(s3, ref.bucket, ref.key, identity, 0, min(identity.size, _HEAD_BYTES))
    try:
        shape = plain_shape(head, ref.key)
    except FileFormatError:
        return []  # the sequential split reports it
    if shape is None or not reader_for(shape.format).span_splittable:
        return []
    spans = plan_spans(identity.size, span_bytes, MAX_SPANS)
    header_line = header_end = 0
    if reader_for(shape.format).has_header:
        header = csv_header(head, shape.delimiter, job.encoding)
        if header is None or header.end > spans[0][1]:
            return []
        if not _header_reads(head[: header.end], ref.key, job, shape.format):
            return []
        header_line, header_end = header.line, header.end
    document = job.to_document()
    return [
        SurveyTask(
            bucket=ref.bucket,
            key=ref.key,
            etag=ref.etag,
            size_bytes=identity.size,
            claim=claim,
            index=index,
            count=len(spans),
            start=start,
            end=end,
            format=shape.format.value,
            delimiter=shape.delimiter,
            header_line=header_line,
            header_end=header_end,
            job=document,
            started_at=started_at,
        )
        for index, (start, end) in enumerate(spans)
    ]


class SpanPlanning:
    """Starts a split in spans: the plan in the ledger, a survey task per span on the queue."""

    def __init__(self, s3: Any, sqs: Any, ledger: Ledger, queue_url: str) -> None:
        self._s3, self._sqs, self._ledger, self._queue_url = s3, sqs, ledger, queue_url

    def start(
        self, ref: ImportRef, report: ImportReport, job: JobOptions, span_bytes: int, *, claim: str
    ) -> int:
        """Plan the split and queue the surveys; returns the number of spans, 0 when the file
        is split sequentially. `report` gets the format and the status CONTINUING."""
        identity = ObjectIdentity(ref.etag, report.size_bytes)
        tasks = survey_tasks(
            self._s3, ref, identity, job, span_bytes, claim=claim, started_at=report.started_at
        )
        if not tasks:
            return 0
        report.format, report.compression = tasks[0].format, "none"
        shape = {"format": report.format, "compression": report.compression, "job": redacted(report.job)}
        self._ledger.plan_spans(ref, len(tasks), shape)
        hand_over_all(self._sqs, self._queue_url, tasks)
        report.status = STATUS_CONTINUING
        logger.info("file to split in byte ranges", extra={"key": ref.key, "spans": len(tasks)})
        return len(tasks)


def finish_span(
    s3: Any,
    ledger: Ledger,
    prefixes: Prefixes,
    ref: ImportRef,
    index: int,
    report: ImportReport,
    events: ImportEvents | None = None,
) -> None:
    """Count a finished (or failed) span; the last span to finish moves the import on to
    sending and writes its report with the totals of every span."""
    if report.status == STATUS_FAILED:
        ledger.record_span_counts(ref, index, report.split_counts(), done=False)
        ledger.fail_split(ref, report.error or "failed", ledger.span_totals(ref))  # what was queued
        if events is not None:
            failed = ledger.get(ref)
            events.import_finished(
                final_report(failed or {}), report_key(prefixes.reports, prefixes.imports, ref.key)
            )
        return
    if not ledger.record_span_counts(ref, index, report.split_counts(), done=True):
        return
    item = ledger.get(ref)
    if item is None:
        return
    # Written before the move to SENDING: a sender that then completes the import rewrites it.
    document = {**final_report(item), "status": STATUS_QUEUED}
    write_report(s3, ref.bucket, report_key(prefixes.reports, prefixes.imports, ref.key), document)
    if ledger.finish_span_split(ref):
        publish_final_report(s3, ledger, ref, prefixes, events)


def _header_reads(header: bytes, key: str, job: JobOptions, fmt: Format) -> bool:
    """Whether the reader accepts the header and the job's `columns` fit it (else the
    sequential split reports why, once, before any row)."""
    try:
        records = open_records(io.BytesIO(header), key, csv_encoding=job.encoding, known_format=fmt)
        columns = columns_by_position(job.columns, records.columns) if job.columns else {}
    except (FileFormatError, JobOptionsError):
        return False
    return not column_collisions(columns, records.columns)


def survey_span(s3: Any, task: SurveyTask) -> SpanSurvey:
    """Align one span, count its newlines, and (CSV) prove its rows are one line each."""
    identity = ObjectIdentity(task.etag, task.size_bytes)
    body = open_body(s3, task.bucket, task.key, identity, max(task.start - 1, 0))
    try:
        span = AlignedSpan(body.read, (task.start, task.end), task.size_bytes)
        problem = None
        if reader_for(task.format).records_span_lines:
            encoding = JobOptions().merged_with(task.job).encoding
            problem = csv_span_problem(span, task.delimiter, encoding, MAX_RECORD_BYTES)
        span.read_to_end()
    finally:
        body.close()  # the span may end long before the object does
    return SpanSurvey(span.start, span.end, span.newlines, problem)


def record_and_dispatch(
    ledger: Ledger, sqs: Any, queue_url: str, task: SurveyTask, survey: SpanSurvey
) -> bool:
    """Record a survey; the one that completes the set dispatches. True if it dispatched."""
    ref = ImportRef(task.bucket, task.key, task.etag)
    surveys = ledger.record_survey(ref, task.index, survey.to_document())
    if surveys is None:
        return False
    found = [SpanSurvey.from_document(document) for document in surveys]
    dispatch(ledger, sqs, queue_url, task, found)
    return True


def dispatch(ledger: Ledger, sqs: Any, queue_url: str, task: SurveyTask, found: list[SpanSurvey]) -> None:
    """Queue a checkpoint per span, or one sequential checkpoint when the spans are not proven."""
    ref = ImportRef(task.bucket, task.key, task.etag)
    problem = next((survey.problem for survey in found if survey.problem), None)
    if problem is None and not spans_tile(found, task.size_bytes):
        problem = "the byte ranges do not line up"  # a changed object would fail its ETag first
    if problem is not None:
        logger.warning("file split sequentially", extra={"key": task.key, "reason": problem})
        hand_over(sqs, queue_url, _checkpoint(task, part=1, span=None))
        return
    ledger.begin_span_split(ref)
    checkpoints = []
    for index, (survey, first_line) in enumerate(zip(found, first_lines(found), strict=True)):
        span = SpanRead(
            index=index,
            count=task.count,
            start=survey.start,
            end=survey.end,
            first_line=first_line,
            format=task.format,
            header_line=task.header_line,
            header_end=task.header_end,
        )
        checkpoints.append(_checkpoint(task, part=0, span=span))
    hand_over_all(sqs, queue_url, checkpoints)
    logger.info("file split in byte ranges", extra={"key": task.key, "spans": task.count})


def first_record(span: SpanRead) -> int:
    """The number of the span's first record: its line (NDJSON) or its data row (CSV)."""
    if reader_for(span.format).has_header:
        return span.first_line - span.header_line if span.index else 1
    return span.first_line


def _checkpoint(task: SurveyTask, *, part: int, span: SpanRead | None) -> Checkpoint:
    start = ImportReport(
        bucket=task.bucket,
        key=task.key,
        etag=task.etag,
        size_bytes=task.size_bytes,
        compression="none",
        job=task.job,
        started_at=task.started_at,
    )
    after_record = first_record(span) - 1 if span else 0
    return Checkpoint.build(
        start, task.claim, part=part, after_record=after_record, span=span.to_document() if span else None
    )
