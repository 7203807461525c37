"""The splitter: one export object -> validated messages -> batches on the work queue.

Streams the object (memory stays flat in the file size), maps and validates each record,
packs messages into batches of one Segment request each, and writes a report and a
rejects file under their own prefixes. Every record read is either queued or rejected.
A file too large for one invocation is split in parts (see `continuation`); a large plain
NDJSON or CSV file in parallel byte ranges (see `parallel_split`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from segment_importer.batch.queueing import QueueWriter
from segment_importer.deliver.preflight import PreflightFailed, WriteKeyPreflight, check_write_key
from segment_importer.import_ref import ImportRef
from segment_importer.job import JobOptions, JobOptionsError, is_job_file
from segment_importer.metrics import MetricsSink, NullMetrics
from segment_importer.read.byte_ranges import SpanRead
from segment_importer.read.formats import FileFormatError
from segment_importer.settings import SplitterSettings
from segment_importer.split.archives import ArchiveSplit, is_archive_object, split_archive
from segment_importer.split.continuation import Checkpoint, PartBudget, SurveyTask, hand_over, read_task
from segment_importer.split.parts import ContinuedPart, Part, PartState, SpanPart, WholeFile
from segment_importer.split.s3_objects import ObjectIdentity, head, load_job_options
from segment_importer.split.spans import SpanPlanning, finish_span, record_and_dispatch, survey_span
from segment_importer.split.stream_split import (
    PROGRESS_EVERY_RECORDS,
    BatchSink,
    CountingSink,
    PartStop,
    split_records,
    split_stream,
)
from segment_importer.track.completion import publish_final_report
from segment_importer.track.import_events import ImportEvents
from segment_importer.track.ledger import Ledger
from segment_importer.track.report import (
    STATUS_CONTINUING,
    STATUS_DRY_RUN,
    STATUS_DUPLICATE,
    STATUS_FAILED,
    STATUS_QUEUED,
    STATUS_SKIPPED,
    ImportReport,
    report_key,
    utc_now,
    write_report,
)

__all__ = [
    "PROGRESS_EVERY_RECORDS",
    "PROGRESS_MESSAGE",
    "BatchSink",
    "CountingSink",
    "PartStop",
    "SplitterServices",
    "continue_import",
    "resume_import",
    "split_import",
    "split_records",
    "split_stream",
    "survey_import_span",
]

logger = logging.getLogger(__name__)
PROGRESS_MESSAGE = "split progress"  # the log line the local run's split bar follows
INTERNAL_ERROR = "internal error; see the function's log"


@dataclass(frozen=True, slots=True)
class SplitterServices:
    """What the splitter talks to; built by the handler (or a test) and passed in."""

    s3: Any
    sqs: Any
    ledger: Ledger | None = None
    metrics: MetricsSink = field(default_factory=NullMetrics)
    preflight: WriteKeyPreflight | None = None
    read_parameter: Callable[[str], str] | None = None  # SSM, for a job's `hash.keyParameter`
    events: ImportEvents | None = None  # told when an import ends in the splitter (failed, or all rejected)


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
    part = WholeFile(PartState(ImportRef(bucket, key, identity.etag), report, claim=request_id))
    if not _admit(services, settings, part):
        logger.info("import already claimed; repeated event skipped", extra={"key": key})
        return report
    return _run(services, settings, part, budget, on_bytes)


def resume_import(
    services: SplitterServices,
    checkpoint: Checkpoint,
    settings: SplitterSettings,
    *,
    budget: PartBudget | None = None,
    attempt: int = 1,
) -> ImportReport:
    """Run the next part of an import from its checkpoint (`attempt`: its receive count)."""
    report = checkpoint.report()
    state = PartState(
        ImportRef(checkpoint.bucket, checkpoint.key, checkpoint.etag),
        report,
        checkpoint.claim,
        number=checkpoint.part,
        attempt=attempt,
        after_record=checkpoint.after_record,
        resume=checkpoint.resume_point(),
        job=JobOptions().merged_with(checkpoint.job),
    )
    part: Part = (
        SpanPart(state, SpanRead.from_document(checkpoint.span)) if checkpoint.span else ContinuedPart(state)
    )
    if not _admit(services, settings, part):
        where = {"key": state.ref.key, "part": state.number, "span": part.span.index if part.span else None}
        logger.info("part not admitted (a repeated checkpoint, or the import failed); skipped", extra=where)
        return report
    return _run(services, settings, part, budget, None)


def continue_import(
    services: SplitterServices,
    body: str,
    settings: SplitterSettings,
    *,
    budget: PartBudget | None = None,
    attempt: int = 1,
) -> ImportReport | None:
    """One continuation queue message: the next part of a split (its report is returned),
    or a byte range's survey (None). `attempt` is the message's receive count."""
    task = read_task(body)
    if isinstance(task, SurveyTask):
        _survey(services, task, settings, attempt)
        return None
    return resume_import(services, task, settings, budget=budget, attempt=attempt)


def survey_import_span(services: SplitterServices, task: SurveyTask, settings: SplitterSettings) -> bool:
    """Survey one span of a file split in spans; True if this survey dispatched the split."""
    if services.ledger is None:
        raise RuntimeError("a split in spans needs the ledger")
    survey = survey_span(services.s3, task)
    return record_and_dispatch(services.ledger, services.sqs, settings.continuation_queue_url, task, survey)


def _survey(services: SplitterServices, task: SurveyTask, settings: SplitterSettings, attempt: int) -> None:
    """A survey is safe to repeat; one that fails on its last delivery fails the import."""
    try:
        survey_import_span(services, task, settings)
    except Exception:
        if services.ledger is not None and attempt >= settings.continuation_attempts:
            ref = ImportRef(task.bucket, task.key, task.etag)
            services.ledger.fail_split(ref, INTERNAL_ERROR, services.ledger.span_totals(ref))
        raise


def _admit(services: SplitterServices, settings: SplitterSettings, part: Part) -> bool:
    """Whether the ledger lets this run of the part go ahead (always, without a ledger)."""
    if services.ledger is None or settings.dry_run:
        return True
    if part.admit(services.ledger):
        return True
    part.state.report.status = STATUS_DUPLICATE
    return False


def _run(
    services: SplitterServices,
    settings: SplitterSettings,
    part: Part,
    budget: PartBudget | None,
    on_bytes: Callable[[int], None] | None,
) -> ImportReport:
    """Split the part and finish it. An error that is the file's (its format, its job file,
    the write key) fails the import; any other error is left to Lambda's retry, which runs
    the part again, unless this was the last run: then the import is FAILED. A run that is
    killed (timeout, out of memory) runs none of this: its retry redoes the part."""
    report = part.state.report
    try:
        try:
            _split(services, settings, part, budget, on_bytes)
        except (JobOptionsError, FileFormatError, PreflightFailed) as error:
            report.status, report.error = STATUS_FAILED, str(error)
        _finish(services, settings, part)
    except Exception:
        _after_error(services, settings, part)
        raise
    finally:
        part.state.rejects.close()
    return report


def _after_error(services: SplitterServices, settings: SplitterSettings, part: Part) -> None:
    """An unexpected error: the import is FAILED with the counts of what was queued, if no
    retry is coming; otherwise its counts so far are recorded and the retry redoes the part."""
    state, report = part.state, part.state.report
    where = {"key": state.ref.key, "part": state.number, "attempt": state.attempt}
    ledger = None if settings.dry_run else services.ledger
    if ledger is not None and not part.last_attempt(settings):
        logger.warning("part failed; Lambda runs it again", extra=where)
        _progress_recorder(ledger, part)(report)
        return
    logger.error("part failed on its last run; the import fails", extra=where)
    report.status, report.error = STATUS_FAILED, INTERNAL_ERROR
    state.checkpoint = None
    _finish(services, settings, part)


def _split(
    services: SplitterServices,
    settings: SplitterSettings,
    part: Part,
    budget: PartBudget | None,
    on_bytes: Callable[[int], None] | None,
) -> None:
    state, report = part.state, part.state.report
    ref = state.ref
    ledger = None if settings.dry_run else services.ledger
    can_continue = bool(settings.continuation_queue_url) and not settings.dry_run
    if part.starts_import:
        state.job = load_job_options(
            services.s3, ref.bucket, ref.key, settings.default_job, settings.prefixes.imports
        )
        check_write_key(services.preflight, settings.targets, state.job)  # its workspace's
        report.job = state.job.to_document()
        if is_archive_object(services.s3, ref, ObjectIdentity(ref.etag, report.size_bytes)):
            _split_archive(services, settings, part, budget)  # each member an import of its own
            return
        # A job with a `limit` is split sequentially: parts carry the count on, spans could not.
        spans_allowed = ledger and can_continue and state.job.limit is None
        if spans_allowed and _plan_spans(services, settings, part):
            return
    records = part.open(services.s3, on_bytes)
    if records is None:  # the previous part stopped at the very end
        report.status = STATUS_QUEUED
        return
    assert state.job is not None  # loaded above, or from the checkpoint
    stop = split_records(
        records,
        report,
        state.job,
        settings.limits,
        _sink(services.sqs, settings, ref, state.job),
        state.rejects,
        on_progress=_progress_recorder(ledger, part),
        after_record=state.after_record,
        budget=budget if can_continue else None,
        first_batch=part.first_batch,
        read_parameter=services.read_parameter,
    )
    if stop is not None:
        state.checkpoint = part.next_checkpoint(stop.after_record, stop.resume)
        report.status = STATUS_CONTINUING
    else:
        report.status = STATUS_DRY_RUN if settings.dry_run else STATUS_QUEUED


def _split_archive(
    services: SplitterServices, settings: SplitterSettings, part: Part, budget: PartBudget | None
) -> None:
    state = part.state
    assert state.job is not None  # loaded by the caller
    ledger = None if settings.dry_run else services.ledger
    context = ArchiveSplit(
        services.s3,
        settings,
        ledger,
        state.ref,
        ObjectIdentity(state.ref.etag, state.report.size_bytes),
        state.job,
        state.claim,
        sink_for=lambda member: _sink(services.sqs, settings, member, state.job),
        split=split_records,
        budget=budget,
    )
    split_archive(context, state.report, _progress_recorder(ledger, part))


def _plan_spans(services: SplitterServices, settings: SplitterSettings, part: WholeFile) -> bool:
    """Plan a split in spans and queue their surveys; False when the file is split sequentially."""
    state = part.state
    if services.ledger is None or state.job is None:
        return False
    plan = SpanPlanning(services.s3, services.sqs, services.ledger, settings.continuation_queue_url)
    part.spans_planned = plan.start(
        state.ref, state.report, state.job, settings.span_bytes, claim=state.claim
    )
    return bool(part.spans_planned)


def _progress_recorder(ledger: Ledger | None, part: Part) -> Callable[[ImportReport], None]:
    """Where a part's running totals go: a log line (what the local run's progress bar
    follows), and the import's counts in the ledger, or its span's."""
    span = part.span
    ref = part.state.ref

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
            ledger.record_split_progress(ref, progress.split_counts())
        else:
            ledger.record_span_counts(ref, span.index, progress.split_counts(), done=False)

    return record


def _sink(sqs: Any, settings: SplitterSettings, source: ImportRef, job: JobOptions) -> BatchSink:
    if settings.dry_run:
        return CountingSink()
    limit = settings.limits.max_queue_bytes
    return QueueWriter(sqs, settings.queue_url, source, max_request_bytes=limit, target=job.target)


def _finish(services: SplitterServices, settings: SplitterSettings, part: Part) -> None:
    """Write the rejects and the report, then hand over or tell the ledger. Safe to repeat:
    the same keys are written with the same content, the ledger's counts are absolute."""
    state, report = part.state, part.state.report
    _upload_rejects(services.s3, settings, part)
    if not report.status:  # not reached: _run sets a status on every way here
        report.status, report.error = STATUS_FAILED, INTERNAL_ERROR
    report.finished_at = utc_now()
    if part.writes_report:  # a span's counts are its own: the import's report comes from the ledger
        prefixes = settings.prefixes
        write_report(
            services.s3,
            report.bucket,
            report_key(prefixes.reports, prefixes.imports, report.key),
            report.to_dict(),
        )
    if state.checkpoint is not None and report.status != STATUS_FAILED:
        _continue(services, settings, part)
    elif isinstance(part, SpanPart):
        if services.ledger is not None:
            finish_span(
                services.s3,
                services.ledger,
                settings.prefixes,
                state.ref,
                part.span_index,
                report,
                services.events,
            )
        _emit(services.metrics, report)  # once per span: its totals
    elif not part.spans_planned or report.status == STATUS_FAILED:
        _tell_ledger(services, settings, part)
        _emit(services.metrics, report)  # once per import: the totals
    logger.info(
        "import split",
        extra={
            "key": report.key,
            "part": state.number,
            "status": report.status,
            "records_read": report.records_read,
            "messages_queued": report.messages_queued,
            "batches_queued": report.batches_queued,
            "rejected": report.rejected,
        },
    )


def _upload_rejects(s3: Any, settings: SplitterSettings, part: Part) -> None:
    """This part's rejects file, if it has rejects; the report lists every part's."""
    state, report = part.state, part.state.report
    key = part.rejects_key(settings.prefixes)
    if state.rejects.upload(s3, report.bucket, key):
        report.rejects_key = report.rejects_key or key
        if key not in report.rejects_keys:
            report.rejects_keys.append(key)
    report.rejects_omitted += state.rejects.omitted
    state.rejects.omitted = 0  # counted once, should the part be finished again
    if state.checkpoint is not None:  # the next part carries the totals on
        state.checkpoint.rejects_omitted = report.rejects_omitted
        state.checkpoint.rejects_keys = list(report.rejects_keys)


def _continue(services: SplitterServices, settings: SplitterSettings, part: Part) -> None:
    checkpoint = part.state.checkpoint
    if checkpoint is None:
        return
    _progress_recorder(services.ledger, part)(part.state.report)
    hand_over(services.sqs, settings.continuation_queue_url, checkpoint)
    services.metrics.add_metric("SplitContinuations", "Count", 1)


def _tell_ledger(services: SplitterServices, settings: SplitterSettings, part: Part) -> None:
    ledger, report, ref = services.ledger, part.state.report, part.state.ref
    if ledger is None or settings.dry_run:
        return
    if report.status == STATUS_FAILED:
        ledger.fail_split(ref, report.error or "failed", report.split_counts())
        if services.events is not None:
            prefixes = settings.prefixes
            services.events.import_finished(
                report.to_dict(), report_key(prefixes.reports, prefixes.imports, report.key)
            )
    elif ledger.finish_split(ref, report.split_counts()):
        publish_final_report(services.s3, ledger, ref, settings.prefixes, services.events)


def _emit(metrics: MetricsSink, report: ImportReport) -> None:
    metrics.add_metric("RecordsRead", "Count", report.records_read)
    metrics.add_metric("MessagesQueued", "Count", report.messages_queued)
    metrics.add_metric("BatchesQueued", "Count", report.batches_queued)
    metrics.add_metric("RecordsRejected", "Count", report.rejected)
    if report.status == STATUS_FAILED:
        metrics.add_metric("ImportsFailed", "Count", 1)
