"""The three kinds of splitter part, each owning how it is admitted, what it reads, where its
rejects go and how it finishes.

- `WholeFile`: what an S3 event starts; the whole object, or its first part. Admitted by
  `Ledger.start_split` (a retry of the same request id starts it over).
- `ContinuedPart`: a later part of a sequential split, from a checkpoint; plain files are
  read from the checkpoint's offset. Admitted by `Ledger.claim_part`.
- `SpanPart`: a part of one byte range of a file split in parallel; reads the range only,
  and its counts are the range's own. Admitted by `Ledger.claim_span_part`.

Each run of a part has an attempt number (the S3 event's run, counted by the ledger, or the
checkpoint's receive count); a part that fails on the last attempt Lambda will make marks
the import FAILED, an earlier failure leaves the import to the retry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from io import RawIOBase
from typing import Any

from segment_importer.import_ref import ImportRef
from segment_importer.job import JobOptions
from segment_importer.read.byte_ranges import PrefixedBody, SpanRead, span_records
from segment_importer.read.formats import RecordStream, ResumePoint, open_records
from segment_importer.settings import Prefixes, SplitterSettings
from segment_importer.split.continuation import Checkpoint
from segment_importer.split.s3_objects import ObjectIdentity, ProgressStream, S3ObjectHandle
from segment_importer.split.spans import SPAN_BATCH_STRIDE
from segment_importer.track import keys
from segment_importer.track.ledger import Ledger
from segment_importer.track.rejects import RejectsWriter
from segment_importer.track.report import ImportReport


@dataclass(slots=True)
class PartState:
    """What one run of a part knows and has done."""

    ref: ImportRef
    report: ImportReport
    claim: str  # the request id that claimed the import in the ledger
    number: int = 0
    attempt: int = 1  # 1 for the first run of this part; more for a retry
    after_record: int = 0  # records numbered up to this were handled by earlier parts
    resume: ResumePoint | None = None  # where the part starts reading, when known
    job: JobOptions | None = None
    rejects: RejectsWriter = field(default_factory=RejectsWriter)
    checkpoint: Checkpoint | None = None  # the next part's, when this part hands the rest over


class WholeFile:
    """The part an S3 event starts."""

    span: SpanRead | None = None
    writes_report = True
    starts_import = True  # checks the write key, reads the job file, may plan byte ranges

    def __init__(self, state: PartState) -> None:
        self.state = state
        self.spans_planned = 0  # this run only planned a split in byte ranges

    def admit(self, ledger: Ledger) -> bool:
        self.state.attempt = ledger.start_split(
            self.state.ref, self.state.report.size_bytes, self.state.claim
        )
        return bool(self.state.attempt)

    def last_attempt(self, settings: SplitterSettings) -> bool:
        return self.state.attempt >= settings.event_attempts

    def rejects_key(self, prefixes: Prefixes) -> str:
        return keys.rejects_key(prefixes, self.state.ref.key, part=self.state.number)

    @property
    def first_batch(self) -> int:
        return 1

    def open(self, s3: Any, on_bytes: Callable[[int], None] | None) -> RecordStream | None:
        """The whole object, or (plain) its rest from the resume point; gzip is decompressed
        again up to the point. None when the previous part stopped at the very end."""
        state, report = self.state, self.state.report
        point = state.resume if report.compression == "none" else None
        start, end = (point.offset if point else 0), report.size_bytes
        if point and start >= end:
            return None
        report.bytes_read = start  # progress counts the object's bytes up to where this part reads
        stream = _body(s3, state, start, end, point, on_bytes)
        return open_records(
            stream,
            state.ref.key,
            resume=state.resume,
            stream_at_resume=point is not None,
            csv_encoding=_job(state).encoding,
            # A resumed read starts mid-file: it goes on in the format the first part found.
            known_format=(report.format or None) if state.resume else None,
            dropped_columns=_job(state).dropped_columns(),
        )

    def next_checkpoint(self, after_record: int, resume: ResumePoint | None) -> Checkpoint:
        state = self.state
        span = self.span.to_document() if self.span else None
        return Checkpoint.build(
            state.report,
            state.claim,
            part=state.number + 1,
            after_record=after_record,
            resume=resume,
            span=span,
        )


class ContinuedPart(WholeFile):
    """A later part of a sequential split, from its checkpoint."""

    starts_import = False

    def admit(self, ledger: Ledger) -> bool:
        return ledger.claim_part(self.state.ref, self.state.number, self.state.attempt)

    def last_attempt(self, settings: SplitterSettings) -> bool:
        return self.state.attempt >= settings.continuation_attempts


class SpanPart(WholeFile):
    """A part of one byte range: reads the range only; its counts are the range's."""

    writes_report = False  # the import's report comes from the ledger, once every range is done
    starts_import = False

    def __init__(self, state: PartState, span: SpanRead) -> None:
        super().__init__(state)
        self.span = span

    def admit(self, ledger: Ledger) -> bool:
        state = self.state
        return ledger.claim_span_part(state.ref, self.span_index, state.number, state.attempt)

    def last_attempt(self, settings: SplitterSettings) -> bool:
        return self.state.attempt >= settings.continuation_attempts

    @property
    def span_index(self) -> int:
        return self.span.index if self.span else 0

    def rejects_key(self, prefixes: Prefixes) -> str:
        return keys.rejects_key(prefixes, self.state.ref.key, part=self.state.number, span=self.span_index)

    @property
    def first_batch(self) -> int:
        return self.span_index * SPAN_BATCH_STRIDE + 1  # batch numbers stay unique in the import

    def open(self, s3: Any, on_bytes: Callable[[int], None] | None) -> RecordStream | None:
        state, span = self.state, self.span
        assert span is not None  # set in __init__
        point = state.resume or span.start_point()
        start = point.offset if point else 0
        state.report.bytes_read = start - span.start  # a range's progress counts from its start
        stream = _body(s3, state, start, span.end, point, on_bytes)
        return span_records(span, stream, state.ref.key, encoding=_job(state).encoding, resume=state.resume)


Part = WholeFile  # every kind is one (ContinuedPart and SpanPart refine it)


def _job(state: PartState) -> JobOptions:
    if state.job is None:
        raise RuntimeError("the part's job options are loaded before it reads")
    return state.job


def _body(
    s3: Any,
    state: PartState,
    start: int,
    end: int,
    point: ResumePoint | None,
    on_bytes: Callable[[int], None] | None,
) -> RawIOBase:
    """The object's bytes [start, end), counted; a CSV read from the middle gets its header first."""
    ref, report = state.ref, state.report
    identity = ObjectIdentity(ref.etag, report.size_bytes)

    def count(size: int) -> None:
        report.bytes_read += size
        if on_bytes is not None:
            on_bytes(size)

    # A handle, not a plain stream: a reader that seeks (Parquet's footer) reads ranges through it.
    handle = S3ObjectHandle(s3, ref.bucket, ref.key, identity, start, end)
    stream: RawIOBase = ProgressStream(handle, count)
    if point and point.header_end:  # the header is read again, not counted as progress
        stream = PrefixedBody(handle.read_range(0, point.header_end), stream.read)
    return stream
