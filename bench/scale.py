"""Target 5 of issue 17, on paper: a 50 GB file and a billion events, from this run's figures.

Nothing here is measured on its own: every rate comes from a benchmark of the same run
(the splitter's CPU seconds per event and input bytes per event, benchmark 1; the sender's
CPU per event, benchmark 2; the batch fill and the dollars per million events, benchmark 5),
every setting from template.yaml, and the rest from the stated ASSUMPTIONS (Lambda's vCPU per
MB, S3 stream speed, one Segment POST's round trip, Segment's published limits). Change an
assumption and the tables follow.

How the work spreads, as the code does it:
- a plain NDJSON/CSV file over ParallelSplitBytes is cut into byte ranges (at most MAX_SPANS,
  larger spans beyond), SplitterMaxConcurrency of them at a time; each range is split in
  15-minute parts, one after another; a gzip file (or a JSON array) is one chain of parts;
- senders run while the file is still being split; their rate is the least of what
  SenderMaxConcurrency invocations post (each `posts_in_flight` POSTs at a time), Segment's
  per-workspace request limit, and MaxEventsPerSecond when the stack sets one.
"""

from __future__ import annotations

import math
from typing import Any

from bench.cost import ASSUMPTIONS as COST_ASSUMPTIONS
from bench.cost import vcpu_share

GB = 1e9
ASSUMPTIONS = {
    "segment_requests_per_second_per_workspace": 1000,  # Segment's guidance (segment-facts.md)
    "engage_events_per_second": 1000,  # Engage/Unify inbound (segment-facts.md)
    "max_spans": 500,  # split/spans.py MAX_SPANS
    "lambda_max_concurrency_default_quota": 1000,  # an account's default regional quota
}
SCENARIOS = {
    "50 GB NDJSON file (plain)": {"bytes": 50 * GB, "gzip": False},
    "50 GB of NDJSON in one gzip file (one chain of parts)": {"bytes": 50 * GB, "gzip": True},
    "1 billion events (plain NDJSON)": {"events": 1_000_000_000, "gzip": False},
}


def stack_settings() -> dict[str, Any]:
    from segment_importer_local.template_config import StackTemplate

    template = StackTemplate.load()
    parameters = template.parameter_defaults()

    def number(name: str, default: float) -> float:
        return float(parameters.get(name, default))

    return {
        "parallel_split_bytes": number("ParallelSplitBytes", 1 << 30),
        "splitter_max_concurrency": int(number("SplitterMaxConcurrency", 10)),
        "sender_max_concurrency": int(number("SenderMaxConcurrency", 5)),
        # Parameters other work may add; absent means one POST at a time, and no rate limit.
        "posts_in_flight": int(number("SenderPostConcurrency", 1)),
        "max_events_per_second": number("MaxEventsPerSecond", 0),
        "splitter_memory_mb": int(template.function_property("SplitterFunction", "MemorySize")),
        "sender_memory_mb": int(template.function_property("SenderFunction", "MemorySize")),
        "splitter_timeout_s": int(template.function_property("SplitterFunction", "Timeout")),
    }


def projection(measured: dict[str, Any], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every scenario under the template's defaults, and again tuned to reach Segment's limit."""
    settings = settings or stack_settings()
    rates = _rates(measured)
    tuned = _tuned_for_segment_limit(settings, rates)
    scenarios = {}
    for name, scenario in SCENARIOS.items():
        scenarios[name] = {
            "defaults": _scenario(scenario, rates, settings),
            "tuned": _scenario(scenario, rates, tuned),
            "engage_paced": _scenario(
                scenario, rates, {**tuned, "max_events_per_second": ASSUMPTIONS["engage_events_per_second"]}
            ),
        }
    assumptions = {**COST_ASSUMPTIONS, **ASSUMPTIONS}
    return {
        "assumptions": assumptions,
        "rates": rates,
        "defaults": settings,
        "tuned": tuned,
        "scenarios": scenarios,
    }


def _rates(measured: dict[str, Any]) -> dict[str, float]:
    splitter, sender, cost = measured["splitter"], measured["sender"], measured["cost"]
    fill = splitter["batches"]
    per_million = cost["per_million_events"]
    gzip_content = splitter["cases"].get("ndjson gzip", splitter["cases"]["ndjson"])
    without_egress = per_million["dollars_total"] - per_million["dollars"]["egress_to_segment"]
    return {
        "split_cpu_s_per_event": 1 / splitter["cases"]["ndjson"]["events_per_cpu_second"],
        "split_cpu_s_per_event_gzip": 1 / gzip_content["events_per_cpu_second"],
        "input_bytes_per_event": splitter["input_bytes"]["ndjson"] / splitter["events"],
        "send_cpu_s_per_event": sender["methods"]["batches"]["sender_cpu_per_1k_events_ms"] / 1e6,
        "messages_per_batch": fill["messages_per_full_batch"],
        # What changes with SegmentGzip is egress (its CPU cost is a few ten-thousandths of a dollar).
        "dollars_per_million": without_egress + per_million["egress_plain_json"],
        "dollars_per_million_gzip": without_egress + per_million["egress_gzip"],
    }


def _tuned_for_segment_limit(settings: dict[str, Any], rates: dict[str, float]) -> dict[str, Any]:
    """The fewest sender invocations (4 POSTs in flight each) that keep Segment's request
    limit busy, given what one invocation manages (its POSTs or its CPU share)."""
    tuned = {**settings, "splitter_max_concurrency": 100, "posts_in_flight": 4}
    segment = ASSUMPTIONS["segment_requests_per_second_per_workspace"] * rates["messages_per_batch"]
    per_invocation = _per_invocation(rates, tuned)
    cap = ASSUMPTIONS["lambda_max_concurrency_default_quota"]
    tuned["sender_max_concurrency"] = min(cap, max(2, math.ceil(segment / per_invocation)))
    return tuned


def _per_invocation(rates: dict[str, float], settings: dict[str, Any]) -> float:
    """Events/s one sender invocation posts: its POSTs in flight, unless its CPU share binds."""
    per_post = COST_ASSUMPTIONS["segment_post_seconds"]
    posts = settings["posts_in_flight"] * rates["messages_per_batch"] / per_post
    cpu = vcpu_share(settings["sender_memory_mb"]) / rates["send_cpu_s_per_event"]
    return min(posts, cpu)


def _scenario(scenario: dict[str, Any], rates: dict[str, float], settings: dict[str, Any]) -> dict[str, Any]:
    gzip = scenario["gzip"]
    size = scenario.get("bytes") or scenario["events"] * rates["input_bytes_per_event"]
    events = scenario.get("events") or size / rates["input_bytes_per_event"]
    split = _split_wall(size, events, gzip, rates, settings)
    send = _send_rate(rates, settings)
    send_wall = events / send["events_per_second"]
    # The file's own compression changes what is read, not what is sent: Segment's egress
    # depends on SegmentGzip, so both are given.
    dollars = events / 1e6 * rates["dollars_per_million"]
    dollars_gzip = events / 1e6 * rates["dollars_per_million_gzip"]
    return {
        "bytes": size,
        "events": events,
        **split,
        **send,
        "send_wall_s": send_wall,
        # Sending overlaps splitting: the import ends after the slower of the two, plus the
        # last part's batches.
        "wall_s": max(split["split_wall_s"], send_wall),
        "segment_requests": events / rates["messages_per_batch"],
        "dollars": dollars,
        "dollars_segment_gzip": dollars_gzip,
    }


def _split_wall(
    size: float, events: float, gzip: bool, rates: dict[str, float], settings: dict[str, Any]
) -> dict[str, Any]:
    cpu_per_event = rates["split_cpu_s_per_event_gzip" if gzip else "split_cpu_s_per_event"]
    share = vcpu_share(settings["splitter_memory_mb"])
    seconds_per_byte = 1 / (COST_ASSUMPTIONS["s3_read_mb_per_second"] * 1e6)
    span_bytes = settings["parallel_split_bytes"]
    if gzip or not span_bytes or size <= span_bytes:
        spans = 1
    else:
        spans = min(ASSUMPTIONS["max_spans"], math.ceil(size / span_bytes))
    span_events = events / spans
    # CPU and the S3 stream do not overlap inside one invocation (the splitter reads, then maps).
    span_seconds = span_events * cpu_per_event / share + size / spans * seconds_per_byte
    waves = math.ceil(spans / settings["splitter_max_concurrency"])
    return {
        "spans": spans,
        "span_seconds": span_seconds,
        "parts_per_span": math.ceil(span_seconds / settings["splitter_timeout_s"]),
        "split_wall_s": waves * span_seconds,
        "splitter_invocations_at_once": min(spans, settings["splitter_max_concurrency"]),
    }


def _send_rate(rates: dict[str, float], settings: dict[str, Any]) -> dict[str, Any]:
    senders = settings["sender_max_concurrency"] * _per_invocation(rates, settings)
    segment = ASSUMPTIONS["segment_requests_per_second_per_workspace"] * rates["messages_per_batch"]
    bounds = {"senders": senders, "segment limit": segment}
    if settings["max_events_per_second"]:
        bounds["MaxEventsPerSecond"] = settings["max_events_per_second"]
    bound = min(bounds, key=bounds.__getitem__)
    return {"events_per_second": bounds[bound], "send_bound": bound, "sender_events_per_second": senders}


def render(result: dict[str, Any]) -> str:
    from bench.common import table

    rows = []
    for name, variants in result["scenarios"].items():
        for label, found in variants.items():
            rows.append(
                [
                    name if label == "defaults" else "",
                    label,
                    f"{found['events'] / 1e6:,.0f}M",
                    f"{found['spans']} x {found['parts_per_span']} parts",
                    _duration(found["split_wall_s"]),
                    f"{found['events_per_second'] / 1e3:,.0f}k/s ({found['send_bound']})",
                    _duration(found["wall_s"]),
                    f"{found['segment_requests'] / 1e3:,.0f}k",
                    f"${found['dollars']:,.0f} / ${found['dollars_segment_gzip']:,.0f}",
                ]
            )
    tuned = result["tuned"]
    return (
        "### 9. At internet scale, on paper (rates from this run; `bench/scale.py`)\n\n"
        + table(
            [
                "input",
                "settings",
                "events",
                "ranges x parts",
                "split",
                "send rate (bound)",
                "import",
                "Segment requests",
                "cost (plain / SegmentGzip)",
            ],
            rows,
        )
        + f"\n\n`tuned`: SplitterMaxConcurrency {tuned['splitter_max_concurrency']}, SenderMaxConcurrency "
        f"{tuned['sender_max_concurrency']} with {tuned['posts_in_flight']} POSTs in flight each "
        f"(Segment's {ASSUMPTIONS['segment_requests_per_second_per_workspace']:,} requests/s at "
        f"{COST_ASSUMPTIONS['segment_post_seconds']} s per POST). `engage_paced`: the same, with "
        f"MaxEventsPerSecond {ASSUMPTIONS['engage_events_per_second']:,} (Engage/Unify's inbound limit)."
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
