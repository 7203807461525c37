"""Benchmark 2: sender throughput per core against Segment's naive method, same run.

Both methods send the same messages (the splitter's output for the generated events) to
the embedded endpoint, which runs in a process of its own (started fresh for every
measurement, so dedupe state never carries over) and parses and checks every body:

* `batches` (this project): the sender core. For each SQS body as queued,
  `envelope.QueuedBatch.from_body` (the envelope only: the batch's bytes are not parsed) then
  `BatchPoster(...).deliver_raw(...)`, which posts those bytes with the library's wire
  (deliver/wire.py). Plain JSON bodies; `batches+gzip` is the `SegmentGzip=true` variant.
* `library` (the sender before issue 17): each body parsed whole with orjson, then the
  messages posted with segment-analytics-python's `request.post` (which serialises them
  again with `json.dumps`) under the request deadline, as the poster did when a post
  succeeds. The same-run measure of what posting the stored bytes saved.
* `naive` (the baseline Segment's docs describe): one `segment.analytics.Client`,
  `track()` (or `page()`/`identify()`) per message, then `flush()`. Its queue is sized to
  hold every message (the default 10,000 would drop some and flatter it); timestamps are
  turned into datetimes before timing starts. Everything else is the library's default.

Each measurement runs in a fresh process (as a Lambda invocation would), with its inputs
prepared before timing and frozen out of the garbage collector's sight (`gc.freeze`), so
neither method pays for the other's leftovers. Events/s per core = messages accepted by the
endpoint / CPU seconds of the sending process (all its threads). The endpoint's own CPU
seconds are reported next to the wall time: its share of a core shows whether it could be
the bottleneck. The ratio is taken within each
repeat and the median reported.
"""

from __future__ import annotations

import gc
import json
import logging
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from bench import data
from bench.common import Timing, child_environment, median, peak_rss_mb, spread, timed
from bench.splitter_cpu import split_once

TARGET = 5.0


class EndpointProcess:
    def __init__(self, write_key: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.endpoint_process", write_key],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_environment(),
        )
        self.url = json.loads(self.process.stdout.readline())["url"]  # type: ignore[union-attr]

    def stop(self) -> dict[str, Any]:
        stdin, stdout = self.process.stdin, self.process.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("the endpoint process has no pipes")
        stdin.write("stop\n")
        stdin.flush()
        report = json.loads(stdout.readline())
        self.process.wait(timeout=30)
        return report


def queued_bodies(events_count: int) -> list[str]:
    blob = data.ndjson(data.events(events_count))
    _, sink, _ = split_once(blob, "imports/bench/events.ndjson", keep=True)
    return sink.bodies or []


def send_batches(bodies: list[str], url: str, write_key: str, *, gzip: bool) -> int:
    from segment_importer.batch.envelope import QueuedBatch
    from segment_importer.deliver.segment_client import BatchPoster, SegmentTarget

    poster = BatchPoster(SegmentTarget(write_key, url, timeout_seconds=60, gzip=gzip))
    deadline = time.monotonic() + 3600
    delivered = 0
    for body in bodies:
        batch = QueuedBatch.from_body(body)
        delivered += poster.deliver_raw(batch.raw_batch, batch.message_count, deadline).delivered
    return delivered


def send_library(bodies: list[str], url: str, write_key: str) -> int:
    """The path before issue 17, as the poster ran it when a post succeeds: parse every body
    whole, let the library's `request.post` serialise the messages again, under the deadline."""
    from segment.analytics import request as segment_request

    from segment_importer.deliver import request_deadline

    request_deadline.install(segment_request._session)
    delivered = 0
    for body in bodies:
        messages = orjson.loads(body)["batch"]  # what QueuedBatch.from_body did
        request_deadline.call_within(
            60,
            segment_request.post,
            write_key,
            host=url,
            gzip=False,
            timeout=60,
            retry_count=0,
            batch=messages,
        )
        delivered += len(messages)
    return delivered


def naive_calls(bodies: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The messages as keyword arguments for Client.track/page/identify (prepared untimed)."""
    calls = []
    for body in bodies:
        for message in orjson.loads(body)["batch"]:
            kind = message["type"]
            arguments: dict[str, Any] = {
                "user_id": message.get("userId"),
                "anonymous_id": message.get("anonymousId"),
                "context": message.get("context") or {},
                "integrations": message.get("integrations") or {},
                "timestamp": datetime.fromisoformat(message["timestamp"]),
                "message_id": message["messageId"],
            }
            if kind == "track":
                arguments.update(event=message["event"], properties=message.get("properties") or {})
            elif kind == "page":
                arguments.update(name=message.get("name"), properties=message.get("properties") or {})
            elif kind == "identify":
                arguments.update(traits=message.get("traits") or {})
            calls.append((kind, arguments))
    return calls


def send_naive(calls: list[tuple[str, dict[str, Any]]], url: str, write_key: str) -> int:
    from segment.analytics import Client

    errors: list[Any] = []
    client = Client(
        write_key, host=url, max_queue_size=len(calls) + 1, on_error=lambda error, batch: errors.append(error)
    )
    for kind, arguments in calls:
        getattr(client, kind)(**arguments)
    client.flush()
    client.shutdown()
    if errors:
        raise RuntimeError(f"naive client reported {len(errors)} errors, first: {errors[0]!r}")
    return len(calls)


def measure(method: str, bodies_path: Path) -> dict[str, Any]:
    """One measurement: a fresh endpoint process and a fresh sending process."""
    write_key = f"bench-{secrets.token_hex(8)}"
    endpoint = EndpointProcess(write_key)
    try:
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.sender_throughput",
                method,
                str(bodies_path),
                endpoint.url,
                write_key,
            ],
            env=child_environment(),
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        report = endpoint.stop()
    if completed.returncode != 0:
        raise RuntimeError(f"sender worker ({method}) failed:\n{completed.stderr[-4000:]}")
    sent = json.loads(completed.stdout)
    timing = Timing(sent["wall"], sent["cpu"])
    stats = report["stats"]
    accepted = stats["messages_accepted"]
    return {
        "timing": timing,
        "accepted": accepted,
        "requests": stats["requests"],
        "endpoint_cpu": report["cpu_seconds"],
        "endpoint_rss_mb": report["max_rss_mb"],
        "sender_rss_mb": sent["max_rss_mb"],
        "rate_cpu": accepted / timing.cpu if timing.cpu else float("nan"),
        "rate_wall": accepted / timing.wall,
    }


def _worker(method: str, bodies_path: Path, url: str, write_key: str) -> dict[str, Any]:
    """Send the bodies one way; inputs are prepared (and frozen out of the GC's sight) first."""
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    import segment.analytics  # noqa: F401 - imports are not part of what is timed

    bodies = bodies_path.read_text().splitlines()
    if method == "naive":
        calls = naive_calls(bodies)
        action = lambda: send_naive(calls, url, write_key)  # noqa: E731
    elif method == "library":
        action = lambda: send_library(bodies, url, write_key)  # noqa: E731
    else:
        action = lambda: send_batches(bodies, url, write_key, gzip=method == "batches+gzip")  # noqa: E731
    gc.collect()
    gc.freeze()  # the prepared inputs are not the sender's garbage to collect
    timing, _ = timed(action)
    return {"cpu": timing.cpu, "wall": timing.wall, "max_rss_mb": peak_rss_mb()}


def run(events_count: int, repeats: int) -> dict[str, Any]:
    bodies = queued_bodies(events_count)
    expected = sum(orjson.loads(body)["message_count"] for body in bodies)
    methods = ("naive", "library", "batches", "batches+gzip")
    samples: dict[str, list[dict[str, Any]]] = {method: [] for method in methods}
    ratios: dict[str, list[float]] = {method: [] for method in methods[1:]}
    wall_ratios: dict[str, list[float]] = {method: [] for method in methods[1:]}
    folder = Path(tempfile.mkdtemp(prefix="segment-importer-bench-sender-", dir="/tmp"))
    bodies_path = folder / "bodies.ndjson"
    bodies_path.write_text("\n".join(bodies) + "\n")  # compact JSON: one body per line
    try:
        for _ in range(repeats):
            results = {method: measure(method, bodies_path) for method in methods}
            for method, result in results.items():
                if result["accepted"] != expected:
                    raise RuntimeError(
                        f"{method}: endpoint accepted {result['accepted']} of {expected} messages"
                    )
                samples[method].append(result)
            for method in ratios:
                ratios[method].append(results[method]["rate_cpu"] / results["naive"]["rate_cpu"])
                wall_ratios[method].append(results[method]["rate_wall"] / results["naive"]["rate_wall"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    batches = len(bodies)
    del bodies
    return {
        "events": expected,
        "repeats": repeats,
        "batches": batches,
        "methods": {method: _summary(samples[method]) for method in methods},
        "ratio_to_naive": {method: median(values) for method, values in ratios.items()},
        "ratio_to_naive_wall": {method: median(values) for method, values in wall_ratios.items()},
        "ratio_repeats": ratios,
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    timings: list[Timing] = [r["timing"] for r in results]
    events = results[0]["accepted"]
    endpoint_cpu = [r["endpoint_cpu"] for r in results]
    return {
        "events_per_cpu_second": median([r["rate_cpu"] for r in results]),
        "events_per_wall_second": median([r["rate_wall"] for r in results]),
        "spread": spread([r["rate_cpu"] for r in results]),
        "sender_cpu_seconds": median([t.cpu for t in timings]),
        "wall_seconds": median([t.wall for t in timings]),
        "requests": results[0]["requests"],
        "endpoint_cpu_seconds": median(endpoint_cpu),
        "endpoint_cpu_share_of_wall": median([r["endpoint_cpu"] / r["timing"].wall for r in results]),
        "endpoint_cpu_per_1k_events_ms": median(endpoint_cpu) / events * 1e6,
        "sender_cpu_per_1k_events_ms": median([t.cpu for t in timings]) / events * 1e6,
        "endpoint_max_rss_mb": max(r["endpoint_rss_mb"] for r in results),
        "sender_max_rss_mb": max(r["sender_rss_mb"] for r in results),
    }


if __name__ == "__main__":
    print(json.dumps(_worker(sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4])))
