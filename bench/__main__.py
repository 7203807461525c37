"""Run the benchmarks: `make bench` (all) or `make bench ARGS=--quick` (small and fast).

    .venv/bin/python -m bench [--quick] [--only splitter,sender,e2e,memory,cost,spans,preview]
                              [--events N] [--repeats N] [--sender-events N]
                              [--e2e-events N] [--memory-sizes 100,1000]
                              [--preview-events N] [--code PATH] [--out PATH]

Prints the results as Markdown tables, the targets as pass/fail, and writes everything
to bench/results/latest.json (git-ignored). Absolute figures depend on the machine and
its load; the ratios compare with baselines measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS = ("splitter", "sender", "e2e", "memory", "cost", "spans", "preview", "rate_limit")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, fewer repeats (a few minutes)")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help="comma-separated subset of " + ",".join(BENCHMARKS)
    )
    parser.add_argument("--events", type=int, help="events for the splitter benchmark (default 200,000)")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 5; --quick 3)")
    parser.add_argument("--sender-events", type=int, help="events for the sender benchmark (default 60,000)")
    parser.add_argument(
        "--e2e-events",
        type=int,
        help="events of the large local run (default 1,000,000; --quick 100,000); the small run is a fifth",
    )
    parser.add_argument(
        "--memory-sizes", help="input sizes in MB for the memory benchmark (default 100,1000)"
    )
    parser.add_argument("--preview-events", type=int, help="events for the preview (default 1,000,000)")
    parser.add_argument("--rate-limit", type=float, help="MaxEventsPerSecond to simulate (default 5,000)")
    parser.add_argument("--code", help="run against another segment_importer tree (see bench/reference.py)")
    parser.add_argument(
        "--out", type=Path, help="where to write the JSON (default bench/results/latest.json)"
    )
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}; choose from {BENCHMARKS}")
    quick = args.quick
    args.events = args.events or (30_000 if quick else 200_000)
    args.sender_repeats = args.repeats or (3 if quick else 5)
    args.repeats = args.repeats or (3 if quick else 5)
    args.sender_events = args.sender_events or (20_000 if quick else 60_000)
    args.e2e_events = args.e2e_events or (100_000 if quick else 1_000_000)
    args.preview_events = args.preview_events or (100_000 if quick else 1_000_000)
    args.rate_limit = args.rate_limit or 5_000.0
    sizes = args.memory_sizes or ("10,100" if quick else "100,1000")
    args.memory_sizes = tuple(int(size) for size in sizes.split(","))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.code:
        import os

        sys.path.insert(0, str(Path(args.code).resolve()))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(Path(args.code).resolve()), os.environ.get("PYTHONPATH")])
        )
    import segment_importer
    from bench import (
        common,
        cost,
        end_to_end,
        memory,
        preview,
        rate_limit,
        report,
        scale,
        sender_throughput,
        spans,
        splitter_cpu,
    )

    results: dict[str, Any] = {
        "machine": common.machine(),
        "arguments": {key: value for key, value in vars(args).items() if key != "out"},
        "code": str(Path(segment_importer.__file__).resolve().parent),
        "benchmarks": {},
    }
    started = time.perf_counter()
    steps = {
        "splitter": lambda: splitter_cpu.run(args.events, args.repeats),
        "sender": lambda: sender_throughput.run(args.sender_events, args.sender_repeats),
        "e2e": lambda: end_to_end.run_targets(args.e2e_events // 5, args.e2e_events),
        "memory": lambda: memory.run(args.memory_sizes),
        "spans": lambda: spans.run(args.events, args.repeats),
        "preview": lambda: preview.run(args.preview_events, 1 if not args.quick else args.repeats),
        # about 12 s of sending per case at the limit: long enough that the burst is a small part
        "rate_limit": lambda: rate_limit.run(
            int(args.rate_limit * (6 if args.quick else 12)), args.rate_limit
        ),
    }
    for name, step in steps.items():
        if name in args.only:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            step_started = time.perf_counter()
            results["benchmarks"][name] = step()
            print(f"  {name} took {time.perf_counter() - step_started:.0f} s", file=sys.stderr, flush=True)
    measured = results["benchmarks"]
    if "cost" in args.only and "splitter" in measured and "sender" in measured:
        measured["cost"] = cost.model(measured["splitter"], measured["sender"], measured.get("e2e"))
        measured["scale"] = scale.projection(measured)
    results["targets"] = report.targets(measured)
    results["seconds"] = time.perf_counter() - started
    out = args.out or common.RESULTS_DIR / "latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(report.render(results))
    print(f"\nJSON: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
