"""The S3- and SQS-free core of the splitter: records -> mapped, validated messages -> batches.

Benchmarks and tests feed it local streams; the splitter feeds it one part's records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import BinaryIO, Protocol

from segment_importer.batch.encoding import MAX_MESSAGE_BYTES, EncodedMessage, encode_body, encode_message
from segment_importer.batch.packing import Batch, BatchLimits, BatchPacker
from segment_importer.job import JobOptions, JobOptionsError, columns_by_position
from segment_importer.mapping.mapper import MessageMapper, column_collisions
from segment_importer.mapping.profiles.warehouse import shadow_table_warning
from segment_importer.mapping.shaping import LeftOut, Shaper, shaper_for
from segment_importer.mapping.validation import check_fields, check_size
from segment_importer.read.formats import RecordStream, ResumePoint, open_records
from segment_importer.read.records import SourceRecord
from segment_importer.read.registry import reader_for
from segment_importer.split.continuation import PartBudget
from segment_importer.track import reasons
from segment_importer.track.reasons import Reject
from segment_importer.track.rejects import RejectsWriter
from segment_importer.track.report import ImportReport

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
class PartStop:
    """Where a part stopped: after this record, and (NDJSON) where the next line starts."""

    after_record: int
    resume: ResumePoint | None


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
    file_id: str | None = None,
    read_parameter: Callable[[str], str] | None = None,
) -> PartStop | None:
    """Map, validate and pack `records` into `sink`; counts go to `report`.

    Counts already in `report` (from earlier parts) are added to, and batches are numbered
    from `first_batch` plus the batches earlier parts queued. Records numbered up to
    `after_record` are skipped. Returns None when the records are done, or where they
    stopped when `budget` ran out (everything up to that record is then queued).
    `file_id`: ids from position in that file, not content (message_ids).
    """
    job = _read_header(records, report, job)
    # Ids from each record's position and content, never the ETag: see message_ids.
    cells_are_text = reader_for(records.format).cells_are_text
    # Spreadsheets that separate cells with `;` are those of locales writing `12,50` for 12.5.
    decimal_comma = cells_are_text and records.delimiter == ";"
    mapper = MessageMapper(
        job, file_id, from_csv=cells_are_text, file_key=report.key, decimal_comma=decimal_comma
    )
    packer = BatchPacker(limits, first_number=first_batch + report.batches_queued)
    earlier = _Earlier(report)
    shaper = shaper_for(job, report, read_parameter)  # the job's filters and transforms
    try:
        stop = _pack(
            records, report, mapper, shaper, packer, sink, rejects, earlier, on_progress, after_record, budget
        )
        last = packer.finish()
        if last:
            sink.put(last)
        sink.flush()
    finally:  # on an error too: the counts say what reached the queue
        earlier.update(report, sink, rejects)
    _warn_of_id_collisions(report, mapper.id_collisions, mapper.id_merges)
    _warn_of_excel_day_numbers(report, mapper.excel_day_numbers)
    return stop


def _pack(
    records: RecordStream,
    report: ImportReport,
    mapper: MessageMapper,
    shaper: Shaper,
    packer: BatchPacker,
    sink: BatchSink,
    rejects: RejectsWriter,
    earlier: _Earlier,
    on_progress: Callable[[ImportReport], None] | None,
    after_record: int,
    budget: PartBudget | None,
) -> PartStop | None:
    """The loop over records, one pass with its look-ups bound to locals (the hot path)."""
    handled = 0
    # Once the clock runs low, the part ends where a batch closes on its own (before the
    # record that would open the next one): greedy packing then cuts the next part's batches
    # as one run would, so a retry of a part that was killed later cuts them the same way.
    ending: PartStop | None = None
    # The common record (Segment-shaped JSON, no filters or transforms) takes the fast path;
    # when it declines (or the message may be too large), `_encode` maps it the general way.
    fast = mapper.fast.map if mapper.fast is not None and not shaper.rules.active else None
    add, put, limit = packer.add, sink.put, MAX_MESSAGE_BYTES
    for record in records:
        number, fields = record.number, record.fields
        if number <= after_record:
            continue
        encoded: tuple[bytes, int] | None = None
        if fast is not None and fields is not None and (message := fast(number, fields)) is not None:
            try:
                encoded = encode_body(message)
            except Reject:  # unserialisable: `_encode` records the reject
                encoded = None
            else:
                if encoded[1] > limit:
                    encoded = None
        if encoded is None:
            encoded = _encode(record, mapper, rejects, shaper)
        if ending is not None and encoded is not None and packer.would_close(encoded):
            return ending
        report.records_read += 1
        handled += 1
        if encoded is not None and (closed := add(encoded)):
            put(closed)
        if report.records_read % PROGRESS_EVERY_RECORDS == 0:
            earlier.update(report, sink, rejects)
            if on_progress:
                on_progress(report)
        if ending is not None or (budget and budget.exhausted(handled)):
            ending = PartStop(number, records.resume_point_after(number))
            if budget and budget.count_reached(handled):  # a count: every run ends here
                return ending
    return None


def _read_header(records: RecordStream, report: ImportReport, job: JobOptions) -> JobOptions:
    """The file's format and warnings into the report; the job with `#N` columns named.
    JobOptionsError when the job's `columns` do not fit the file's header."""
    report.format, report.compression = records.format, records.compression
    report.warnings.extend(w for w in records.warnings if w not in report.warnings)  # once per file
    shadow = shadow_table_warning(report.key)  # a `tracks` table: see warehouse.SHADOW_TABLES
    if shadow and shadow not in report.warnings:
        report.warnings.append(shadow)
    if records.columns and job.columns:
        job = replace(job, columns=columns_by_position(job.columns, records.columns))
        if problems := column_collisions(job.columns, records.columns):
            # Refused before any row, as two columns mapped to one field are (check-job).
            raise JobOptionsError("; ".join(problems), problems)
    return job


def _warn_of_id_collisions(report: ImportReport, collisions: int, merges: int) -> None:
    if collisions:
        report.message_id_collisions += collisions
        report.warnings.append(
            f"{collisions} records repeat an earlier record's event id (its messageId, insert id, uuid or "
            "event_id) with another event, user or time: their messageIds include those fields, so "
            "they are not merged"
        )
    if merges:
        report.message_id_merges += merges
        report.warnings.append(
            f"{merges} records repeat an earlier record's event id, event, user and time with other "
            "properties, traits or context: they get the same messageId, so Segment keeps only the "
            "first (as the exporting tool's own dedupe would). If they are distinct events, map a "
            "field that tells them apart to messageId in the job's `columns`"
        )


def _warn_of_excel_day_numbers(report: ImportReport, count: int) -> None:
    """QA2 O11: with timestampRange widened to 1970, a spreadsheet's unformatted dates went out
    as 1970-01-01 without a word."""
    if count:
        report.warnings.append(
            f"{count} records have a time that looks like an Excel day number (e.g. 44261.3958), read "
            "as epoch seconds: 1970-01-01, taken only because timestampRange allows 1970; if it is a "
            "spreadsheet's date column, format it as a date and export it again"
        )


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


def _encode(
    record: SourceRecord, mapper: MessageMapper, rejects: RejectsWriter, shaper: Shaper
) -> EncodedMessage | None:
    """The record's message, ready to pack; None when it cannot be sent (a reject) or when the
    job's filters leave it out (counted by the shaper)."""
    if record.fields is None:
        rejects.add(record.number, record.reason or reasons.INVALID_JSON, record.detail, record.raw)
        return None
    try:
        message = mapper.map(record.number, record.fields)
        check_fields(message)
        encoded = encode_message(message)
        check_size(encoded)
        encoded = shaper.shape(message, encoded)  # after validation: None when a filter leaves it out
    except Reject as error:
        rejects.add(record.number, error.reason, error.detail, record.fields)
        return None
    except LeftOut as left_out:  # a profile's word: no Segment call, and not a mistake
        shaper.count_left_out(left_out.rule)
        return None
    return encoded
