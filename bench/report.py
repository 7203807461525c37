"""Targets (pass/fail) and the Markdown tables printed after a run."""

from __future__ import annotations

from typing import Any

from bench.common import fmt_rate, fmt_ratio, table


def targets(measured: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def add(name: str, value: float | None, threshold: float, *, at_most: bool = False) -> None:
        if value is None:
            return
        passed = value <= threshold if at_most else value >= threshold
        found.append(
            {"target": name, "value": value, "threshold": threshold, "at_most": at_most, "pass": passed}
        )

    if "splitter" in measured:
        cases = measured["splitter"]["cases"]
        add("splitter NDJSON / bare orjson.loads loop", cases["ndjson"]["ratio_to_baseline"], 0.50)
        add("splitter CSV / bare csv.DictReader loop", cases["csv"]["ratio_to_baseline"], 0.40)
    if "sender" in measured:
        add(
            "sender batches / naive Client.track+flush (per core)",
            measured["sender"]["ratio_to_naive"]["batches"],
            5.0,
        )
    if "rate_limit" in measured:
        bucket = measured["rate_limit"]["cases"][0]
        add("senders sharing MaxEventsPerSecond: events/s / the limit", bucket["ratio_to_limit"], 0.8)
        add(
            "senders sharing MaxEventsPerSecond: within limit + burst, nothing lost or doubled (1 = yes)",
            1.0 if measured["rate_limit"]["pass"] else 0.0,
            1.0,
        )
    if "e2e" in measured:
        e2e = measured["e2e"]
        add(
            "end to end: every event delivered (1 = yes)",
            1.0 if e2e["ok"] and e2e["small"]["ok"] else 0.0,
            1.0,
        )
        add("local run: large events/s / small events/s", e2e["linear"], e2e["targets"]["linear"])
        add("local run: large peak RSS / small", e2e["flat"], e2e["targets"]["flat"], at_most=True)
        add("local run: small events/s / Method 1's", e2e["over_method1"], e2e["targets"]["over_method1"])
    if "memory" in measured:
        memory = measured["memory"]
        for name, case in memory["cases"].items():
            sizes = memory["sizes_mb"]
            add(
                f"splitter peak RSS {name}: {sizes[-1]} MB / {sizes[0]} MB",
                case["ratio_largest_to_smallest"],
                1.1,
                at_most=True,
            )
        add(
            f"splitter peak RSS / MemorySize {memory['splitter_memory_size_mb']} MB (headroom: at most 0.5)",
            memory["worst_peak_mb"] / memory["splitter_memory_size_mb"],
            0.5,
            at_most=True,
        )
    if "preview" in measured:
        found_preview = measured["preview"]
        add(
            "preview events/CPU-s / splitter's (same file, same run)",
            found_preview["ratio"],
            found_preview["speed_target"],
        )
        add(
            "preview peak RSS: file / a tenth of it",
            found_preview["memory_ratio"],
            found_preview["memory_target"],
            at_most=True,
        )
    if "cost" in measured:
        add(
            "batch fill: minimum Segment requests / actual",
            measured["cost"]["per_million_events"]["batch_fill"],
            0.90,
        )
    return found


def render(results: dict[str, Any]) -> str:
    machine = results["machine"]
    load = ", ".join(f"{x:.2f}" for x in machine["load_average_at_start"])
    parts = [
        f"Machine: {machine['cpu_model']}, {machine['cores']} cores, {machine['memory_gb']} GB, "
        f"Python {machine['python']}, load average at start {load} "
        f"({machine['measured_at']})"
    ]
    measured = results["benchmarks"]
    if "splitter" in measured:
        parts.append(_splitter(measured["splitter"]))
    if "sender" in measured:
        parts.append(_sender(measured["sender"]))
    if "rate_limit" in measured:
        parts.append(_rate_limit(measured["rate_limit"]))
    if "e2e" in measured:
        parts.append(_end_to_end(measured["e2e"]))
    if "memory" in measured:
        parts.append(_memory(measured["memory"]))
    if "cost" in measured:
        parts.append(_cost(measured["cost"]))
    if "scale" in measured:
        from bench import scale

        parts.append(scale.render(measured["scale"]))
    if "spans" in measured:
        parts.append(_spans(measured["spans"]))
    if "preview" in measured:
        parts.append(_preview(measured["preview"]))
    if results.get("targets"):
        rows = [
            [
                t["target"],
                f"{t['value']:.3f}",
                ("<= " if t["at_most"] else ">= ") + f"{t['threshold']:g}",
                "PASS" if t["pass"] else "FAIL",
            ]
            for t in results["targets"]
        ]
        parts.append("### Targets\n\n" + table(["target", "measured", "target", "result"], rows))
    return "\n\n".join(parts)


def _splitter(result: dict[str, Any]) -> str:
    sizes = result["event_size_bytes"]
    size_range = f"{sizes['min']}-{sizes['max']}"
    rows = []
    for name, case in result["cases"].items():
        baseline = {"orjson_loop": "-", "dictreader_loop": "-"}.get(name)
        if baseline is None:
            baseline = "DictReader loop" if name.startswith("csv") else "orjson loop"
        rows.append(
            [
                name,
                fmt_rate(case["events_per_cpu_second"]),
                fmt_rate(case["events_per_wall_second"]),
                baseline,
                fmt_ratio(case["ratio_to_baseline"]),
                f"{case['spread']:.0%}",
            ]
        )
    batches = result["batches"]
    return (
        f"### 1. Splitter, events/s per core ({result['events']:,} events of {size_range} bytes, "
        f"median {sizes['median']}; median of {result['repeats']} repeats)\n\n"
        + table(["case", "events/CPU-s", "events/wall-s", "baseline", "ratio", "spread"], rows)
        + f"\n\nFull batches: {batches['messages_per_full_batch']:.0f} messages each, "
        f"{batches['mean_wire_bytes_full_batches']:,.0f} "
        f"wire bytes ({batches['byte_fill_of_batch_max_bytes']:.1%} of BatchMaxBytes, "
        f"{batches['byte_fill_of_500kb']:.1%} of 500 KB); requests "
        f"{batches['request_count_fill']:.1%} of the minimum the limits allow."
        + _floors_note(result["cases"])
    )


def _floors_note(cases: dict[str, Any]) -> str:
    if "ndjson floor" not in cases:  # results of a run before the floors were measured
        return ""
    return (
        "\n\nThe floors are the work no splitter can skip (parse or read the row, serialise the "
        "message, hash an id) with nothing else: "
        f"NDJSON {fmt_ratio(cases['ndjson floor']['ratio_to_baseline'])} of the orjson loop "
        f"(target 0.50), CSV {fmt_ratio(cases['csv floor']['ratio_to_baseline'])} of the "
        "DictReader loop (target 0.40)."
    )


def _spans(result: dict[str, Any]) -> str:
    rows = [
        [
            fmt,
            f"{case['events']:,}",
            f"{case['bytes'] / 1e6:.1f} MB",
            f"{case['sequential_cpu_seconds']:.3f}",
            f"{case['survey_share']:.1%}",
            f"{case['spans_over_sequential']:.2f}x",
            f"{case['critical_path_speedup']:.1f}x",
            "yes" if case["proven"] else "no",
        ]
        for fmt, case in result.items()
    ]
    spans = next(iter(result.values()))["spans"]
    return f"### 6. Byte ranges ({spans} spans) against the sequential split, CPU only\n\n" + table(
        ["format", "events", "size", "sequential CPU-s", "surveys", "spans' CPU", "critical path", "proven"],
        rows,
    )


def _preview(result: dict[str, Any]) -> str:
    row = [
        f"{result['events']:,}",
        f"{result['bytes'] / 1e6:.1f} MB",
        fmt_rate(result["splitter_events_per_cpu_second"]),
        fmt_rate(result["preview_events_per_cpu_second"]),
        f"**{result['ratio']:.2f}**",
        f"{result['peak_rss_mb']:.0f} MB / {result['peak_rss_mb_tenth']:.0f} MB "
        f"= {result['memory_ratio']:.2f}",
    ]
    headers = [
        "events",
        "size",
        "splitter events/CPU-s",
        "preview events/CPU-s",
        "ratio",
        "peak RSS: file / tenth",
    ]
    return "### 7. Preview against the splitter (NDJSON, same run)\n\n" + table(headers, [row])


def _sender(result: dict[str, Any]) -> str:
    rows = []
    for name, method in result["methods"].items():
        ratio = result["ratio_to_naive"].get(name)
        rows.append(
            [
                name,
                fmt_rate(method["events_per_cpu_second"]),
                fmt_rate(method["events_per_wall_second"]),
                fmt_ratio(ratio) if ratio else "1.00",
                f"{method['sender_cpu_per_1k_events_ms']:.1f}",
                f"{method['endpoint_cpu_per_1k_events_ms']:.1f}",
                f"{method['endpoint_cpu_share_of_wall']:.0%}",
                f"{method['requests']:,}",
            ]
        )
    return (
        f"### 2. Sender, events/s per core ({result['events']:,} events in {result['batches']} batches; "
        f"median of {result['repeats']} repeats; endpoint in its own process)\n\n"
        + table(
            [
                "method",
                "events/CPU-s",
                "events/wall-s",
                "ratio to naive",
                "sender CPU ms/1k",
                "endpoint CPU ms/1k",
                "endpoint CPU / wall",
                "requests",
            ],
            rows,
        )
    )


def _rate_limit(result: dict[str, Any]) -> str:
    keys = ("case", "limit_events_per_second", "events_per_second", "ratio_to_limit", "wall_seconds")
    keys += ("answered_429", "redelivered_batches", "lost", "doubled")
    rows = [
        [
            case["case"],
            fmt_rate(case["limit_events_per_second"]),
            fmt_rate(case["events_per_second"]),
            fmt_ratio(case["ratio_to_limit"]),
            f"{case['wall_seconds']:.1f}",
            f"{case['answered_429']:,}",
            f"{case['redelivered_batches']:,}",
            f"{case['lost']:,}",
            f"{case['doubled']:,}",
        ]
        for case in result["cases"]
    ]
    first = result["cases"][0]
    sweep = [
        [str(case["post_concurrency"]), fmt_rate(case["events_per_second"]), f"{case['lost']:,}"]
        for case in result.get("post_concurrency", [])
    ]
    return (
        f"### 8. Senders sharing MaxEventsPerSecond against a rate-limited endpoint ({first['events']:,} "
        f"events in {first['batches']} batches; {first['senders']} senders x {first['post_concurrency']} "
        "posts at once)\n\n"
        + table(list(keys), rows)
        + "\n\nSenderPostConcurrency, one invocation, every answer after "
        + f"{result.get('latency_seconds')} s:\n\n"
        + table(["posts at once", "events/wall-s", "lost"], sweep)
    )


def _end_to_end(result: dict[str, Any]) -> str:
    events = result["events"]
    inside_split = ", ".join(f"{k} {v:.1f} s" for k, v in result["split_inside"].items())
    inside_send = ", ".join(f"{k} {v:.1f} s" for k, v in result["send_inside"].items())
    rows = [
        [
            "whole run",
            f"{result['wall_seconds']:.1f}",
            fmt_rate(events / result["wall_seconds"]),
            "stack setup, split, send, copy-out",
        ],
        [
            "split phase",
            f"{result['split_seconds']:.1f}",
            fmt_rate(events / result["split_seconds"]),
            inside_split,
        ],
        [
            "send phase",
            f"{result['send_seconds']:.1f}",
            fmt_rate(events / result["send_seconds"]),
            inside_send,
        ],
    ]
    return (
        f"### 3. End to end, local stack ({events:,} events, {result['file_bytes'] / 1e6:,.0f} MB NDJSON, "
        f"{result['batches_queued']} batches, {result['sender_invocations']} sender invocations, "
        "split and send overlapping, the endpoint in a process of its own)\n\n"
        + table(
            [
                "phase",
                "wall s",
                "events/s",
                "inside (AWS API time in moto, summed over threads, waits for moto's lock included)",
            ],
            rows,
        )
        + _local_targets(result)
        + f"\n\nDelivered {result['messages_delivered']:,} of {result['messages_queued']:,}; "
        "endpoint accepted "
        f"{result['endpoint']['messages_accepted']:,}; peak RSS {result['max_rss_mb']:,.0f} MB in the "
        f"run's process, {result['peak_rss_mb']:,.0f} MB with the endpoint's."
    )


def _local_targets(result: dict[str, Any]) -> str:
    """Target 1's three runs, each in fresh processes, side by side."""
    rows = [
        [name, f"{run['events']:,}", f"{run['wall_seconds']:.1f}", fmt_rate(run["events_per_second"]), mb]
        for name, run, mb in (
            ("local run, small", result["small"], f"{result['small']['peak_rss_mb']:.0f}"),
            ("local run, large", result, f"{result['peak_rss_mb']:.0f}"),
            ("Method 1 (Client.track + flush), small", result["method1"], "-"),
        )
    ]
    ratios = (
        f"large/small events/s {result['linear']:.2f}, large/small peak RSS {result['flat']:.2f}, "
        f"small/Method 1 events/s {result['over_method1']:.2f}"
    )
    return "\n\n" + table(["run", "events", "wall s", "events/s", "peak RSS MB"], rows) + f"\n\n{ratios}."


def _memory(result: dict[str, Any]) -> str:
    sizes = result["sizes_mb"]
    rows = []
    for name, case in result["cases"].items():
        peaks = [case["by_size"][str(size)]["max_rss_mb"] for size in sizes]
        rows.append([name, *(f"{peak:.0f}" for peak in peaks), fmt_ratio(case["ratio_largest_to_smallest"])])
    return (
        f"### 4. Splitter peak RSS, MB (floor: interpreter and modules {result['floor_mb']:.0f} MB; "
        f"MemorySize {result['splitter_memory_size_mb']} MB)\n\n"
        + table(["input", *(f"{size} MB" for size in sizes), f"{sizes[-1]} MB / {sizes[0]} MB"], rows)
    )


def _cost(result: dict[str, Any]) -> str:
    per = result["per_million_events"]
    dollars = per["dollars"]
    rows = [[item, f"${value:.4f}"] for item, value in dollars.items()]
    rows.append(["total", f"${per['dollars_total']:.4f}"])
    other = not per["segment_gzip"]
    alternative = per["egress_gzip"] if other else per["egress_plain_json"]
    rows.append([f"(egress with SegmentGzip={str(other).lower()} instead)", f"${alternative:.4f}"])
    settings = result["template"]
    sqs = per["sqs_breakdown"]
    memory_rows = [
        [
            memory,
            f"{option['seconds_per_million']:.0f}",
            f"${option['dollars_per_million']:.4f}",
            f"{option['events_in_one_invocation'] / 1e6:.1f}M",
        ]
        for memory, option in result["splitter_memory_options"].items()
    ]
    return (
        "### 5. Cost per million events ("
        + result["prices"]["as_of"]
        + "; "
        + f"{settings['architecture']}, SegmentGzip={str(per['segment_gzip']).lower()} "
        "as in template.yaml)\n\n"
        f"Segment requests {per['segment_requests']:,.0f} (minimum {per['segment_requests_minimum']:,.0f}, "
        f"fill {per['batch_fill']:.1%}); "
        f"SQS requests billed {per['sqs_requests_billed']:,.0f} (send {sqs['send']:,.0f}, receive "
        f"{sqs['receive']:,.0f}, delete {sqs['delete']:,.0f}); sender invocations "
        f"{per['sender_invocations']:,.0f}; Lambda GB-s splitter {per['lambda_gb_seconds']['splitter']:.1f} "
        f"({settings['splitter_memory_mb']} MB), sender {per['lambda_gb_seconds']['sender']:.1f} "
        f"({settings['sender_memory_mb']} MB); "
        f"{per['wire_gb']:.2f} GB to Segment.\n\n"
        + table(["item", "$ per million events"], rows)
        + "\n\nSplitter memory options (modelled from the measured CPU time):\n\n"
        + table(
            ["MemorySize MB", "s per million", "$ per million", "events per 15-min invocation"], memory_rows
        )
    )
