"""Benchmark 6: a file split in parallel byte ranges, against the same file split sequentially.

On the generated events of benchmark 1 (NDJSON and CSV, plain), in one process, with the
object read from memory and SQS replaced by the in-memory sink:

* `sequential`: `split_stream` over the whole file (the baseline, measured in the same run);
* `survey`: every span's survey (align, count newlines; for CSV also the one-line proof);
* `spans`: every span's split (`span_records` + `split_records`).

Reported, as medians over repeats: the surveys' CPU as a share of the sequential split; the
spans' total CPU over the sequential split (what cutting costs); and the critical path when
every span runs at once (the slowest survey plus the slowest span's split) as a speed-up
over the sequential split. S3 and SQS time is not in these figures: in Lambda the survey is
mostly the time to read the span from S3.
"""

from __future__ import annotations

import io
import time
from typing import Any

from bench import data
from bench.common import median, timed
from bench.splitter_cpu import MemorySink

SPANS = 8


def run(events_count: int, repeats: int) -> dict[str, Any]:
    items = data.events(events_count)
    blobs = {"ndjson": data.ndjson(items), "csv": data.csv_bytes(items)}
    results = {}
    for fmt, blob in blobs.items():
        key = f"imports/bench/events.{fmt}"
        rows = []
        for _ in range(repeats):
            sequential, _ = timed(lambda blob=blob, key=key: _split_sequentially(blob, key))
            surveys, found = timed(lambda blob=blob, fmt=fmt: _survey_all(blob, fmt))
            spans, per_span = timed(lambda blob=blob, key=key, found=found: _split_spans(blob, key, found))
            rows.append((sequential.cpu, surveys.cpu, spans.cpu, max(found["cpu"]) + max(per_span)))
        sequential_cpu = median([row[0] for row in rows])
        results[fmt] = {
            "events": events_count,
            "bytes": len(blob),
            "spans": SPANS,
            "sequential_cpu_seconds": sequential_cpu,
            "survey_share": median([row[1] / row[0] for row in rows]),
            "spans_over_sequential": median([row[2] / row[0] for row in rows]),
            "critical_path_speedup": median([row[0] / row[3] for row in rows]),
            "proven": found["proven"],
        }
    return results


def _split_sequentially(blob: bytes, key: str) -> int:
    from bench.splitter_cpu import split_once

    report, _, _ = split_once(blob, key)
    return report.records_read


def _survey_all(blob: bytes, fmt: str) -> dict[str, Any]:
    """Every span's survey, and the CPU each took (the slowest bounds the critical path)."""
    from segment_importer.read.byte_ranges import csv_header, plan_spans
    from segment_importer.read.formats import MAX_RECORD_BYTES

    header = csv_header(blob[:MAX_RECORD_BYTES], ",", "utf-8") if fmt == "csv" else None
    surveys, cpu = [], []
    for nominal in plan_spans(len(blob), -(-len(blob) // SPANS), SPANS):
        started = time.process_time()  # not `timed`: its full collection would be counted outside
        surveys.append(_survey(blob, nominal, fmt))
        cpu.append(time.process_time() - started)
    return {
        "surveys": surveys,
        "cpu": cpu,
        "header": header,
        "proven": not any(survey.problem for survey in surveys),
    }


def _survey(blob: bytes, nominal: tuple[int, int], fmt: str) -> Any:
    from segment_importer.read.byte_ranges import AlignedSpan, SpanSurvey, csv_span_problem
    from segment_importer.read.formats import MAX_RECORD_BYTES

    origin = max(nominal[0] - 1, 0)
    span = AlignedSpan(_reader(blob, origin), nominal, len(blob))
    problem = csv_span_problem(span, ",", "utf-8", MAX_RECORD_BYTES) if fmt == "csv" else None
    span.read_to_end()
    return SpanSurvey(span.start, span.end, span.newlines, problem)


def _reader(blob: bytes, origin: int) -> Any:
    stream = io.BytesIO(blob)
    stream.seek(origin)
    return stream.read


def _split_spans(blob: bytes, key: str, found: dict[str, Any]) -> list[float]:
    """Every span split as its worker splits it; returns each span's CPU seconds."""
    from segment_importer.batch.packing import BatchLimits
    from segment_importer.job import JobOptions
    from segment_importer.read.byte_ranges import PrefixedBody, SpanRead, first_lines, span_records
    from segment_importer.split.spans import SPAN_BATCH_STRIDE
    from segment_importer.split.splitter import split_records
    from segment_importer.track.rejects import RejectsWriter
    from segment_importer.track.report import ImportReport

    surveys, header = found["surveys"], found["header"]
    fmt = "csv" if header else "ndjson"
    cpu = []
    for index, (survey, first) in enumerate(zip(surveys, first_lines(surveys), strict=True)):
        span = SpanRead(
            index, len(surveys), survey.start, survey.end, first, fmt,
            header.line if header else 0, header.end if header else 0,
        )  # fmt: skip

        def split(span: SpanRead = span) -> None:
            body = io.BytesIO(blob[span.start : span.end])
            stream = PrefixedBody(blob[: span.header_end], body.read) if span.csv_prefix else body
            report = ImportReport(bucket="b", key=key, etag="0123456789abcdef", size_bytes=len(blob))
            rejects = RejectsWriter()
            try:
                records = span_records(span, stream, key)
                first_batch = span.index * SPAN_BATCH_STRIDE + 1
                sink = MemorySink()
                split_records(
                    records, report, JobOptions(), BatchLimits(), sink, rejects, first_batch=first_batch
                )
            finally:
                rejects.close()

        started = time.process_time()
        split()
        cpu.append(time.process_time() - started)
    return cpu
