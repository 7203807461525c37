"""Benchmark 3: events through the whole local stack (moto + the embedded endpoint).

Generates an NDJSON file of distinct events under /tmp, then runs
`segment_importer_local.runner.run_import` on it in a worker process (as `make run`
does: the real splitter and sender handlers, moto for S3/SQS/SSM/DynamoDB, the embedded
endpoint on 127.0.0.1) and deletes the file and the run's output afterwards.

Reported: events/s and wall time, the split and send phases (the runner's own timings),
and inside them the time spent in AWS API calls (moto, per service), in the endpoint's
request handler, and the rest (the functions' own work). Everything runs in one process
here, endpoint included, so this is a pipeline figure for this machine, not a per-core one.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench import data
from bench.common import peak_rss_mb, run_worker


def run(events_count: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="segment-importer-bench-e2e-", dir="/tmp"))
    try:
        path = folder / "events.ndjson"
        started = time.perf_counter()
        size = data.write_events_file(path, events_count)
        generated = time.perf_counter() - started
        result = run_worker("bench.end_to_end", str(path), str(folder / "out"))
        result.update(events=events_count, file_bytes=size, generate_seconds=generated)
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- the worker ------------------------------------------------------------------------------


class _Clock:
    """Wall time spent in AWS API calls (per service) and in the endpoint's handler."""

    def __init__(self) -> None:
        self.aws: dict[str, float] = defaultdict(float)
        self.aws_calls: dict[str, int] = defaultdict(int)
        self.endpoint = 0.0

    def install(self) -> None:
        from botocore.client import BaseClient

        from segment_importer_local import segment_endpoint

        make_api_call = BaseClient._make_api_call
        do_post = segment_endpoint._Handler.do_POST
        clock = self

        def timed_api_call(client: Any, operation: str, params: Any) -> Any:
            service = client.meta.service_model.service_name
            started = time.perf_counter()
            try:
                return make_api_call(client, operation, params)
            finally:
                clock.aws[service] += time.perf_counter() - started
                clock.aws_calls[f"{service}.{operation}"] += 1

        def timed_post(handler: Any) -> None:
            started = time.perf_counter()
            try:
                do_post(handler)
            finally:
                clock.endpoint += time.perf_counter() - started

        BaseClient._make_api_call = timed_api_call  # type: ignore[method-assign]
        segment_endpoint._Handler.do_POST = timed_post  # type: ignore[method-assign]

    def snapshot(self) -> dict[str, Any]:
        return {"aws": dict(self.aws), "endpoint": self.endpoint}


def _worker(path: Path, out_dir: Path) -> dict[str, Any]:
    from segment_importer_local.runner import RunOptions, run_import

    clock = _Clock()
    clock.install()
    marks: dict[str, Any] = {}

    from segment_importer_local import runner

    split_all, deliver = runner._split_all, runner._deliver

    def split_all_marked(*args: Any, **kwargs: Any) -> Any:
        marks["split_start"] = clock.snapshot()
        try:
            return split_all(*args, **kwargs)
        finally:
            marks["split_end"] = clock.snapshot()

    def deliver_marked(*args: Any, **kwargs: Any) -> Any:
        marks["send_start"] = clock.snapshot()
        try:
            return deliver(*args, **kwargs)
        finally:
            marks["send_end"] = clock.snapshot()

    runner._split_all, runner._deliver = split_all_marked, deliver_marked
    cpu, wall = time.process_time(), time.perf_counter()
    result = run_import(RunOptions([path], out_dir=out_dir, show_progress=False))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    outcome = result.files[0]
    return {
        "ok": result.ok,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "split_seconds": result.split_seconds,
        "send_seconds": result.send_seconds,
        "split_inside": _inside(marks.get("split_start"), marks.get("split_end")),
        "send_inside": _inside(marks.get("send_start"), marks.get("send_end")),
        "aws_calls": dict(clock.aws_calls),
        "records_read": outcome.report.get("records_read"),
        "messages_queued": outcome.report.get("messages_queued"),
        "batches_queued": outcome.report.get("batches_queued"),
        "messages_delivered": getattr(outcome, "messages_delivered", None),
        "sender_invocations": result.sender_invocations,
        "endpoint": {
            key: (result.endpoint_stats or {}).get(key)
            for key in (
                "requests",
                "messages_accepted",
                "duplicates",
                "max_request_bytes",
                "max_batch_messages",
            )
        },
        "max_rss_mb": peak_rss_mb(),
    }


def _inside(start: dict[str, Any] | None, end: dict[str, Any] | None) -> dict[str, float]:
    if not start or not end:
        return {}
    spent = {
        f"aws_{service}": seconds - start["aws"].get(service, 0.0) for service, seconds in end["aws"].items()
    }
    spent["endpoint"] = end["endpoint"] - start["endpoint"]
    return {name: seconds for name, seconds in spent.items() if seconds > 0.0005}


if __name__ == "__main__":
    print(json.dumps(_worker(Path(sys.argv[1]), Path(sys.argv[2])), default=str))
