"""Benchmark 3: events through the whole local stack (moto + the embedded endpoint).

Generates an NDJSON file of distinct events under /tmp, then runs
`segment_importer_local.runner.run_import` on it in a worker process (as `make run`
does: the real splitter and sender handlers, moto for S3/SQS/SSM/DynamoDB, the embedded
endpoint on 127.0.0.1) and deletes the file and the run's output afterwards.

Reported: events/s and wall time, the split and send phases (the runner's own timings),
and inside them the time spent in AWS API calls (moto, per service), in the endpoint's
request handler, and the rest (the functions' own work). This is a pipeline figure for
this machine, not a per-core one.

Target 1 of issue 17 (`run_targets`): the local run on a small and a large file of distinct
events (200k and 1M; `--quick` 20k and 100k), each in a fresh process, and Segment's
Method 1 (`Client`, `track` per event, `flush`, the default batch of 100) on the small file
against the same endpoint in a process of its own. Three same-run ratios: the large run's
events/s over the small run's (>= 0.8: linear), its peak RSS over the small run's (<= 1.5:
flat; the endpoint's process is counted when it runs apart), and the small run's events/s
over Method 1's (>= 8: fast). Events/s are wall-clock: the local run is what a user waits
for.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from bench import data
from bench.common import child_environment, peak_rss_mb, run_worker

LINEAR_TARGET = 0.8  # the large run's events/s over the small run's, at least
FLAT_TARGET = 1.5  # the large run's peak RSS over the small run's, at most
METHOD1_TARGET = 8.0  # the small run's events/s over Method 1's, at least


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


def run_targets(small: int, large: int) -> dict[str, Any]:
    """Issue 17 target 1: two local runs and Method 1, each in fresh processes (see above)."""
    folder = Path(tempfile.mkdtemp(prefix="segment-importer-bench-target1-", dir="/tmp"))
    try:
        runs: dict[str, Any] = {}
        for name, count in (("small", small), ("large", large)):
            path = folder / f"{name}.ndjson"
            size = data.write_events_file(path, count)
            runs[name] = run_worker("bench.end_to_end", str(path), str(folder / f"out-{name}"))
            runs[name].update(events=count, file_bytes=size)
            runs[name]["events_per_second"] = count / runs[name]["wall_seconds"]
            if name == "small":
                runs["method1"] = method1(path, count, folder / "method1-received.ndjson")
            path.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    small_run, large_run = runs["small"], runs["large"]
    return {
        **large_run,  # the phase table and the cost model read the large run's figures
        "small": small_run,
        "method1": runs["method1"],
        "linear": large_run["events_per_second"] / small_run["events_per_second"],
        "flat": large_run["peak_rss_mb"] / small_run["peak_rss_mb"],
        "over_method1": small_run["events_per_second"] / runs["method1"]["events_per_second"],
        "targets": {"linear": LINEAR_TARGET, "flat": FLAT_TARGET, "over_method1": METHOD1_TARGET},
    }


def method1(path: Path, events_count: int, received: Path) -> dict[str, Any]:
    """Segment's Method 1 on the file, posting to the endpoint the local run uses, started
    the same way (a process of its own, writing what it accepts to a file)."""
    from segment_importer_local.endpoint_process import EndpointProcess

    write_key = f"bench-{secrets.token_hex(8)}"
    with EndpointProcess(write_key, output_path=received) as endpoint:
        command = [sys.executable, "-m", "bench.end_to_end", "--method1", str(path), endpoint.url, write_key]
        completed = subprocess.run(command, env=child_environment(), capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"Method 1 worker failed:\n{completed.stderr[-4000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    accepted = endpoint.stats()["messages_accepted"]
    if accepted != events_count:
        raise RuntimeError(f"Method 1: the endpoint accepted {accepted} of {events_count} events")
    result.update(accepted=accepted, events_per_second=accepted / result["wall_seconds"])
    return result


def _method1_worker(path: Path, url: str, write_key: str) -> dict[str, Any]:
    """Read the file, one `track` (or page/identify) per event, then `flush`: the library's
    defaults but for a queue that holds the whole file (the default 10,000 drops events)."""
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    from segment.analytics import Client

    errors: list[Any] = []
    wall = time.perf_counter()
    lines = path.read_bytes().splitlines()
    client = Client(
        write_key, host=url, max_queue_size=len(lines) + 1, on_error=lambda e, b: errors.append(e)
    )
    for line in lines:
        kind, arguments = _method1_call(orjson.loads(line))
        getattr(client, kind)(**arguments)
    client.flush()
    wall = time.perf_counter() - wall
    client.shutdown()
    if errors:
        raise RuntimeError(f"Method 1 reported {len(errors)} errors, first: {errors[0]!r}")
    return {"wall_seconds": wall, "events": len(lines)}


def _method1_call(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kind = event["type"]
    arguments: dict[str, Any] = {
        "user_id": event.get("userId"),
        "anonymous_id": event.get("anonymousId"),
        "context": event.get("context") or {},
        "timestamp": datetime.fromisoformat(event["timestamp"]),
        "message_id": event.get("messageId"),
    }
    if kind == "track":
        arguments.update(event=event["event"], properties=event.get("properties") or {})
    elif kind == "page":
        arguments.update(name=event.get("name"), properties=event.get("properties") or {})
    else:
        arguments.update(traits=event.get("traits") or {})
    return kind, arguments


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
        # the whole local run: this process, and the endpoint's when it runs in its own
        "peak_rss_mb": peak_rss_mb() + float((result.endpoint_stats or {}).get("process_peak_rss_mb") or 0),
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
    if sys.argv[1] == "--method1":
        print(json.dumps(_method1_worker(Path(sys.argv[2]), sys.argv[3], sys.argv[4])))
    else:
        print(json.dumps(_worker(Path(sys.argv[1]), Path(sys.argv[2])), default=str))
