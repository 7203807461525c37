"""A ZIP archive is an import of its members: each member is split as an import of its own.

A member's import is keyed `<archive key>!<member name>` (`member_key`): its own ledger item
(the sender credits its batches to it), report (`reports/<archive>!<member>.report.json`),
rejects file, record numbers, and message ids derived as for any file (the record's own id,
else its number in the member and its content). The archive's own import holds the members'
summaries (`ImportReport.members`) and no batches of its own; `status` and the local run
aggregate its members into the drop's line. Members are split one after another in the
archive's invocation, streamed from the archive through ranged reads (`read.zip_archive`),
within the archive's limits.

A member refused by the archive's limits or traps, or one that cannot be read, is a FAILED
import with its reason; macOS metadata is listed as SKIPPED. Nothing is dropped unsaid.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segment_importer.import_ref import ImportRef
from segment_importer.job import JobOptions
from segment_importer.read.byte_ranges import PrefixedBody
from segment_importer.read.formats import FileFormatError, open_records
from segment_importer.read.zip_archive import Archive, ArchiveMember, is_nested_archive, is_zip, open_archive
from segment_importer.settings import SplitterSettings
from segment_importer.split.continuation import PartBudget
from segment_importer.split.s3_objects import ObjectIdentity, S3ObjectHandle, read_range
from segment_importer.track.completion import publish_final_report
from segment_importer.track.ledger import Ledger
from segment_importer.track.rejects import RejectsWriter
from segment_importer.track.report import (
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
MEMBER_SEPARATOR = "!"  # `<archive key>!<member name>`: a member's import key
ARCHIVE_FORMAT = "zip"  # the archive's own report and ledger item
# An archive is split in one invocation (its members are not continued in parts): what does not fit fails.
OUT_OF_TIME = (
    "not split: the archive's invocation ran out of time before this member;"
    " drop the archive's members as files, or export smaller archives"
)
_NESTED_SNIFF = 512  # enough of a member to see an archive's magic bytes (tar's is at 257)


def member_key(archive_key: str, member: ArchiveMember) -> str:
    return f"{archive_key}{MEMBER_SEPARATOR}{member.safe_name}"


def is_archive_object(s3: Any, ref: ImportRef, identity: ObjectIdentity) -> bool:
    """Whether the object starts with a ZIP's magic bytes (one small ranged read)."""
    return is_zip(read_range(s3, ref.bucket, ref.key, identity, 0, min(4, identity.size)))


@dataclass(frozen=True, slots=True)
class ArchiveSplit:
    """What splitting an archive's members needs, from the archive's invocation."""

    s3: Any
    settings: SplitterSettings
    ledger: Ledger | None  # None in a dry run
    ref: ImportRef
    identity: ObjectIdentity
    job: JobOptions
    claim: str
    sink_for: Callable[[ImportRef], Any]  # the batch sink of one member's import
    split: Callable[..., Any]  # splitter.split_records
    budget: PartBudget | None = None  # the invocation's time: members are not split in parts


def split_archive(
    context: ArchiveSplit, report: ImportReport, on_progress: Callable[[ImportReport], None]
) -> None:
    """Split every member of the archive; the archive's `report` gets their summaries and
    totals. Raises FileFormatError when the archive as a whole cannot be read."""
    ref = context.ref
    archive = open_archive(S3ObjectHandle(context.s3, ref.bucket, ref.key, context.identity))
    report.format, report.compression = ARCHIVE_FORMAT, "none"
    clock = _MemberClock(context.budget)
    try:
        for member in archive.members:
            member_report = _split_member(context, archive, member, clock)
            report.members.append(_summary(member, member_report))
            _add_totals(report, member_report)
            report.bytes_read = archive.bytes_fetched
            on_progress(report)
    finally:
        archive.close()
    report.status = STATUS_DRY_RUN if context.settings.dry_run else STATUS_QUEUED


@dataclass(slots=True)
class _MemberClock:
    """Whether the invocation has time for one more member: the longest member so far, with
    half again as margin, must fit before the budget's reserve. A member is never cut."""

    budget: PartBudget | None
    longest: float = 0.0
    started: float = 0.0

    def has_time(self) -> bool:
        if self.budget is None:
            return True
        return self.budget.remaining_seconds() - self.budget.reserve_seconds > 1.5 * self.longest

    def start(self) -> None:
        self.started = time.monotonic()

    def stop(self) -> None:
        self.longest = max(self.longest, time.monotonic() - self.started)


def _split_member(
    context: ArchiveSplit, archive: Archive, member: ArchiveMember, clock: _MemberClock
) -> ImportReport:
    ref = ImportRef(context.ref.bucket, member_key(context.ref.key, member), context.ref.etag)
    report = ImportReport(bucket=ref.bucket, key=ref.key, etag=ref.etag, size_bytes=member.size)
    report.job = context.job.to_document()
    if member.skip:
        report.status, report.error = STATUS_SKIPPED, member.skip
        return report
    if context.ledger and not context.ledger.start_split(ref, member.size, context.claim):
        report.status = STATUS_DUPLICATE
        return report
    rejects = RejectsWriter()
    clock.start()
    try:
        if not clock.has_time():
            raise FileFormatError(OUT_OF_TIME)
        _read_member(context, archive, member, ref, report, rejects)
    except FileFormatError as error:
        report.status, report.error = STATUS_FAILED, str(error)
    finally:
        clock.stop()
        try:
            _finish_member(context, ref, report, rejects)
        finally:
            rejects.close()
    return report


def _read_member(
    context: ArchiveSplit,
    archive: Archive,
    member: ArchiveMember,
    ref: ImportRef,
    report: ImportReport,
    rejects: RejectsWriter,
) -> None:
    if member.refusal:
        raise FileFormatError(member.refusal)
    stream = archive.open_member(member)
    head = stream.read(_NESTED_SNIFF)
    if is_nested_archive(head):
        raise FileFormatError("a nested archive; archives inside archives are not read (unpack it)")
    records = open_records(PrefixedBody(head, stream.read), member.name, csv_encoding=context.job.encoding)
    # Ids as for any file: from the record's content and position, never the archive's ETag, so
    # the same archive uploaded again (another tool, another part size) gets the same ids.
    limits = context.settings.limits
    context.split(records, report, context.job, limits, context.sink_for(ref), rejects)
    report.status = STATUS_DRY_RUN if context.settings.dry_run else STATUS_QUEUED


def _finish_member(
    context: ArchiveSplit, ref: ImportRef, report: ImportReport, rejects: RejectsWriter
) -> None:
    """The member's rejects, report and ledger item, as a file's own split ends."""
    prefixes = context.settings.prefixes
    rejects_key = derived_key(prefixes.rejects, ref.key, prefixes.imports, ".rejects.ndjson")
    if rejects.upload(context.s3, ref.bucket, rejects_key):
        report.rejects_key = rejects_key
    report.rejects_omitted += rejects.omitted
    if not report.status:  # an unexpected error is on its way up
        report.status, report.error = STATUS_FAILED, "internal error; see the function's log"
    report.finished_at = utc_now()
    write_report(
        context.s3, ref.bucket, report_key(prefixes.reports, prefixes.imports, ref.key), report.to_dict()
    )
    ledger = context.ledger
    if ledger is None:
        return
    if report.status == STATUS_FAILED:
        ledger.fail_split(ref, report.error or "failed", report.split_counts())
    elif ledger.finish_split(ref, report.split_counts()):
        publish_final_report(context.s3, ledger, ref, prefixes)
    logger.info("archive member split", extra={"key": ref.key, "status": report.status})


def _summary(member: ArchiveMember, report: ImportReport) -> dict[str, Any]:
    return {
        "member": member.name if member.safe_name == member.name else member.safe_name,
        "key": report.key,
        "status": report.status,
        "format": report.format,
        "compression": report.compression,
        "records_read": report.records_read,
        "messages_queued": report.messages_queued,
        "rejected": report.rejected,
        "error": report.error,
    }


def _add_totals(report: ImportReport, member: ImportReport) -> None:
    report.records_read += member.records_read
    report.messages_queued += member.messages_queued
    report.batches_queued += member.batches_queued
    report.rejected += member.rejected
    for reason, count in member.rejected_by_reason.items():
        report.rejected_by_reason[reason] = report.rejected_by_reason.get(reason, 0) + count
