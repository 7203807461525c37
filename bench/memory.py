"""Benchmark 4: peak memory of the splitter over a 100 MB and a 1 GB input.

Each measurement is a fresh process that runs `splitter.split_stream` over a local file
(opened with `open(path, "rb")`, as the S3 body would be streamed) into a `CountingSink`,
and reports its own peak RSS (`ru_maxrss`). A `floor` process imports the same modules and
splits a one-line file: the interpreter and libraries alone. Sizes are of the uncompressed
content (a gzip file of "1 GB" holds 1 GB of NDJSON). Files are generated under /tmp by
repeating a block of generated events, and deleted afterwards.

Targets: peak(1 GB) / peak(100 MB) <= 1.1 for every format, and the peak well under the
splitter's MemorySize in template.yaml.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import data
from bench.common import peak_rss_mb, run_worker

MB = 1_000_000
RATIO_TARGET = 1.1
CASES = (("ndjson", False), ("ndjson", True), ("csv", False))


def splitter_memory_size() -> int:
    from segment_importer_local.template_config import StackTemplate

    return int(StackTemplate.load().function_property("SplitterFunction", "MemorySize"))


def run(sizes_mb: tuple[int, ...] = (100, 1000)) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="segment-importer-bench-memory-", dir="/tmp"))
    results: dict[str, Any] = {"sizes_mb": list(sizes_mb), "cases": {}}
    try:
        tiny = folder / "tiny.ndjson"
        tiny.write_bytes(data.ndjson(data.events(1)))
        results["floor_mb"] = _measure(tiny)["max_rss_mb"]
        for fmt, compressed in CASES:
            name = f"{fmt}{'+gzip' if compressed else ''}"
            per_size = {}
            for size in sizes_mb:
                path = folder / f"events-{size}mb.{data.EXTENSIONS[fmt]}{'.gz' if compressed else ''}"
                started = time.perf_counter()
                content = data.write_big_file(path, fmt, size * MB, compress=compressed)
                generated = time.perf_counter() - started
                measured = _measure(path)
                measured.update(
                    content_bytes=content, file_bytes=path.stat().st_size, generate_seconds=generated
                )
                per_size[str(size)] = measured
                path.unlink()
            peaks = [per_size[str(size)]["max_rss_mb"] for size in sizes_mb]
            results["cases"][name] = {
                "by_size": per_size,
                "ratio_largest_to_smallest": peaks[-1] / peaks[0],
                "peak_mb": max(peaks),
            }
        memory_size = splitter_memory_size()
        results["splitter_memory_size_mb"] = memory_size
        worst = max(case["peak_mb"] for case in results["cases"].values())
        results["worst_peak_mb"] = worst
        results["headroom"] = memory_size / worst
        return results
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _measure(path: Path) -> dict[str, Any]:
    return run_worker("bench.memory", str(path))


def _worker(path: Path) -> dict[str, Any]:
    from segment_importer.batch.packing import BatchLimits
    from segment_importer.job import JobOptions
    from segment_importer.split.splitter import CountingSink, split_stream
    from segment_importer.track.rejects import RejectsWriter
    from segment_importer.track.report import ImportReport

    report = ImportReport(bucket="b", key=f"imports/{path.name}", etag="etag", size_bytes=path.stat().st_size)
    sink, rejects = CountingSink(), RejectsWriter()
    cpu, wall = time.process_time(), time.perf_counter()
    with path.open("rb") as stream:
        split_stream(stream, report, JobOptions(), BatchLimits(), sink, rejects)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rejects.close()
    return {
        "max_rss_mb": peak_rss_mb(),
        "records": report.records_read,
        "messages": sink.messages_queued,
        "rejected": rejects.total,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
    }


if __name__ == "__main__":
    print(json.dumps(_worker(Path(sys.argv[1]))))
