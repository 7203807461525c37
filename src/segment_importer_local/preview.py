"""`segment-importer preview FILE...`: see what an import would send before sending it.

Each file goes through the splitter's own core (`split_records`: the same readers, mapper,
validation, shaping and packing, the same message ids), into a sink that looks at every
message instead of queuing it. Nothing is sent and no local stack is started. Memory stays
flat: messages are summarised as they pass (see `message_profile`), only the first few are
kept as samples, and rejects are counted with their first record numbers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from segment_importer.batch.packing import Batch, BatchLimits
from segment_importer.job import JobOptions, JobOptionsError, job_file_candidates, parse_job_document
from segment_importer.mapping.shaping import redacted
from segment_importer.read.formats import FileFormatError, open_records
from segment_importer.read.handle import FileHandle
from segment_importer.split.s3_objects import ProgressStream
from segment_importer.split.splitter import split_records
from segment_importer.track.rejects import RejectsWriter
from segment_importer.track.report import ImportReport
from segment_importer_local.disk_exports import s3_etag
from segment_importer_local.errors import usage_error
from segment_importer_local.inputs import InputError, InputFile, find_inputs
from segment_importer_local.message_profile import MessageProfile

DEFAULT_SAMPLES = 5
FIRST_RECORDS_KEPT = 5  # per reject reason


class PreviewSink:
    """Where the splitter's batches go in a preview: each message decoded, as it would be sent,
    summarised, and (optionally) written to `mapped` as NDJSON."""

    def __init__(self, profile: MessageProfile, samples: int, mapped: IO[bytes] | None = None) -> None:
        self.batches_queued = 0
        self.messages_queued = 0
        self.profile = profile
        self.samples: list[dict[str, Any]] = []
        self._wanted = samples
        self._mapped = mapped

    def put(self, batch: Batch) -> None:
        self.batches_queued += 1
        self.messages_queued += batch.size
        add, samples = self.profile.add, self.samples
        for body in batch.bodies:
            message = orjson.loads(body)
            add(message)
            if len(samples) < self._wanted:
                samples.append(message)
        if self._mapped is not None:
            self._mapped.write(b"\n".join(batch.bodies) + b"\n")

    def flush(self) -> None:
        pass


class FirstRejects(RejectsWriter):
    """Rejects counted per reason with the first record numbers; no record content kept."""

    def __init__(self, file: str, first: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__(max_bytes=0)
        self._file_name = file
        self.first = first

    def add(self, number: int | None, reason: str, detail: str | None, record: Any) -> None:
        self.by_reason[reason] += 1
        kept = self.first.setdefault(reason, [])
        if len(kept) < FIRST_RECORDS_KEPT:
            kept.append({"file": self._file_name, "record": number, "detail": detail})


@dataclass
class PreviewRun:
    """The files of one preview, summarised together."""

    job: JobOptions
    samples: int = DEFAULT_SAMPLES
    mapped: IO[bytes] | None = None
    on_bytes: Callable[[int], None] | None = None
    profile: MessageProfile = field(default_factory=MessageProfile)
    first_rejects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    reports: list[ImportReport] = field(default_factory=list)
    sample_messages: list[dict[str, Any]] = field(default_factory=list)
    job_files: list[str | None] = field(default_factory=list)  # per file, the job file that governed it

    def add_file(self, path: Path, job: JobOptions | None = None, job_file: str | None = None) -> None:
        """One file, under `job` (the run's own without one); `job_file` names where it came from."""
        job = job or self.job
        size = path.stat().st_size
        report = ImportReport(bucket="(preview)", key=path.name, etag=s3_etag(path), size_bytes=size)
        report.job = job.to_document()
        self.job_files.append(job_file)
        sink = PreviewSink(self.profile, self.samples - len(self.sample_messages), self.mapped)
        rejects = FirstRejects(path.name, self.first_rejects)
        try:
            # A handle, not a plain stream: a reader that seeks (Parquet) reads ranges through it.
            with FileHandle(path) as handle:
                records = open_records(
                    ProgressStream(handle, self.on_bytes), path.name, csv_encoding=job.encoding
                )
                split_records(records, report, job, BatchLimits(), sink, rejects)
        except (FileFormatError, JobOptionsError) as error:
            report.error = str(error)
        finally:
            rejects.close()
        self.sample_messages += sink.samples
        self.reports.append(report)

    def result(self) -> dict[str, Any]:
        reports = self.reports
        by_reason: dict[str, int] = {}
        filtered_by: dict[str, int] = {}
        for report in reports:
            for reason, count in report.rejected_by_reason.items():
                by_reason[reason] = by_reason.get(reason, 0) + count
            for rule, count in report.filtered_by.items():
                filtered_by[rule] = filtered_by.get(rule, 0) + count
        records = sum(report.records_read for report in reports)
        rejected = sum(by_reason.values())
        filtered = sum(filtered_by.values())
        return {
            "records": records,
            "valid": records - rejected,
            "rejected": rejected,
            "by_reason": {
                reason: {"count": count, "first_records": self.first_rejects.get(reason, [])}
                for reason, count in sorted(by_reason.items(), key=lambda item: -item[1])
            },
            "filtered": filtered,
            "filtered_by": filtered_by,
            "would_send": sum(report.messages_queued for report in reports),
            **self.profile.result(),
            "samples": self.sample_messages,
            "files": [
                {**_file_summary(report), "job_file": job_file}
                for report, job_file in zip(reports, self.job_files, strict=True)
            ],
            "job": redacted(_shared_job(reports, self.job.to_document())),
        }


def preview_files(
    paths: list[Path],
    job: JobOptions,
    *,
    samples: int = DEFAULT_SAMPLES,
    mapped: IO[bytes] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The preview document of `paths` under `job` (the keys `--json` prints)."""
    run = PreviewRun(job, samples=samples, mapped=mapped, on_bytes=on_bytes)
    for path in paths:
        run.add_file(path)
    return run.result()


def preview_inputs(
    inputs: list[InputFile],
    config: Path | None,
    *,
    samples: int = DEFAULT_SAMPLES,
    mapped: IO[bytes] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The preview of `find_inputs`' files, each under the job `run` gives it: the nearest
    job.json among the inputs (its folder's, else a parent's), else `config` (the drop's
    root job file), else the defaults. Each file entry names its `job_file`."""
    root = job_options(config)
    run = PreviewRun(root, samples=samples, mapped=mapped, on_bytes=on_bytes)
    job_files = {item.relative: item.path for item in inputs if item.is_job_file}
    loaded: dict[Path, JobOptions] = {}
    for item in inputs:
        if item.is_job_file:
            continue
        candidates = (job_files.get(key) for key in job_file_candidates(item.relative, ""))
        nearest = next((path for path in candidates if path is not None), None)
        if nearest is None:
            run.add_file(item.path, root, str(config) if config else None)
            continue
        if nearest not in loaded:
            loaded[nearest] = job_options(nearest)
        run.add_file(item.path, loaded[nearest], str(nearest))
    return run.result()


def _shared_job(reports: list[ImportReport], fallback: dict[str, Any]) -> dict[str, Any]:
    """The job of every file when they share one; else `fallback` (each file names its own)."""
    documents = [report.job for report in reports]
    return documents[0] if documents and all(doc == documents[0] for doc in documents) else fallback


def read_to_its_end(document: dict[str, Any]) -> bool:
    """Every file opened and read to its end (rejected records aside)."""
    return all(not entry["error"] and entry["read_to_its_end"] for entry in document["files"])


def _file_summary(report: ImportReport) -> dict[str, Any]:
    return {
        "file": report.key,
        "format": report.format,
        "compression": report.compression,
        "size_bytes": report.size_bytes,
        "records": report.records_read,
        "rejected": report.rejected,
        "filtered": report.filtered,
        "would_send": report.messages_queued,
        "read_to_its_end": "file_unreadable" not in report.rejected_by_reason,
        "error": report.error,
    }


# --- the command ------------------------------------------------------------------------------


def add_preview_parser(subparsers: Any) -> None:
    """Register `segment-importer preview` (one line in cli.py calls this)."""
    preview = subparsers.add_parser(
        "preview",
        help="map and validate export files as the splitter would, send nothing, and summarise them",
    )
    preview.add_argument("files", nargs="+", type=Path, metavar="FILE", help="export files, or folders")
    preview.add_argument("--config", type=Path, help="job file (the job.json format), shaping included")
    preview.add_argument("--json", action="store_true", help="print the preview as JSON on stdout")
    preview.add_argument("--html", type=Path, metavar="PATH", help="also write a self-contained HTML page")
    preview.add_argument(
        "--sample",
        type=int,
        default=DEFAULT_SAMPLES,
        metavar="N",
        help=f"mapped messages to show as they would be sent (default {DEFAULT_SAMPLES})",
    )
    preview.add_argument(
        "--mapped", type=Path, metavar="PATH", help="write every mapped message here (NDJSON)"
    )
    preview.add_argument("--no-progress", action="store_true", help="no progress bar")
    preview.set_defaults(command=run_preview_command)


def run_preview_command(arguments: argparse.Namespace) -> int:
    from segment_importer_local.preview_view import PreviewProgress, print_preview

    if arguments.sample < 0:
        raise usage_error("--sample must be 0 or more")
    try:  # folders as `run` reads them: recursively, each file under its nearest job.json
        inputs = find_inputs(arguments.files)
    except InputError as error:
        raise usage_error(str(error)) from None
    total = sum(item.path.stat().st_size for item in inputs if not item.is_job_file)
    show_progress = not arguments.no_progress and sys.stderr.isatty()
    with PreviewProgress(total, enabled=show_progress) as progress, _mapped_file(arguments.mapped) as mapped:
        document = preview_inputs(
            inputs, arguments.config, samples=arguments.sample, mapped=mapped, on_bytes=progress.advance
        )
    if arguments.html:
        from segment_importer.track.report_page import preview_page

        arguments.html.parent.mkdir(parents=True, exist_ok=True)  # `--html out/preview.html` on a fresh clone
        arguments.html.write_text(preview_page(document), encoding="utf-8")
    if arguments.json:
        sys.stdout.write(
            orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
        )
        sys.stdout.write("\n")
    else:
        print_preview(document, html=arguments.html, mapped=arguments.mapped)
    return 0 if read_to_its_end(document) else 1


def job_options(config: Path | None) -> JobOptions:
    """The options of a job file (defaults without one); a bad file exits with its error."""
    if config is None:
        return JobOptions()
    try:
        document = parse_job_document(config.read_bytes(), str(config))
    except (OSError, JobOptionsError) as error:
        raise SystemExit(f"error: {error}") from None
    return JobOptions().merged_with(document)


def _mapped_file(path: Path | None) -> Any:
    if path is None:
        return nullcontext()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("wb")
