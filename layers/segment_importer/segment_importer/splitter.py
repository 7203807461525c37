"""The splitter: one export object -> validated messages -> batches on the work queue.

Streams the object (memory stays flat in the file size), maps and validates each record,
packs messages into batches of one Segment request each, and writes a report and a
rejects file under their own prefixes. Every record read is either queued or rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from segment_importer.batching import Batch, BatchLimits, BatchPacker
from segment_importer.completion import publish_final_report
from segment_importer.encoding import EncodingError, encode_message
from segment_importer.formats import FileFormatError, open_records
from segment_importer.job import JobOptions, JobOptionsError, is_job_file
from segment_importer.ledger import ImportRef, Ledger
from segment_importer.mapping import MappingError, MessageMapper
from segment_importer.message_ids import file_identity
from segment_importer.metrics import MetricsSink, NullMetrics
from segment_importer.queueing import BatchSource, QueueWriter
from segment_importer.records import SourceRecord
from segment_importer.rejects import RejectsWriter
from segment_importer.report import (
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
from segment_importer.s3_objects import ObjectIdentity, ProgressStream, head, load_job_options, open_body
from segment_importer.settings import SplitterSettings
from segment_importer.validation import ValidationError, check_fields, check_size

logger = logging.getLogger(__name__)
PROGRESS_EVERY_RECORDS = 100_000


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


def split_import(
    services: SplitterServices,
    bucket: str,
    key: str,
    settings: SplitterSettings,
    *,
    request_id: str = "local",
    on_bytes: Callable[[int], None] | None = None,
) -> ImportReport:
    """Split one dropped object; returns its report (also written to the bucket)."""
    report = ImportReport(bucket=bucket, key=key)
    if is_job_file(key) or key.endswith("/"):
        report.status = STATUS_SKIPPED
        return report
    rejects = RejectsWriter()
    ref: ImportRef | None = None
    try:
        identity = head(services.s3, bucket, key)
        report.etag, report.size_bytes = identity.etag, identity.size
        ref = ImportRef(bucket, key, identity.etag)
        if not _claim(services, settings, ref, report, request_id):
            return report
        _split(services, settings, report, rejects, ref, on_bytes)
    except (JobOptionsError, FileFormatError) as error:
        report.status, report.error = STATUS_FAILED, str(error)
    finally:
        if report.status != STATUS_DUPLICATE:
            _finish(services, settings, report, rejects, ref)
        rejects.close()
    return report


def _claim(
    services: SplitterServices,
    settings: SplitterSettings,
    ref: ImportRef,
    report: ImportReport,
    request_id: str,
) -> bool:
    """Record the import as started; a repeated S3 event for a live import is skipped."""
    if services.ledger is None or settings.dry_run:
        return True
    if services.ledger.start_split(ref, report.size_bytes, request_id):
        return True
    report.status = STATUS_DUPLICATE
    logger.info("import already claimed; repeated event skipped", extra={"key": ref.key})
    return False


def _split(
    services: SplitterServices,
    settings: SplitterSettings,
    report: ImportReport,
    rejects: RejectsWriter,
    ref: ImportRef,
    on_bytes: Callable[[int], None] | None,
) -> None:
    job = load_job_options(services.s3, ref.bucket, ref.key, settings.default_job, settings.prefixes.imports)
    report.job = job.to_document()
    sink = _sink(services.sqs, settings, BatchSource(ref.bucket, ref.key, ref.etag))
    identity = ObjectIdentity(ref.etag, report.size_bytes)
    stream = ProgressStream(open_body(services.s3, ref.bucket, ref.key, identity), on_bytes)
    ledger = None if settings.dry_run else services.ledger
    on_progress = (
        (lambda progress: ledger.record_split_progress(ref, progress.split_counts())) if ledger else None
    )
    split_stream(stream, report, job, settings.limits, sink, rejects, on_progress=on_progress)
    report.status = STATUS_DRY_RUN if settings.dry_run else STATUS_QUEUED


def split_stream(
    stream: BinaryIO,
    report: ImportReport,
    job: JobOptions,
    limits: BatchLimits,
    sink: BatchSink,
    rejects: RejectsWriter,
    *,
    on_progress: Callable[[ImportReport], None] | None = None,
) -> None:
    """Read, map, validate and pack one file's records into `sink`; counts go to `report`.

    The S3- and SQS-free core of the splitter: benchmarks and tests feed it local streams.
    `report.etag` and `report.size_bytes` must be set: message ids derive from them.
    """
    records = open_records(stream, report.key)
    report.format, report.compression = records.format, records.compression
    file_id = file_identity(report.etag, report.size_bytes)
    mapper = MessageMapper(job, file_id, from_csv=records.format == "csv")
    packer = BatchPacker(limits)
    for record in records:
        report.records_read += 1
        _pack_record(record, mapper, packer, sink, rejects)
        if report.records_read % PROGRESS_EVERY_RECORDS == 0:
            _progress(report, sink, rejects, on_progress)
    last = packer.finish()
    if last:
        sink.put(last)
    sink.flush()
    report.messages_queued, report.batches_queued = sink.messages_queued, sink.batches_queued
    _count_rejects(report, rejects)


def _progress(
    report: ImportReport,
    sink: BatchSink,
    rejects: RejectsWriter,
    on_progress: Callable[[ImportReport], None] | None,
) -> None:
    report.messages_queued, report.batches_queued = sink.messages_queued, sink.batches_queued
    _count_rejects(report, rejects)
    logger.info("split progress", extra={"key": report.key, "records_read": report.records_read})
    if on_progress:
        on_progress(report)


def _count_rejects(report: ImportReport, rejects: RejectsWriter) -> None:
    report.rejected = rejects.total
    report.rejected_by_reason = dict(rejects.by_reason)


def _pack_record(
    record: SourceRecord, mapper: MessageMapper, packer: BatchPacker, sink: BatchSink, rejects: RejectsWriter
) -> None:
    if record.fields is None:
        rejects.add(record.number, record.reason or "invalid_json", record.detail, record.raw)
        return
    try:
        message = mapper.map(record.number, record.fields)
        check_fields(message)
        encoded = encode_message(message)
        check_size(encoded)
    except (MappingError, ValidationError) as error:
        rejects.add(record.number, error.reason, error.detail, record.fields)
        return
    except EncodingError as error:
        rejects.add(record.number, "invalid_field", str(error), record.fields)
        return
    closed = packer.add(encoded)
    if closed:
        sink.put(closed)


def _sink(sqs: Any, settings: SplitterSettings, source: BatchSource) -> BatchSink:
    if settings.dry_run:
        return CountingSink()
    return QueueWriter(sqs, settings.queue_url, source, max_request_bytes=settings.limits.max_queue_bytes)


def _finish(
    services: SplitterServices,
    settings: SplitterSettings,
    report: ImportReport,
    rejects: RejectsWriter,
    ref: ImportRef | None,
) -> None:
    """Write the rejects and the report, and tell the ledger; runs on every way out."""
    prefixes = settings.prefixes
    _count_rejects(report, rejects)
    rejects_key = derived_key(prefixes.rejects, report.key, prefixes.imports, ".rejects.ndjson")
    if rejects.upload(services.s3, report.bucket, rejects_key):
        report.rejects_key = rejects_key
    if not report.status:  # an unexpected error is on its way up: record it, let it raise
        report.status, report.error = STATUS_FAILED, "internal error; see the function's log"
    report.finished_at = utc_now()
    write_report(
        services.s3,
        report.bucket,
        report_key(prefixes.reports, prefixes.imports, report.key),
        report.to_dict(),
    )
    _tell_ledger(services, settings, report, ref)
    _emit(services.metrics, report)
    logger.info(
        "import split",
        extra={
            "key": report.key,
            "status": report.status,
            "records_read": report.records_read,
            "messages_queued": report.messages_queued,
            "batches_queued": report.batches_queued,
            "rejected": report.rejected,
        },
    )


def _tell_ledger(
    services: SplitterServices, settings: SplitterSettings, report: ImportReport, ref: ImportRef | None
) -> None:
    ledger = services.ledger
    if ledger is None or ref is None or settings.dry_run:
        return
    if report.status == STATUS_FAILED:
        ledger.fail_split(ref, report.error or "failed", report.split_counts())
    elif ledger.finish_split(ref, report.split_counts()):
        publish_final_report(services.s3, ledger, ref, settings.prefixes)


def _emit(metrics: MetricsSink, report: ImportReport) -> None:
    metrics.add_metric("RecordsRead", "Count", report.records_read)
    metrics.add_metric("MessagesQueued", "Count", report.messages_queued)
    metrics.add_metric("BatchesQueued", "Count", report.batches_queued)
    metrics.add_metric("RecordsRejected", "Count", report.rejected)
    if report.status == STATUS_FAILED:
        metrics.add_metric("ImportsFailed", "Count", 1)
