"""The splitter: one export object -> validated messages -> batches on the work queue.

Streams the object (memory stays flat in the file size), maps and validates each record,
packs messages into batches of one Segment request each, and writes a report and a
rejects file under their own prefixes. Every record read is either queued or rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from segment_importer.batching import Batch, BatchLimits, BatchPacker
from segment_importer.encoding import EncodingError, encode_message
from segment_importer.formats import FileFormatError, open_records
from segment_importer.job import JobOptions, JobOptionsError, is_job_file
from segment_importer.mapping import MappingError, MessageMapper
from segment_importer.message_ids import file_identity
from segment_importer.queueing import BatchSource, QueueWriter
from segment_importer.records import SourceRecord
from segment_importer.rejects import RejectsWriter
from segment_importer.report import (
    STATUS_DRY_RUN,
    STATUS_FAILED,
    STATUS_QUEUED,
    STATUS_SKIPPED,
    ImportReport,
    derived_key,
    utc_now,
)
from segment_importer.s3_objects import ProgressStream, head, load_job_options, open_body
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


def split_import(
    s3: Any,
    sqs: Any,
    bucket: str,
    key: str,
    settings: SplitterSettings,
    *,
    on_bytes: Callable[[int], None] | None = None,
) -> ImportReport:
    """Split one dropped object; returns its report (also written to the bucket)."""
    report = ImportReport(bucket=bucket, key=key)
    if is_job_file(key) or key.endswith("/"):
        report.status = STATUS_SKIPPED
        return report
    rejects = RejectsWriter()
    try:
        _split(s3, sqs, settings, report, rejects, on_bytes)
    except (JobOptionsError, FileFormatError) as error:
        report.status, report.error = STATUS_FAILED, str(error)
    finally:
        _finish(s3, settings, report, rejects)
    return report


def _split(
    s3: Any,
    sqs: Any,
    settings: SplitterSettings,
    report: ImportReport,
    rejects: RejectsWriter,
    on_bytes: Callable[[int], None] | None,
) -> None:
    identity = head(s3, report.bucket, report.key)
    report.etag, report.size_bytes = identity.etag, identity.size
    job = load_job_options(s3, report.bucket, report.key, settings.default_job, settings.prefixes.imports)
    report.job = job.to_document()
    sink = _sink(sqs, settings, BatchSource(report.bucket, report.key, identity.etag))
    stream = ProgressStream(open_body(s3, report.bucket, report.key, identity), on_bytes)
    split_stream(stream, report, job, settings.limits, sink, rejects)
    report.status = STATUS_DRY_RUN if settings.dry_run else STATUS_QUEUED


def split_stream(
    stream: BinaryIO,
    report: ImportReport,
    job: JobOptions,
    limits: BatchLimits,
    sink: BatchSink,
    rejects: RejectsWriter,
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
            logger.info("split progress", extra={"key": report.key, "records_read": report.records_read})
    last = packer.finish()
    if last:
        sink.put(last)
    sink.flush()
    report.messages_queued, report.batches_queued = sink.messages_queued, sink.batches_queued


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


def _finish(s3: Any, settings: SplitterSettings, report: ImportReport, rejects: RejectsWriter) -> None:
    prefixes = settings.prefixes
    try:
        report.rejected = rejects.total
        report.rejected_by_reason = dict(rejects.by_reason)
        rejects_key = derived_key(prefixes.rejects, report.key, prefixes.imports, ".rejects.ndjson")
        if rejects.upload(s3, report.bucket, rejects_key):
            report.rejects_key = rejects_key
    finally:
        rejects.close()
    if not report.status:  # an unexpected error is on its way up: record it, let it raise
        report.status, report.error = STATUS_FAILED, "internal error; see the function's log"
    report.finished_at = utc_now()
    report_key = derived_key(prefixes.reports, report.key, prefixes.imports, ".report.json")
    s3.put_object(Bucket=report.bucket, Key=report_key, Body=report.to_json(), ContentType="application/json")
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
