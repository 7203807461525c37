"""A large plain file split in parallel byte ranges arrives exactly as a sequential split sends it.

Same records, same messageIds, same reject numbers, nothing twice; a CSV whose rows cannot be
proven to be one line each is split sequentially instead. Runs through the local stack (moto
and the embedded endpoint), with span sizes small enough to give many spans.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import orjson
import pytest
from moto import mock_aws
from rich.console import Console

from segment_importer.batch.envelope import read_envelope
from segment_importer.deliver.preflight import PreflightResult, WriteKeyPreflight
from segment_importer.settings import SplitterSettings
from segment_importer.split.continuation import PartBudget
from segment_importer.split.splitter import SplitterServices, continue_import, split_import
from segment_importer.track.ledger import Ledger
from segment_importer_local import cli
from segment_importer_local.runner import RunOptions, RunResult, run_import
from segment_importer_local.segment_endpoint import SegmentEndpoint
from segment_importer_local.stack import LocalStack
from segment_importer_local.status import describe
from segment_importer_local.status_view import status_table
from segment_importer_local.template_config import StackTemplate

from ..conftest import WRITE_KEY
from .test_continuation import all_rejected_numbers
from .test_pipeline import write_csv, write_ndjson

SPANS = {"ParallelSplitBytes": "8192", "BatchMaxMessages": "40"}
SEQUENTIAL = {"ParallelSplitBytes": "0", "BatchMaxMessages": "40"}


# Quoted cells (commas, doubled quotes, JSON text), but no line breaks inside them.
ONE_LINE_NOTE = json.dumps([{"sku": "s-1", "name": 'a "quoted", name'}])


def received(result: RunResult) -> Counter[tuple[str, int]]:
    """(messageId, seq) of every message the endpoint accepted."""
    assert result.received_path
    lines = Path(result.received_path).read_bytes().splitlines()
    return Counter(
        (message["messageId"], message["properties"]["seq"]) for message in map(orjson.loads, lines)
    )


def run(export: Path, out: Path, overrides: dict[str, str]) -> RunResult:
    return run_import(RunOptions([export], out_dir=out, show_progress=False, parameter_overrides=overrides))


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("history.ndjson", {}),
        ("history.csv", {}),
        ("history.ndjson", {"SplitRecordsPerPart": "53"}),  # spans that continue in parts
        ("history.csv", {"SplitRecordsPerPart": "53"}),
    ],
)
def test_a_file_split_in_spans_arrives_as_the_sequential_split_sends_it(
    tmp_path: Path, name: str, extra: dict[str, str]
) -> None:
    export = tmp_path / name
    count = 1500
    valid, invalid = (
        write_csv(export, count, note=ONE_LINE_NOTE) if name.endswith(".csv") else write_ndjson(export, count)
    )
    assert export.stat().st_size > 10 * int(SPANS["ParallelSplitBytes"])

    spans = run(export, tmp_path / "spans", {**SPANS, **extra})
    sequential = run(export, tmp_path / "sequential", {**SEQUENTIAL, **extra})

    got = received(spans)
    assert max(got.values()) == 1, "a message arrived twice"
    assert sorted(seq for _, seq in got) == sorted(valid)
    assert got == received(sequential), "the spans changed a messageId"
    assert sorted(all_rejected_numbers(spans)) == sorted(all_rejected_numbers(sequential)) == sorted(invalid)

    ledger = spans.files[0].ledger or {}
    assert ledger["split_mode"] == "spans"
    assert ledger["span_count"] == ledger["spans_done"] > 10
    assert ledger["records_read"] == count
    # Every span counts its own bytes, parts included; together they are the file.
    assert ledger["bytes_read"] == (sequential.files[0].ledger or {})["bytes_read"] == export.stat().st_size
    assert ledger["messages_queued"] == ledger["messages_delivered"] == len(valid)
    assert ledger["batches_queued"] == ledger["batches_delivered"]
    assert ledger["rejected"] == len(invalid)
    assert ledger["status"] == "COMPLETE_WITH_ERRORS"
    report = spans.files[0].report
    assert (report["records_read"], report["messages_queued"]) == (count, len(valid))
    assert spans.ok
    # `segment-importer rejects` gathers every span's rejects, in the file's order.
    listed = tmp_path / "rejects.ndjson"
    run_dir = Path(spans.run_dir or "")
    assert cli.main(["rejects", spans.files[0].key, "--local", str(run_dir), "--output", str(listed)]) == 0
    assert [orjson.loads(line)["number"] for line in listed.read_bytes().splitlines()] == sorted(invalid)


def test_a_csv_with_line_breaks_in_quoted_cells_is_split_sequentially(tmp_path: Path) -> None:
    export = tmp_path / "notes.csv"
    valid, invalid = write_csv(export, 600)  # every row has a quoted cell holding a newline
    spans = run(export, tmp_path / "spans", SPANS)
    sequential = run(export, tmp_path / "sequential", SEQUENTIAL)
    ledger = spans.files[0].ledger or {}
    assert ledger["span_count"] > 1  # it was surveyed ...
    assert "split_mode" not in ledger  # ... and split sequentially
    assert describe(ledger)["spans"] is None  # status shows no ranges
    assert ledger["records_read"] == 600
    got = received(spans)
    assert got == received(sequential)
    assert sorted(seq for _, seq in got) == sorted(valid)
    assert sorted(all_rejected_numbers(spans)) == sorted(invalid)
    assert spans.ok


def test_repeated_surveys_and_span_tasks_queue_each_batch_once(
    tmp_path: Path, endpoint: SegmentEndpoint
) -> None:
    """SQS delivers at least once: every survey and every span checkpoint is run twice."""
    export = tmp_path / "history.ndjson"
    valid, _ = write_ndjson(export, 1200)
    with mock_aws():
        stack = LocalStack(StackTemplate.load(), {**SPANS, "PreflightHost": ""}).create(write_key="k")
        key = "imports/history.ndjson"
        stack.s3.upload_file(str(export), stack.bucket, key)
        settings = SplitterSettings.from_env(stack.function("SplitterFunction").environment)
        ledger = Ledger.for_tables(stack.dynamodb, settings.ledger_tables)
        preflight = CountedPreflight(WriteKeyPreflight(endpoint.url, lambda: WRITE_KEY))
        services = SplitterServices(stack.s3, stack.sqs, ledger=ledger, preflight=preflight)  # type: ignore[arg-type]
        assert split_import(services, stack.bucket, key, settings, request_id="r1").status == "CONTINUING"
        budget = PartBudget(remaining_seconds=lambda: 900.0, max_records=20)
        runs: Counter[str] = Counter()
        while bodies := _receive_all(stack, settings.continuation_queue_url):
            for body in bodies:
                for _ in range(2):
                    part = continue_import(services, body, settings, budget=budget)
                    runs[part.status if part else "SURVEYED"] += 1
        (item,) = ledger.list_imports()
        queued = _work_queue_batches(stack)
    assert preflight.checks == 1, "the write key is checked by the plan only, not by every range"
    assert runs["SURVEYED"] == 2 * item["span_count"]  # each survey twice ...
    assert runs["QUEUED"] == item["span_count"] > 10  # ... each span finished once ...
    assert runs["CONTINUING"] > 0  # ... some after several parts ...
    assert runs["DUPLICATE"] >= runs["QUEUED"] + runs["CONTINUING"]  # ... and every repeat was skipped
    assert item["status"] == "SENDING"
    assert item["messages_queued"] == sum(count for _, count in queued) == len(valid)
    assert item["batches_queued"] == len(queued)
    assert len({number for number, _ in queued}) == len(queued), "a batch was queued twice"
    count = item["span_count"]
    assert describe(item)["spans"] == {"count": count, "surveyed": count, "done": count}
    surveying = {**describe(item), "status": "SPLITTING", "spans": {"count": 23, "surveyed": 4, "done": 0}}
    splitting = {**describe(item), "status": "SPLITTING", "spans": {"count": 23, "surveyed": 23, "done": 5}}
    console = Console(width=200, record=True)
    console.print(status_table([surveying, splitting]))
    shown = console.export_text()
    assert "SPLITTING survey 4/23" in shown
    assert "SPLITTING 5/23" in shown


class CountedPreflight:
    """The real pre-flight (against the embedded endpoint), counting how often it is asked."""

    def __init__(self, preflight: WriteKeyPreflight) -> None:
        self._preflight = preflight
        self.checks = 0

    def check(self, parameter: str | None = None) -> PreflightResult:
        self.checks += 1
        return self._preflight.check(parameter)


def _receive_all(stack: LocalStack, url: str) -> list[str]:
    bodies = []
    while messages := stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            bodies.append(message["Body"])
            stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def _work_queue_batches(stack: LocalStack) -> list[tuple[int, int]]:
    """(batch number, message count) of every batch on the work queue."""
    batches = []
    url = stack.work_queue_url
    while messages := stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            envelope = read_envelope(message["Body"])
            batches.append((envelope["batch_number"], envelope["message_count"]))
            stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return batches


def test_the_cli_takes_template_parameters_for_a_local_run(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`run --parameter ParallelSplitBytes=...` tries byte ranges on a small file; an unknown
    parameter name is an error, not silently ignored."""
    export = tmp_path / "history.ndjson"
    valid, _ = write_ndjson(export, 800)
    report = tmp_path / "report.json"
    common = ["run", str(export), "--no-progress", "--out", str(tmp_path / "out"), "--report", str(report)]
    assert (
        cli.main([*common, "--parameter", "ParallelSplitBytes=16384", "--parameter", "BatchMaxMessages=40"])
        == 3  # finished, with the file's invalid records rejected
    )
    (entry,) = orjson.loads(report.read_bytes())["files"]
    assert entry["ledger"]["split_mode"] == "spans"
    assert entry["ledger"]["span_count"] > 2
    assert entry["messages_delivered"] == len(valid)
    capsys.readouterr()
    assert cli.main([*common, "--parameter", "ParallelSplitByte=16384"]) == 2
    assert "the template has no parameter ParallelSplitByte" in capsys.readouterr().err


def test_distinct_events_sharing_export_ids_across_spans_all_arrive_apart(tmp_path: Path) -> None:
    """A client that reuses its ids (one per batch, one per order) gives records far apart in
    the file the same messageId but another event: each span meets some of them first, and
    none may take an id another span gives a distinct event (they would merge in Segment)."""
    export = tmp_path / "archive.ndjson"
    count = 1200
    lines = (
        {
            "type": "track",
            "messageId": f"ajs-{seq % 300}",  # every id on four events, spread over the file
            "userId": "u1",
            "event": f"Step {seq // 300}",
            "timestamp": "2021-03-04T05:06:07.000Z",
            "properties": {"seq": seq},
        }
        for seq in range(count)
    )
    export.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    assert export.stat().st_size > 10 * int(SPANS["ParallelSplitBytes"])

    spans = run(export, tmp_path / "spans", SPANS)
    sequential = run(export, tmp_path / "sequential", SEQUENTIAL)

    got = received(spans)
    assert sorted(seq for _, seq in got) == list(range(count))
    assert len({message_id for message_id, _ in got}) == count, "distinct events merged"
    assert got == received(sequential), "the spans changed a messageId"
    assert (spans.files[0].ledger or {})["split_mode"] == "spans"
