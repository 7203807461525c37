"""A part ended by the clock ends where a batch closes on its own, so the batches of a split
in parts are the batches of one run, whatever record the clock stopped it at. A retry of a
part that was killed after queuing further than its retry gets (a slower run) then finds the
same batches under the same numbers."""

from __future__ import annotations

import io

import orjson
import pytest

from segment_importer.batch.packing import Batch, BatchLimits
from segment_importer.job import JobOptions
from segment_importer.read.formats import open_records
from segment_importer.split.continuation import PartBudget
from segment_importer.split.stream_split import PartStop, split_records
from segment_importer.track.rejects import RejectsWriter
from segment_importer.track.report import ImportReport

LIMITS = BatchLimits(max_bytes=40_000, max_messages=100)


class Batches:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.batches_queued = self.messages_queued = 0
        self.kept: dict[int, list[bytes]] = {}

    def put(self, batch: Batch) -> None:
        self.kept[batch.number] = list(batch.bodies)
        self.batches_queued += 1
        self.messages_queued += batch.size

    def flush(self) -> None:
        pass


def export(count: int) -> bytes:
    """Events of uneven sizes (batches close by bytes and by count); every 37th has no user."""
    lines = []
    for number in range(1, count + 1):
        record = {
            "event": "E",
            "timestamp": "2021-01-01T00:00:00Z",
            "properties": {"pad": "x" * (number % 700)},
        }
        if number % 37:
            record["userId"] = f"u{number}"
        lines.append(orjson.dumps(record))
    return b"\n".join(lines) + b"\n"


def run_part(
    data: bytes, report: ImportReport, sink: Batches, stop: PartStop | None, budget: PartBudget | None
):
    start = stop.resume if stop else None
    stream = io.BytesIO(data[start.offset :] if start else data)
    records = open_records(stream, "e.ndjson", resume=start, stream_at_resume=start is not None)
    after = stop.after_record if stop else 0
    return split_records(
        records, report, JobOptions(), LIMITS, sink, RejectsWriter(), after_record=after, budget=budget
    )


def clock_runs_out_after(checks: int) -> PartBudget:
    calls = iter(range(10**9))
    return PartBudget(remaining_seconds=lambda: 900.0 if next(calls) < checks else 0.0)


@pytest.mark.parametrize("checks", [0, 1, 3])
def test_parts_ended_by_the_clock_give_the_batches_of_one_run(checks: int) -> None:
    data = export(3000)
    whole = Batches()
    run_part(data, ImportReport("b", "e.ndjson"), whole, None, None)
    kept, report, stop, ends = {}, ImportReport("b", "e.ndjson"), None, []
    while True:
        part = Batches()  # each part queues through a writer of its own
        stop = run_part(data, report, part, stop, clock_runs_out_after(checks))
        assert not kept.keys() & part.kept.keys(), "two parts queued the same batch number"
        kept.update(part.kept)
        if stop is None:
            break
        ends.append(stop.after_record)
    assert len(ends) >= 2, "the clock ended several parts"
    assert kept == whole.kept
    assert report.records_read == 3000
    assert report.messages_queued == whole.messages_queued
