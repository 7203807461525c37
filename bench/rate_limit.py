"""Benchmark 8: many concurrent senders against a rate-limited Segment, sharing MaxEventsPerSecond.

N sender "invocations" (threads of this process, each running `sender.send_records` on up
to SenderBatchSize records at a time, posting them `post_concurrency` at once) drain an
in-memory work queue that behaves like SQS for them: a batch reported failed goes back with
its receive count raised. They post to the embedded endpoint in a process of its own, which
rate-limits like Segment: over its rate it answers 429 with `Retry-After: 1` and stores
nothing (a token bucket per request, `RequestRatePlan`). Two cases, same bodies:

* `bucket`: MaxEventsPerSecond = LIMIT, the token bucket item on moto's DynamoDB
  (deliver/rate_limit.py); the endpoint allows 1.25x that, as Segment's own limit would sit
  above the one chosen. Target: events/s >= 0.8 of LIMIT and events <= LIMIT * wall + burst.
* `429 only`: no MaxEventsPerSecond; the endpoint allows LIMIT and the senders rely on
  429 + Retry-After (the library's semantics, in the poster).

Then `SenderPostConcurrency`, what chose its default: one sender invocation at a time posting
1, 2, 5 or 10 batches at once to the endpoint answering every request after LATENCY seconds
(Segment's answer time for a ~470 KB POST, assumed: cost.py's ASSUMPTIONS), no rate limit.

In both cases: lost = messages never accepted, doubled = messages the endpoint saw twice (by
messageId); both must be 0. Throughput is accepted events / wall seconds from the first
post to the last answer.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any

import orjson

from bench.common import child_environment
from bench.sender_throughput import queued_bodies
from segment_importer_local.endpoint_faults import Fault

ENDPOINT_HEADROOM = 1.25  # Segment's limit, above the one the stack is configured with
LATENCY = 0.2  # seconds Segment takes to answer one full batch (assumed)
CONCURRENCIES = (1, 2, 5, 10)


class RequestRatePlan:
    """A fault plan (duck-typed `next_fault`) that answers 429 over `per_second` requests."""

    def __init__(self, per_second: float, burst: float) -> None:
        self._rate, self._burst = per_second, burst
        self._tokens, self._at = burst, time.monotonic()
        self._lock = threading.Lock()
        self.limited = 0

    def next_fault(self) -> Fault:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return Fault.ok()
            self.limited += 1
            return Fault.rate_limit(retry_after=1)


class LatencyPlan:
    """A fault plan that answers every request after `seconds` (a stall, then handled)."""

    def __init__(self, seconds: float) -> None:
        self._fault = Fault.stall(seconds)

    def next_fault(self) -> Fault:
        return self._fault


class AtomicItems:
    """moto's DynamoDB, one update at a time: DynamoDB applies each conditional update
    atomically; moto (plain Python) does not promise it between threads."""

    def __init__(self, client: Any) -> None:
        self._client, self._lock = client, threading.Lock()

    def update_item(self, **request: Any) -> Any:
        with self._lock:
            return self._client.update_item(**request)


class WorkQueue:
    """SQS as the senders see it: receive up to n records, failed ones come back."""

    def __init__(self, bodies: list[str]) -> None:
        self._ready = deque(
            {"messageId": f"sqs-{n}", "body": body, "attributes": {"ApproximateReceiveCount": "1"}}
            for n, body in enumerate(bodies)
        )
        self._in_flight = 0
        self._lock = threading.Lock()
        self.redelivered = 0

    def receive(self, count: int) -> list[dict[str, Any]] | None:
        """Records to send; [] when others are in flight (try again); None when all are done."""
        with self._lock:
            records = [self._ready.popleft() for _ in range(min(count, len(self._ready)))]
            self._in_flight += len(records)
            return records if records or self._in_flight else None

    def done(self, records: list[dict[str, Any]], failed: set[str]) -> None:
        with self._lock:
            self._in_flight -= len(records)
            for record in records:
                if record["messageId"] in failed:
                    receives = int(record["attributes"]["ApproximateReceiveCount"]) + 1
                    record["attributes"] = {"ApproximateReceiveCount": str(receives)}
                    self._ready.append(record)
                    self.redelivered += 1


def _endpoint(write_key: str, per_second: float, burst: float, latency: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.rate_limit", write_key, str(per_second), str(burst), str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_environment(),
    )


def _stop(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write("stop\n")
    process.stdin.flush()
    report = json.loads(process.stdout.readline())
    process.wait(timeout=30)
    return report


def _sender(queue: WorkQueue, services: Any, batch_size: int, timeout: float) -> None:
    from segment_importer.deliver.sender import send_records

    while (records := queue.receive(batch_size)) is not None:
        if not records:
            time.sleep(0.005)
            continue
        ends = time.monotonic() + timeout  # a fresh invocation's time
        response = send_records(records, services, remaining_seconds=lambda e=ends: e - time.monotonic())
        queue.done(records, {failure["itemIdentifier"] for failure in response["batchItemFailures"]})


def simulate(
    bodies: list[str],
    limit: float,
    *,
    bucket: bool,
    senders: int,
    post_concurrency: int,
    latency: float = 0.0,
) -> dict[str, Any]:
    from moto import mock_aws

    from segment_importer.deliver.rate_limit import EventRateLimit
    from segment_importer.deliver.segment_client import BatchPoster, SegmentTarget
    from segment_importer.deliver.sender import SenderServices
    from segment_importer.settings import Prefixes
    from segment_importer_local.runner import _FAKE_AWS_ENVIRONMENT
    from segment_importer_local.stack import LocalStack, environment
    from segment_importer_local.template_config import StackTemplate

    template = StackTemplate.load()
    batch_size = int(template.parameter_defaults()["SenderBatchSize"])
    timeout = float(template.function_property("SenderFunction", "Timeout"))
    expected = sum(orjson.loads(body)["message_count"] for body in bodies)
    mean_batch = expected / len(bodies)
    allowed = limit * (ENDPOINT_HEADROOM if bucket else 1.0) / mean_batch if limit else 0.0  # requests/s
    write_key = f"bench-{secrets.token_hex(8)}"
    endpoint = _endpoint(write_key, allowed, max(1.0, allowed), latency)
    assert endpoint.stdout is not None
    url = json.loads(endpoint.stdout.readline())["url"]
    try:
        with environment(_FAKE_AWS_ENVIRONMENT), mock_aws():  # moto only, never an account
            stack = LocalStack(template).create(write_key)
            rate_limit = (
                EventRateLimit(AtomicItems(stack.dynamodb), stack.table_name("RateLimitTable"), limit)
                if bucket
                else None
            )
            services = SenderServices(
                poster=BatchPoster(SegmentTarget(write_key, url, timeout_seconds=15.0)),
                s3=None,
                prefixes=Prefixes(),
                post_concurrency=post_concurrency,
                rate_limit=rate_limit,
            )
            queue = WorkQueue(bodies)
            threads = [
                threading.Thread(target=_sender, args=(queue, services, batch_size, timeout))
                for _ in range(senders)
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
    finally:
        report = _stop(endpoint)
    stats = report["stats"]
    accepted = stats["messages_accepted"]
    rate = accepted / wall
    burst = rate_limit.burst_events if rate_limit else 0.0
    return {
        "case": "bucket" if bucket else "429 only",
        "limit_events_per_second": limit,
        "senders": senders,
        "post_concurrency": post_concurrency,
        "events": expected,
        "batches": len(bodies),
        "wall_seconds": wall,
        "events_per_second": rate,
        "ratio_to_limit": rate / limit if limit else None,
        "within_limit_plus_burst": not limit or accepted <= limit * wall + burst,
        "answered_429": report["limited"],
        "requests": stats["requests"],
        "redelivered_batches": queue.redelivered,
        "lost": expected - accepted,
        "doubled": stats["duplicates"],
    }


def run(events_count: int, limit: float, senders: int = 5) -> dict[str, Any]:
    from segment_importer_local.template_config import StackTemplate

    post_concurrency = int(StackTemplate.load().parameter_defaults()["SenderPostConcurrency"])
    bodies = queued_bodies(events_count)
    cases = [
        simulate(bodies, limit, bucket=True, senders=senders, post_concurrency=post_concurrency),
        simulate(bodies, limit, bucket=False, senders=senders, post_concurrency=post_concurrency),
    ]
    bucket = cases[0]
    sweep = [
        simulate(bodies[:40], 0.0, bucket=False, senders=1, post_concurrency=workers, latency=LATENCY)
        for workers in CONCURRENCIES
    ]
    return {
        "cases": cases,
        "post_concurrency": [
            {key: case[key] for key in ("post_concurrency", "events_per_second", "wall_seconds", "lost")}
            for case in sweep
        ],
        "latency_seconds": LATENCY,
        "pass": bucket["ratio_to_limit"] >= 0.8
        and bucket["within_limit_plus_burst"]
        and all(case["lost"] == 0 and case["doubled"] == 0 for case in cases),
    }


def _serve(write_key: str, per_second: float, burst: float, latency: float) -> int:
    """The child: the embedded endpoint behind RequestRatePlan (per_second > 0) or LatencyPlan,
    reporting on stdin's first line."""
    import logging

    from segment_importer_local.segment_endpoint import SegmentEndpoint

    logging.disable(logging.CRITICAL)
    plan = RequestRatePlan(per_second, burst) if per_second > 0 else LatencyPlan(latency)
    endpoint = SegmentEndpoint(write_key, faults=plan).start()  # type: ignore[arg-type]
    print(json.dumps({"url": endpoint.url}), flush=True)
    sys.stdin.readline()
    endpoint.stop()
    limited = getattr(plan, "limited", 0)
    print(json.dumps({"stats": endpoint.stats(), "limited": limited}, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])))
