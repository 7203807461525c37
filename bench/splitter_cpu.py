"""Benchmark 1: splitter events/s per core, by format, against bare-parser baselines.

The splitter core (`splitter.split_stream`) reads the generated file from an in-memory
stream and packs into an in-memory sink that builds each SQS body exactly as `QueueWriter`
does (`queueing.batch_body`, decoded to text, sized), so serialisation is counted; only the
SQS call is left out. Baselines, measured in the same process and the same repeat:

* `orjson loop`: `for line in stream: orjson.loads(line)` over the same NDJSON bytes;
* `DictReader loop`: `for row in csv.DictReader(text stream): pass` over the same CSV bytes.

Two floors show what the targets leave room for, measured the same way against the same
baselines: `ndjson floor` is `orjson.loads`, `orjson.dumps` and a SHA-1 id per line, and
`csv floor` is the DictReader row, `orjson.dumps` and a SHA-1 id: the work any splitter
that parses a record, serialises its message and derives an id cannot skip, with no
mapping, validation or packing at all.

Two CSV stages show how much of a CSV row is the CSV's own work, against the same
DictReader loop: `csv reader` is the splitter's reader alone (`open_records`, a record per
row), and `csv reader+shapes` adds the typing and nesting of the cells
(`MessageMapper._shape_input`, the row shapes of `mapping/csv_shapes.py`). What is left of
the CSV case is the general path every record takes.

Rates are events per CPU second of this (single-threaded) process, i.e. per core; wall
rates are kept too. Each repeat measures every case once, each right after its baseline,
and the ratio is taken between those neighbours; the figure reported is the median of the
ratios over repeats (and the median of the rates). gzip cases are
compared with the plain baseline (the baseline does not decompress), so their ratios also
carry the cost of gunzip.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench import data
from bench.common import Timing, median, spread, timed

TARGETS = {"ndjson": 0.50, "csv": 0.40}
CASES = (
    ("ndjson", False),
    ("ndjson", True),
    ("csv", False),
    ("csv", True),
    ("json_array", False),
    ("json_array", True),
)
BASELINE_FOR = {"ndjson": "orjson_loop", "json_array": "orjson_loop", "csv": "dictreader_loop"}
FLOORS = {
    "ndjson floor": ("ndjson", "orjson_loop"),
    "csv floor": ("csv", "dictreader_loop"),
    "csv reader": ("csv", "dictreader_loop"),
    "csv reader+shapes": ("csv", "dictreader_loop"),
}


class MemorySink:
    """QueueWriter without SQS: builds every body (bytes -> text, sized) and keeps counts."""

    def __init__(self, *, keep: bool = False) -> None:
        from segment_importer.batch.envelope import batch_body
        from segment_importer.import_ref import ImportRef

        self._source = ImportRef("bench-bucket", "imports/bench/events", "0123456789abcdef")
        self._batch_body = batch_body
        self.batches_queued = 0
        self.messages_queued = 0
        self.body_bytes = 0
        self.bodies: list[str] | None = [] if keep else None

    def put(self, batch: Any) -> None:
        body = self._batch_body(self._source, batch).decode()
        self.body_bytes += len(body.encode()) if not body.isascii() else len(body)
        self.batches_queued += 1
        self.messages_queued += batch.size
        if self.bodies is not None:
            self.bodies.append(body)

    def flush(self) -> None:
        pass


def split_once(blob: bytes, key: str, *, keep: bool = False) -> tuple[Any, MemorySink, Any]:
    from segment_importer.batch.packing import BatchLimits
    from segment_importer.job import JobOptions
    from segment_importer.split.splitter import split_stream
    from segment_importer.track.rejects import RejectsWriter
    from segment_importer.track.report import ImportReport

    report = ImportReport(bucket="bench-bucket", key=key, etag="0123456789abcdef", size_bytes=len(blob))
    sink, rejects = MemorySink(keep=keep), RejectsWriter()
    try:
        split_stream(io.BytesIO(blob), report, JobOptions(), BatchLimits(), sink, rejects)
    finally:
        rejects.close()
    return report, sink, rejects


def orjson_loop(blob: bytes) -> int:
    loads, count = orjson.loads, 0
    for line in io.BytesIO(blob):
        loads(line)
        count += 1
    return count


def dictreader_loop(blob: bytes) -> int:
    count = 0
    for _row in csv.DictReader(io.TextIOWrapper(io.BytesIO(blob), encoding="utf-8", newline="")):
        count += 1
    return count


def ndjson_floor(blob: bytes) -> int:
    loads, dumps, ids, count = orjson.loads, orjson.dumps, hashlib.sha1(b"namespace"), 0
    for line in io.BytesIO(blob):
        message_id = ids.copy()
        message_id.update(dumps(loads(line)))
        message_id.hexdigest()
        count += 1
    return count


def csv_floor(blob: bytes) -> int:
    dumps, ids, count = orjson.dumps, hashlib.sha1(b"namespace"), 0
    for row in csv.DictReader(io.TextIOWrapper(io.BytesIO(blob), encoding="utf-8", newline="")):
        message_id = ids.copy()
        message_id.update(dumps(row))
        message_id.hexdigest()
        count += 1
    return count


def csv_reader_loop(blob: bytes) -> int:
    from segment_importer.read.formats import open_records

    count = 0
    for _record in open_records(io.BytesIO(blob), "imports/bench/events.csv"):
        count += 1
    return count


def csv_shapes_loop(blob: bytes) -> int:
    from segment_importer.job import JobOptions
    from segment_importer.mapping.mapper import MessageMapper
    from segment_importer.read.formats import open_records

    shape, count = MessageMapper(JobOptions(), None, from_csv=True)._shape_input, 0
    for record in open_records(io.BytesIO(blob), "imports/bench/events.csv"):
        shape(record.fields)  # type: ignore[arg-type]
        count += 1
    return count


FLOOR_LOOPS = {
    "ndjson floor": ndjson_floor,
    "csv floor": csv_floor,
    "csv reader": csv_reader_loop,
    "csv reader+shapes": csv_shapes_loop,
}


@dataclass
class Series:
    cpu_rates: list[float] = field(default_factory=list)
    wall_rates: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)

    def add(self, count: int, timing: Timing) -> float:
        rate = count / timing.cpu if timing.cpu > 0 else float("nan")
        self.cpu_rates.append(rate)
        self.wall_rates.append(count / timing.wall)
        return rate

    def summary(self) -> dict[str, Any]:
        return {
            "events_per_cpu_second": median(self.cpu_rates),
            "events_per_wall_second": median(self.wall_rates),
            "ratio_to_baseline": median(self.ratios) if self.ratios else None,
            "spread": spread(self.cpu_rates),
            "repeats": self.cpu_rates,
        }


def run(events_count: int, repeats: int) -> dict[str, Any]:
    items = data.events(events_count)
    blobs = {fmt: make(items) for fmt, make in data.FORMATS.items()}
    gz = {fmt: data.gzipped(blob) for fmt, blob in blobs.items()}
    del items
    series = {name: Series() for name in ("orjson_loop", "dictreader_loop")}
    series.update({_case_name(fmt, compressed): Series() for fmt, compressed in CASES})
    series.update({name: Series() for name in FLOORS})
    baselines = {
        "orjson_loop": lambda: orjson_loop(blobs["ndjson"]),
        "dictreader_loop": lambda: dictreader_loop(blobs["csv"]),
    }
    checks: dict[str, dict[str, int]] = {}
    # Warm-up, untimed: the first call imports modules and fills caches.
    warm = data.events(500, seed=1)
    for fmt, make in data.FORMATS.items():
        split_once(make(warm), f"imports/warm.{data.EXTENSIONS[fmt]}")
    orjson_loop(data.ndjson(warm))
    dictreader_loop(data.csv_bytes(warm))
    for _ in range(repeats):
        for fmt, compressed in CASES:
            # The baseline is measured right before each case: the ratio compares neighbours.
            baseline = BASELINE_FOR[fmt]
            baseline_rate = series[baseline].add(*_swap(timed(baselines[baseline])))
            blob = gz[fmt] if compressed else blobs[fmt]
            key = f"imports/bench/events.{data.EXTENSIONS[fmt]}" + (".gz" if compressed else "")
            timing, (report, sink, rejects) = timed(lambda blob=blob, key=key: split_once(blob, key))
            name = _case_name(fmt, compressed)
            rate = series[name].add(report.records_read, timing)
            series[name].ratios.append(rate / baseline_rate)
            checks[name] = {
                "records_read": report.records_read,
                "messages_queued": sink.messages_queued,
                "batches_queued": sink.batches_queued,
                "rejected": rejects.total,
            }
        for name, (fmt, baseline) in FLOORS.items():
            baseline_rate = series[baseline].add(*_swap(timed(baselines[baseline])))
            rate = series[name].add(*_swap(timed(lambda loop=FLOOR_LOOPS[name], blob=blobs[fmt]: loop(blob))))
            series[name].ratios.append(rate / baseline_rate)
    results: dict[str, Any] = {
        "events": events_count,
        "repeats": repeats,
        "input_bytes": {fmt: len(blob) for fmt, blob in blobs.items()},
        "gzip_bytes": {fmt: len(blob) for fmt, blob in gz.items()},
        "event_size_bytes": data.size_stats(data.events(min(events_count, 20_000))),
        "cases": {name: s.summary() for name, s in series.items()},
        "checks": checks,
        "batches": batch_fill(blobs["ndjson"]),
    }
    return results


def _swap(pair: tuple[Timing, int]) -> tuple[int, Timing]:
    timing, count = pair
    return count, timing


def _case_name(fmt: str, compressed: bool) -> str:
    return f"{fmt}{'+gzip' if compressed else ''}"


def batch_fill(ndjson_blob: bytes) -> dict[str, Any]:
    """How full the batches are, measured exactly as segment-analytics-python serialises them."""
    from segment_importer.batch.packing import BatchLimits

    limits = BatchLimits()
    report, sink, _ = split_once(ndjson_blob, "imports/bench/events.ndjson", keep=True)
    wire_sizes, message_wire_total, queue_sizes, gzip_ratios, counts = [], 0, [], [], []
    for body in sink.bodies or []:
        document = orjson.loads(body)
        messages = document["batch"]
        counts.append(len(messages))
        request = {"batch": messages, "sentAt": "2025-01-01T00:00:00.000000+00:00", "writeKey": "k" * 32}
        wire = json.dumps(request).encode()
        wire_sizes.append(len(wire))
        if len(gzip_ratios) < 3:  # the library gzips with GzipFile's default level, 9
            gzip_ratios.append(len(wire) / len(gzip.compress(wire, compresslevel=9)))
        message_wire_total += sum(len(json.dumps(m).encode()) for m in messages) + 2 * (len(messages) - 1)
        queue_sizes.append(len(body.encode()))
    messages = sink.messages_queued
    minimum = max(math.ceil(messages / limits.max_messages), math.ceil(message_wire_total / limits.max_bytes))
    full = wire_sizes[:-1] or wire_sizes  # the file's last batch is a remainder
    full_counts = counts[:-1] or counts
    return {
        "messages": messages,
        "batches": sink.batches_queued,
        "messages_per_batch": messages / sink.batches_queued,
        "messages_per_full_batch": sum(full_counts) / len(full_counts),
        "minimum_batches_for_limits": minimum,
        "request_count_fill": minimum / sink.batches_queued,
        "mean_wire_bytes_full_batches": sum(full) / len(full),
        "byte_fill_of_batch_max_bytes": sum(full) / len(full) / limits.max_bytes,
        "byte_fill_of_500kb": sum(full) / len(full) / 512_000,
        "max_wire_bytes": max(wire_sizes),
        "mean_queue_body_bytes": sum(queue_sizes) / len(queue_sizes),
        "max_queue_body_bytes": max(queue_sizes),
        "mean_message_wire_bytes": message_wire_total / messages,
        "gzip_ratio": sum(gzip_ratios) / len(gzip_ratios),
        "limits": {"max_bytes": limits.max_bytes, "max_messages": limits.max_messages},
        "records_read": report.records_read,
    }
