"""Shaping through the deployed handlers: the local stack (moto, the real splitter and sender
handlers, the embedded Segment endpoint), a job file, and what Segment received."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from segment_importer_local import cli
from segment_importer_local.runner import RunOptions, RunResult, run_import

from ..integration.test_pipeline import write_ndjson

PARTS = {"SplitRecordsPerPart": "97", "BatchMaxMessages": "40"}


def job_file(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "config" / "job.json"  # not beside the export: --config is the only job
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def received(result: RunResult) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in Path(result.received_path or "").read_bytes().splitlines()]


def run(tmp_path: Path, export: Path, job: Path, overrides: dict[str, str], **options: Any) -> RunResult:
    return run_import(
        RunOptions(
            [export],
            job_config=job,
            out_dir=tmp_path / "out",
            show_progress=False,
            parameter_overrides=overrides,
            **options,
        )
    )


@pytest.mark.parametrize(
    "overrides", [PARTS, {**PARTS, "ParallelSplitBytes": "8192"}], ids=["parts", "spans"]
)
def test_limit_holds_per_import_across_parts(tmp_path: Path, overrides: dict[str, str]) -> None:
    """Eleven parts (97 records each) carry the count on; a job with a limit is never split in
    byte ranges, even where the file would be."""
    export = tmp_path / "history.ndjson"
    valid, invalid = write_ndjson(export, 1000)
    job = job_file(tmp_path, {"filter": {"where": "properties.seq > `100`"}, "limit": 250})
    result = run(tmp_path, export, job, overrides)
    assert result.ok
    seqs = [message["properties"]["seq"] for message in received(result)]
    expected = sorted(seq for seq in valid if seq > 100)[:250]
    assert sorted(seqs) == expected, "the first 250 valid messages the filter keeps, each once"
    ledger = result.files[0].ledger or {}
    assert "span_count" not in ledger
    assert ledger["split_part"] == 1000 // 97
    assert ledger["messages_queued"] == ledger["messages_delivered"] == 250
    assert ledger["rejected"] == len(invalid)
    where = sum(1 for seq in valid if seq <= 100)
    assert ledger["filtered_by"] == {"where": where, "limit": len(valid) - where - 250}
    assert ledger["filtered"] == len(valid) - 250
    assert ledger["records_read"] == ledger["messages_queued"] + ledger["rejected"] + ledger["filtered"]
    report = orjson.loads(
        Path(result.bucket_copy or "", "reports/local/history.ndjson.report.json").read_bytes()
    )
    assert (report["filtered"], report["filtered_by"]) == (ledger["filtered"], ledger["filtered_by"])
    page = Path(result.bucket_copy or "", "reports/local/history.ndjson.report.html").read_text()
    assert page.count('<rect class="bar muted"') == 2, "one bar per filter rule on the import's page"


def test_filters_sample_and_transforms_send_what_the_preview_showed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "history.ndjson"
    write_ndjson(export, 600)
    job = job_file(
        tmp_path,
        {
            "filter": {"since": "2020-09-13T12:30:00Z", "until": "2020-09-13T12:35:00Z", "types": ["track"]},
            "sample": 0.5,
            "drop": ["properties.title"],
            "hash": {"paths": ["userId"], "key": "a secret of the job"},
            "set": {"context.source": "legacy-crm"},
        },
    )
    mapped = tmp_path / "preview.ndjson"
    status = cli.main(
        ["preview", str(export), "--config", str(job), "--mapped", str(mapped), "--json", "--no-progress"]
    )
    assert status == 0
    previewed = json.loads(capsys.readouterr().out)
    result = run(tmp_path, export, job, PARTS)
    assert result.ok
    sent = {message["messageId"]: message for message in received(result)}
    shown = [orjson.loads(line) for line in mapped.read_bytes().splitlines()]
    assert 0 < len(shown) == len(sent) == previewed["would_send"] < 300
    for message in shown:
        arrived = dict(sent[message["messageId"]])
        arrived.pop("receivedAt")
        assert arrived == message
        assert "title" not in message["properties"]
        assert message["context"]["source"] == "legacy-crm"
        assert len(message["userId"]) == 64
        assert "2020-09-13T12:30:00.000Z" <= message["timestamp"] < "2020-09-13T12:35:00.000Z"
    ledger = result.files[0].ledger or {}
    assert ledger["filtered_by"] == previewed["filtered_by"]
    assert set(ledger["filtered_by"]) == {"since", "until", "sample"}
    assert "a secret of the job" not in Path(result.run_dir or "", "ledger.json").read_text()
    report_text = Path(result.bucket_copy or "", "reports/local/history.ndjson.report.json").read_text()
    assert "a secret of the job" not in report_text
    assert cli.main(["status", "--local", str(result.run_dir), "--json"]) == 0
    (status_entry,) = json.loads(capsys.readouterr().out)
    assert (status_entry["filtered"], status_entry["filtered_by"]) == (
        ledger["filtered"],
        ledger["filtered_by"],
    )


def test_a_dry_run_writes_what_it_would_send(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "history.ndjson"
    valid, _ = write_ndjson(export, 300)
    job = job_file(tmp_path, {"limit": 120})
    report = tmp_path / "report.json"
    status = cli.main(
        ["run", str(export), "--dry-run", "--config", str(job), "--out", str(tmp_path / "out"),
         "--no-progress", "--report", str(report)]
    )  # fmt: skip
    assert status == 3  # the file holds invalid records: done, with rejects
    shown = capsys.readouterr()
    err = shown.out + shown.err
    assert f"would send 120 of 300 records in 1 batch ({len(valid) - 120} left out by the job's filters)" in (
        " ".join(err.split())
    )
    assert "accepted" not in err
    document = json.loads(report.read_text())
    run_dir = Path(document["run_dir"])
    lines = (run_dir / "mapped.ndjson").read_bytes().splitlines()
    assert [orjson.loads(line)["properties"]["seq"] for line in lines] == sorted(valid)[:120]
    assert (run_dir / "preview.html").read_text().startswith("<!DOCTYPE html>")
    (entry,) = document["files"]
    assert entry["report"]["filtered_by"] == {"limit": len(valid) - 120}
    received_path = run_dir / "received.ndjson"
    assert not received_path.exists() or received_path.stat().st_size == 0, "a dry run sent something"


def test_event_filters_through_the_handlers_match_the_preview(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .test_preview_cli import crafted

    export = crafted(tmp_path / "crafted.ndjson")
    job = job_file(
        tmp_path, {"filter": {"events": ["Signed Up", "Order Completed"], "exclude_events": ["Signed Up"]}}
    )
    assert cli.main(["preview", str(export), "--config", str(job), "--json", "--no-progress"]) == 0
    previewed = json.loads(capsys.readouterr().out)
    result = run(tmp_path, export, job, {})
    assert result.ok
    assert [message["event"] for message in received(result)] == ["Order Completed"]
    ledger = result.files[0].ledger or {}
    assert (
        ledger["filtered_by"] == previewed["filtered_by"] == {"events": 2, "exclude_events": 2}
    )  # identify, page; 2 Signed Up
    assert ledger["rejected"] == previewed["rejected"] == 4


def test_filters_in_a_file_split_in_byte_ranges(tmp_path: Path) -> None:
    """Without a limit the file is split in ranges; each range's filtered counts add up."""
    export = tmp_path / "history.ndjson"
    valid, invalid = write_ndjson(export, 1000)
    job = job_file(tmp_path, {"filter": {"where": "properties.seq > `100`"}, "sample": 0.5})
    result = run(tmp_path, export, job, {"ParallelSplitBytes": "8192", "BatchMaxMessages": "40"})
    assert result.ok
    ledger = result.files[0].ledger or {}
    assert ledger["span_count"] > 5
    sent = len(received(result))
    assert ledger["messages_delivered"] == sent
    assert ledger["filtered_by"]["where"] == sum(1 for seq in valid if seq <= 100)
    assert ledger["filtered"] == sum(ledger["filtered_by"].values()) == len(valid) - sent
    assert ledger["records_read"] == sent + len(invalid) + ledger["filtered"]
