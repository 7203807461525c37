"""Benchmark 7: `segment-importer preview` against the splitter, on the same NDJSON file.

The preview runs the splitter's own core (`split_records`) into a sink that decodes and
profiles every message (see src/segment_importer_local/preview.py); it also computes the
file's S3 ETag first (one MD5 pass), since message ids derive from it. The baseline,
measured in the same run right before it, is `split_stream` over the same file into the
in-memory sink of benchmark 1 (every SQS body built as `QueueWriter` builds it).

Reported: the preview's events per CPU second as a ratio of the splitter's (1.0 is "at the
splitter's speed"), and the peak RSS of a fresh process previewing the file against one
previewing a tenth of it (flat memory: a ratio near 1). Files are generated under /tmp
(distinct events, `data.write_events_file`) and deleted afterwards.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import data
from bench.common import median, peak_rss_mb, run_worker, timed

SPEED_TARGET = 0.5  # the preview at least half the splitter's events per CPU second
MEMORY_TARGET = 1.1  # peak(file) / peak(a tenth of it)


def run(events_count: int, repeats: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="segment-importer-bench-preview-", dir="/tmp"))
    try:
        path, tenth = folder / "events.ndjson", folder / "tenth.ndjson"
        content = data.write_events_file(path, events_count)
        data.write_events_file(tenth, max(1, events_count // 10))
        rows = []
        for _ in range(repeats):
            split, records = timed(lambda: _split(path))
            preview, previewed = timed(lambda: _preview(path))
            assert previewed == records, "the preview and the splitter disagree on the file"
            rows.append((split.cpu, preview.cpu))
        big, small = run_worker("bench.preview", str(path)), run_worker("bench.preview", str(tenth))
        split_cpu, preview_cpu = median([r[0] for r in rows]), median([r[1] for r in rows])
        return {
            "events": events_count,
            "bytes": content,
            "repeats": repeats,
            "splitter_events_per_cpu_second": events_count / split_cpu,
            "preview_events_per_cpu_second": events_count / preview_cpu,
            "ratio": median([split / preview for split, preview in rows]),
            "speed_target": SPEED_TARGET,
            "peak_rss_mb": big["max_rss_mb"],
            "peak_rss_mb_tenth": small["max_rss_mb"],
            "memory_ratio": big["max_rss_mb"] / small["max_rss_mb"],
            "memory_target": MEMORY_TARGET,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _split(path: Path) -> int:
    from bench.splitter_cpu import MemorySink
    from segment_importer.batch.packing import BatchLimits
    from segment_importer.job import JobOptions
    from segment_importer.split.splitter import split_stream
    from segment_importer.track.rejects import RejectsWriter
    from segment_importer.track.report import ImportReport

    report = ImportReport(bucket="b", key=f"imports/{path.name}", etag="etag", size_bytes=path.stat().st_size)
    rejects = RejectsWriter()
    with path.open("rb") as stream:
        split_stream(stream, report, JobOptions(), BatchLimits(), MemorySink(), rejects)
    rejects.close()
    return report.messages_queued


def _preview(path: Path) -> int:
    from segment_importer.job import JobOptions
    from segment_importer_local.preview import preview_files

    return preview_files([path], JobOptions())["would_send"]


def _worker(path: Path) -> dict[str, Any]:
    messages = _preview(path)
    return {"max_rss_mb": peak_rss_mb(), "messages": messages}


if __name__ == "__main__":
    print(json.dumps(_worker(Path(sys.argv[1]))))
