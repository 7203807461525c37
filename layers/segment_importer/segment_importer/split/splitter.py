"""The splitter: one export object -> validated messages -> batches on the work queue.

Streams the object (memory stays flat in the file size), maps and validates each record,
packs messages into batches of one Segment request each, and writes a report and a
rejects file under their own prefixes. Every record read is either queued or rejected.
A file too large for one invocation is split in parts (see `continuation`); a large plain
NDJSON or CSV file in parallel byte ranges (see `parallel_split`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from io import RawIOBase
from typing import Any, BinaryIO, Protocol

from segment_importer.batch.encoding import encode_message
from segment_importer.batch.packing import Batch, BatchLimits, BatchPacker
from segment_importer.batch.queueing import QueueWriter
from segment_importer.deliver.preflight import PreflightFailed, WriteKeyPreflight
from segment_importer.import_ref import ImportRef
from segment_importer.job import JobOptions, JobOptionsError, is_job_file
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.mapping.message_ids import file_identity
from segment_importer.mapping.validation import check_fields, check_size
from segment_importer.metrics import MetricsSink, NullMetrics
from segment_importer.read.byte_ranges import PrefixedBody, SpanRead, span_records
from segment_importer.read.formats import FileFormatError, RecordStream, ResumePoint, open_records
from segment_importer.read.records import SourceRecord
from segment_importer.read.registry import reader_for
from segment_importer.settings import SplitterSettings
from segment_importer.split.continuation import Checkpoint, PartBudget, SurveyTask, hand_over, read_task
from segment_importer.split.s3_objects import (
    ObjectIdentity,
    ProgressStream,
    S3ObjectHandle,
    head,
    load_job_options,
)
from segment_importer.split.spans import (
    SPAN_BATCH_STRIDE,
    SpanPlanning,
    finish_span,
    record_and_dispatch,
    survey_span,
)
from segment_importer.track import reasons
from segment_importer.track.completion import publish_final_report
from segment_importer.track.import_events import ImportEvents
from segment_importer.track.ledger import Ledger
from segment_importer.track.reasons import Reject
from segment_importer.track.rejects import RejectsWriter
from segment_importer.track.report import (
    STATUS_CONTINUING,
    STATUS_DRY_RUN,
    STATUS_DUPLICATE,
    STATUS_FAILED,
    STATUS_QUEUED,
    STATUS_SKIPPED,
    ImportReport,
    derived_key,
    report_key,
    utc_now,
    write_report,
)

logger = logging.getLogger(__name__)
PROGRESS_EVERY_RECORDS = 100_000
PROGRESS_MESSAGE = "split progress"  # the log line the local run's split bar follows


class BatchSink(Protocol):
    batches_queued: int
    messages_queued: int

    def put(self, batch: Batch) -> None: ...
    def flush(self) -> None: ...


class CountingSink:
    """A dry run's queue: counts what would be queued."""

    def __init__(self) -> None:
        self.batches_queued = 0
        self.messages_queued = 0

    def put(self, batch: Batch) -> None:
        self.batches_queued += 1
        self.messages_queued += batch.size

    def flush(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class SplitterServices:
    """What the splitter talks to; built by the handler (or a test) and passed in."""

    s3: Any
    sqs: Any
    ledger: Ledger | None = None
    metrics: MetricsSink = field(default_factory=NullMetrics)
    preflight: WriteKeyPreflight | None = None
    events: ImportEvents | None = None  # told when an import ends in the splitter (failed, or all rejected)


@dataclass(frozen=True, slots=True)
class PartStop:
    """Where a part stopped: after this record, and (NDJSON) where the next line starts."""

    after_record: int
    resume: ResumePoint | None


@dataclass(slots=True)
class _Part:
    """One invocation's share of an import."""

    ref: ImportRef
    report: ImportReport
    claim: str
    number: int = 0
    after_record: int = 0
    resume: ResumePoint | None = None  # where an NDJSON part starts reading
    job: JobOptions | None = None
    rejects: RejectsWriter = field(default_factory=RejectsWriter)
    checkpoint: Checkpoint | None = None  # set when the part hands the rest over
    span: SpanRead | None = None  # the byte range this part reads, in a split in spans
    spans_planned: int = 0  # this invocation only planned a split in spans


def split_import(
    services: SplitterServices,
    bucket: str,
    key: str,
    settings: SplitterSettings,
    *,
    request_id: str = "local",
    budget: PartBudget | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> ImportReport:
    """Split a dropped object, or its first part; returns the report (also written to S3)."""
    report = ImportReport(bucket=bucket, key=key)
    if is_job_file(key) or key.endswith("/"):
        report.status = STATUS_SKIPPED
        return report
    identity = head(services.s3, bucket, key)
    report.etag, report.size_bytes = identity.etag, identity.size
    part = _Part(ImportRef(bucket, key, identity.etag), report, claim=request_id)
    if not _claim(services, settings, part):
        return report
    return _run(services, settings, part, budget, on_bytes)


def resume_import(
    services: SplitterServices,
    checkpoint: Checkpoint,
    settings: SplitterSettings,
    *,
    budget: PartBudget | None = None,
) -> ImportReport:
    """Run the next part of an import from its checkpoint."""
    report = ImportReport(
        bucket=checkpoint.bucket,
        key=checkpoint.key,
        etag=checkpoint.etag,
        size_bytes=checkpoint.size_bytes,
        records_read=checkpoint.records_read,
        messages_queued=checkpoint.messages_queued,
        batches_queued=checkpoint.batches_queued,
        rejected=sum(checkpoint.rejected_by_reason.values()),
        rejected_by_reason=dict(checkpoint.rejected_by_reason),
        rejects_omitted=checkpoint.rejects_omitted,
        job=checkpoint.job,
        started_at=checkpoint.started_at,
    )
    ref = ImportRef(checkpoint.bucket, checkpoint.key, checkpoint.etag)
    part = _Part(ref, report, checkpoint.claim, checkpoint.part, checkpoint.after_record)
    report.compression = checkpoint.compression
    if checkpoint.resume_offset is not None:
        offset, header_end = checkpoint.resume_offset, checkpoint.resume_header_end
        part.resume = ResumePoint(offset, checkpoint.after_record + 1, header_end)
    part.job = JobOptions().merged_with(checkpoint.job)
    part.span = SpanRead.from_document(checkpoint.span) if checkpoint.span else None
    if services.ledger and not _claim_part(services.ledger, part):
        report.status = STATUS_DUPLICATE
        where = {"key": ref.key, "part": part.number, "span": part.span.index if part.span else None}
        logger.info("part not admitted (already run, or the import failed); skipped", extra=where)
        return report
    return _run(services, settings, part, budget, None)


def continue_import(
    services: SplitterServices, body: str, settings: SplitterSettings, *, budget: PartBudget | None = None
) -> ImportReport | None:
    """One continuation queue message: the next part of a split (its report is returned),
    or a byte range's survey (None)."""
    task = read_task(body)
    if isinstance(task, SurveyTask):
        survey_import_span(services, task, settings)
        return None
    return resume_import(services, task, settings, budget=budget)


def survey_import_span(services: SplitterServices, task: SurveyTask, settings: SplitterSettings) -> bool:
    """Survey one span of a file split in spans; True if this survey dispatched the split."""
    if services.ledger is None:
        raise RuntimeError("a split in spans needs the ledger")
    survey = survey_span(services.s3, task)
    return record_and_dispatch(services.ledger, services.sqs, settings.continuation_queue_url, task, survey)


def _claim_part(ledger: Ledger, part: _Part) -> bool:
    if part.span is None:
        return ledger.claim_part(part.ref, part.number)
    return ledger.claim_span_part(part.ref, part.span.index, part.number)


def _claim(services: SplitterServices, settings: SplitterSettings, part: _Part) -> bool:
    """Record the import as started; a repeated S3 event for a live import is skipped."""
    if services.ledger is None or settings.dry_run:
        return True
    if services.ledger.start_split(part.ref, part.report.size_bytes, part.claim):
        return True
    part.report.status = STATUS_DUPLICATE
    logger.info("import already claimed; repeated event skipped", extra={"key": part.ref.key})
    return False


def _run(
    services: SplitterServices,
    settings: SplitterSettings,
    part: _Part,
    budget: PartBudget | None,
    on_bytes: Callable[[int], None] | None,
) -> ImportReport:
    try:
        _split(services, settings, part, budget, on_bytes)
    except (JobOptionsError, FileFormatError, PreflightFailed) as error:
        part.report.status, part.report.error = STATUS_FAILED, str(error)
    finally:
        try:
            _finish(services, settings, part)
        finally:
            part.rejects.close()
    return part.report


def _split(
    services: SplitterServices,
    settings: SplitterSettings,
    part: _Part,
    budget: PartBudget | None,
    on_bytes: Callable[[int], None] | None,
) -> None:
    ref, report = part.ref, part.report
    first_invocation = part.number == 0 and part.span is None  # a span's part 0 is not
    if first_invocation:
        _check_write_key(services.preflight)
    if part.job is None:
        part.job = load_job_options(
            services.s3, ref.bucket, ref.key, settings.default_job, settings.prefixes.imports
        )
        report.job = part.job.to_document()
    identity = ObjectIdentity(ref.etag, report.size_bytes)
    ledger = None if settings.dry_run else services.ledger
    can_continue = bool(settings.continuation_queue_url) and not settings.dry_run
    if first_invocation and ledger and can_continue and _plan_spans(services, settings, part):
        return
    records = _open_part(services.s3, part, identity, on_bytes)
    if records is None:  # the previous part stopped at the very end
        report.status = STATUS_QUEUED
        return
    stop = split_records(
        records,
        report,
        part.job,
        settings.limits,
        _sink(services.sqs, settings, ref),
        part.rejects,
        on_progress=_progress_recorder(ledger, part),
        after_record=part.after_record,
        budget=budget if can_continue else None,
        first_batch=part.span.index * SPAN_BATCH_STRIDE + 1 if part.span else 1,
    )
    if stop is not None:
        part.checkpoint = _checkpoint(part, stop)
        report.status = STATUS_CONTINUING
    else:
        report.status = STATUS_DRY_RUN if settings.dry_run else STATUS_QUEUED


def _plan_spans(services: SplitterServices, settings: SplitterSettings, part: _Part) -> bool:
    """Plan a split in spans and queue their surveys; False when the file is split sequentially."""
    assert part.job is not None
    assert services.ledger is not None
    plan = SpanPlanning(services.s3, services.sqs, services.ledger, settings.continuation_queue_url)
    part.spans_planned = plan.start(part.ref, part.report, part.job, settings.span_bytes, claim=part.claim)
    return bool(part.spans_planned)


def _open_part(
    s3: Any, part: _Part, identity: ObjectIdentity, on_bytes: Callable[[int], None] | None
) -> RecordStream | None:
    """The records this part reads: the whole object, the rest after a checkpoint, or a span."""
    ref, report, job = part.ref, part.report, part.job
    assert job is not None  # loaded by now
    span = part.span
    if span is not None:
        point = part.resume or span.start_point()
        start, end = (point.offset if point else 0), span.end
    else:  # a plain file resumes with a ranged read; gzip is decompressed again up to the point
        point = part.resume if report.compression == "none" else None
        start, end = (point.offset if point else 0), report.size_bytes
        if point and start >= end:  # the previous part stopped at the very end
            return None
    # Progress counts the object's bytes up to where this part reads (a span's from its start).
    report.bytes_read = start - span.start if span is not None else start
    handle = S3ObjectHandle(s3, ref.bucket, ref.key, identity, start, end)
    stream: RawIOBase = ProgressStream(handle, _counting(report, on_bytes))
    if point and point.header_end:  # a CSV read from the middle: its header first, not counted
        stream = PrefixedBody(handle.read_range(0, point.header_end), stream.read)
    if span is not None:
        return span_records(span, stream, ref.key, encoding=job.encoding, resume=part.resume)
    return open_records(
        stream, ref.key, resume=part.resume, stream_at_resume=point is not None, csv_encoding=job.encoding
    )


def _counting(report: ImportReport, on_bytes: Callable[[int], None] | None) -> Callable[[int], None]:
    def count(size: int) -> None:
        report.bytes_read += size
        if on_bytes is not None:
            on_bytes(size)

    return count


def _progress_recorder(ledger: Ledger | None, part: _Part) -> Callable[[ImportReport], None]:
    """Where a part's running totals go: a log line (what the local run's progress bar
    follows), and the import's counts in the ledger, or its span's."""
    span = part.span

    def record(progress: ImportReport) -> None:
        logger.info(
            PROGRESS_MESSAGE,
            extra={
                "key": progress.key,
                "span": span.index if span else None,
                "records_read": progress.records_read,
                "bytes_read": progress.bytes_read,
                "size_bytes": progress.size_bytes,
            },
        )
        if ledger is None:
            return
        if span is None:
            ledger.record_split_progress(part.ref, progress.split_counts())
        else:
            ledger.record_span_counts(part.ref, span.index, progress.split_counts(), done=False)

    return record


def _check_write_key(preflight: WriteKeyPreflight | None) -> None:
    """Stop before queuing anything when Segment does not know the write key."""
    if preflight is None:
        return
    result = preflight.check()
    if result.verdict == "unknown_key":
        raise PreflightFailed(f"write key pre-flight failed: {result.detail}; nothing was queued")
    if result.verdict == "unverified":
        logger.warning("write key not verified; importing anyway", extra={"reason": result.detail})


def split_stream(
    stream: BinaryIO,
    report: ImportReport,
    job: JobOptions,
    limits: BatchLimits,
    sink: BatchSink,
    rejects: RejectsWriter,
) -> PartStop | None:
    """Read, map, validate and pack a whole file's records into `sink`; counts go to `report`.

    The S3- and SQS-free core of the splitter: benchmarks and tests feed it local streams.
    `report.etag` and `report.size_bytes` must be set: message ids derive from them.
    """
    records = open_records(stream, report.key, csv_encoding=job.encoding)
    return split_records(records, report, job, limits, sink, rejects)


def split_records(
    records: RecordStream,
    report: ImportReport,
    job: JobOptions,
    limits: BatchLimits,
    sink: BatchSink,
    rejects: RejectsWriter,
    *,
    on_progress: Callable[[ImportReport], None] | None = None,
    after_record: int = 0,
    budget: PartBudget | None = None,
    first_batch: int = 1,
) -> PartStop | None:
    """Map, validate and pack `records` into `sink`; counts go to `report`.

    Counts already in `report` (from earlier parts) are added to, and batches are numbered
    from `first_batch` plus the batches earlier parts queued. Records numbered up to
    `after_record` are skipped. Returns None when the records are done, or where they
    stopped when `budget` ran out (everything up to that record is then queued).
    """
    report.format, report.compression = records.format, records.compression
    mapper = MessageMapper(
        job,
        file_identity(report.etag, report.size_bytes),
        from_csv=reader_for(records.format).cells_are_text,
    )
    packer = BatchPacker(limits, first_number=first_batch + report.batches_queued)
    earlier = _Earlier(report)
    handled = 0
    stop = None
    for record in records:
        if record.number <= after_record:
            continue
        report.records_read += 1
        handled += 1
        _pack_record(record, mapper, packer, sink, rejects)
        if report.records_read % PROGRESS_EVERY_RECORDS == 0:
            earlier.update(report, sink, rejects)
            if on_progress:
                on_progress(report)
        if budget and budget.exhausted(handled):
            stop = PartStop(record.number, records.resume_point_after(record.number))
            break
    last = packer.finish()
    if last:
        sink.put(last)
    sink.flush()
    earlier.update(report, sink, rejects)
    return stop


@dataclass(slots=True)
class _Earlier:
    """Counts carried from earlier parts, so a part's report holds the import's totals."""

    messages: int
    batches: int
    rejected: Counter[str]

    def __init__(self, report: ImportReport) -> None:
        self.messages, self.batches = report.messages_queued, report.batches_queued
        self.rejected = Counter(report.rejected_by_reason)

    def update(self, report: ImportReport, sink: BatchSink, rejects: RejectsWriter) -> None:
        report.messages_queued = self.messages + sink.messages_queued
        report.batches_queued = self.batches + sink.batches_queued
        report.rejected_by_reason = dict(self.rejected + rejects.by_reason)
        report.rejected = sum(report.rejected_by_reason.values())


def _pack_record(
    record: SourceRecord, mapper: MessageMapper, packer: BatchPacker, sink: BatchSink, rejects: RejectsWriter
) -> None:
    if record.fields is None:
        rejects.add(record.number, record.reason or reasons.INVALID_JSON, record.detail, record.raw)
        return
    try:
        message = mapper.map(record.number, record.fields)
        check_fields(message)
        encoded = encode_message(message)
        check_size(encoded)
    except Reject as error:
        rejects.add(record.number, error.reason, error.detail, record.fields)
        return
    closed = packer.add(encoded)
    if closed:
        sink.put(closed)


def _sink(sqs: Any, settings: SplitterSettings, source: ImportRef) -> BatchSink:
    if settings.dry_run:
        return CountingSink()
    return QueueWriter(sqs, settings.queue_url, source, max_request_bytes=settings.limits.max_queue_bytes)


def _checkpoint(part: _Part, stop: PartStop) -> Checkpoint:
    report = part.report
    return Checkpoint(
        bucket=report.bucket,
        key=report.key,
        etag=report.etag,
        size_bytes=report.size_bytes,
        claim=part.claim,
        part=part.number + 1,
        after_record=stop.after_record,
        records_read=report.records_read,
        messages_queued=report.messages_queued,
        batches_queued=report.batches_queued,
        rejected_by_reason=dict(report.rejected_by_reason),
        rejects_omitted=report.rejects_omitted,
        job=report.job,
        started_at=report.started_at,
        resume_offset=stop.resume.offset if stop.resume else None,
        resume_header_end=stop.resume.header_end if stop.resume else 0,
        compression=report.compression,
        span=part.span.to_document() if part.span else None,
    )


def _rejects_key(settings: SplitterSettings, key: str, part: _Part) -> str:
    """The first part's rejects are `<key>.rejects.ndjson`; later parts add `.partNNNN`, and
    the parts of a span `.spanNNNN.partNNNN`."""
    if part.span is not None:
        suffix = f".rejects.span{part.span.index:04d}.part{part.number:04d}.ndjson"
    else:
        suffix = ".rejects.ndjson" if part.number == 0 else f".rejects.part{part.number:04d}.ndjson"
    return derived_key(settings.prefixes.rejects, key, settings.prefixes.imports, suffix)


def _finish(services: SplitterServices, settings: SplitterSettings, part: _Part) -> None:
    """Write the rejects and the report, hand over or tell the ledger; runs on every way out."""
    report = part.report
    rejects_key = _rejects_key(settings, report.key, part)
    if part.rejects.upload(services.s3, report.bucket, rejects_key):
        report.rejects_key = rejects_key
    report.rejects_omitted += part.rejects.omitted
    if part.checkpoint is not None:  # the next part carries the total on
        part.checkpoint.rejects_omitted = report.rejects_omitted
    if not report.status:  # an unexpected error is on its way up: record it, let it raise
        report.status, report.error = STATUS_FAILED, "internal error; see the function's log"
    report.finished_at = utc_now()
    if part.span is None:  # a span's counts are its own: the import's report comes from the ledger
        prefixes = settings.prefixes
        document = report.to_dict()
        write_report(
            services.s3, report.bucket, report_key(prefixes.reports, prefixes.imports, report.key), document
        )
    if part.checkpoint is not None:
        _continue(services, settings, part)
    elif part.span is not None:
        _finish_span(services, settings, part)
        _emit(services.metrics, report)  # once per span: its totals
    elif not part.spans_planned:
        _tell_ledger(services, settings, part)
        _emit(services.metrics, report)  # once per import: the totals
    logger.info(
        "import split",
        extra={
            "key": report.key,
            "part": part.number,
            "status": report.status,
            "records_read": report.records_read,
            "messages_queued": report.messages_queued,
            "batches_queued": report.batches_queued,
            "rejected": report.rejected,
        },
    )


def _finish_span(services: SplitterServices, settings: SplitterSettings, part: _Part) -> None:
    assert services.ledger is not None
    assert part.span is not None
    finish_span(
        services.s3,
        services.ledger,
        settings.prefixes,
        part.ref,
        part.span.index,
        part.report,
        services.events,
    )


def _continue(services: SplitterServices, settings: SplitterSettings, part: _Part) -> None:
    checkpoint = part.checkpoint
    assert checkpoint is not None  # the caller checked
    _progress_recorder(services.ledger, part)(part.report)
    hand_over(services.sqs, settings.continuation_queue_url, checkpoint)
    services.metrics.add_metric("SplitContinuations", "Count", 1)


def _tell_ledger(services: SplitterServices, settings: SplitterSettings, part: _Part) -> None:
    ledger, report = services.ledger, part.report
    if ledger is None or settings.dry_run:
        return
    if report.status == STATUS_FAILED:
        ledger.fail_split(part.ref, report.error or "failed", report.split_counts())
        if services.events is not None:
            prefixes = settings.prefixes
            services.events.import_finished(
                report.to_dict(), report_key(prefixes.reports, prefixes.imports, report.key)
            )
    elif ledger.finish_split(part.ref, report.split_counts()):
        publish_final_report(services.s3, ledger, part.ref, settings.prefixes, services.events)


def _emit(metrics: MetricsSink, report: ImportReport) -> None:
    metrics.add_metric("RecordsRead", "Count", report.records_read)
    metrics.add_metric("MessagesQueued", "Count", report.messages_queued)
    metrics.add_metric("BatchesQueued", "Count", report.batches_queued)
    metrics.add_metric("RecordsRejected", "Count", report.rejected)
    if report.status == STATUS_FAILED:
        metrics.add_metric("ImportsFailed", "Count", 1)
