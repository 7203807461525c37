"""The whole pipeline on moto and a real local Segment endpoint, with faults injected.

The invariant checked on what the endpoint received: every valid record arrives, each under
exactly one messageId; every invalid record is in the rejects file and nowhere else.
"""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from segment_importer_local import cli
from segment_importer_local.runner import RunOptions, RunResult, run_import
from segment_importer_local.segment_endpoint import FaultPlan, SegmentEndpoint

from ..conftest import WRITE_KEY

BATCH_OVERRIDES = {"BatchMaxMessages": "100"}  # many batches from a small file


def write_ndjson(path: Path, count: int, *, gzip_it: bool = False) -> tuple[set[int], set[int]]:
    """Records numbered by `seq`; every 97th lacks a user, every 211th line is broken JSON."""
    valid, invalid = set(), set()
    lines = []
    for line_number in range(1, count + 1):
        record = {
            "type": "track",
            "userId": f"user-{line_number % 50}",
            "event": "Song Played",
            "timestamp": 1_600_000_000 + line_number,
            "properties": {"seq": line_number, "title": "Naïve café ☕"},
        }
        if line_number % 97 == 0:
            del record["userId"]
            invalid.add(line_number)
            lines.append(json.dumps(record))
        elif line_number % 211 == 0:
            invalid.add(line_number)
            lines.append('{"type": "track", "broken": ')
        else:
            valid.add(line_number)
            lines.append(json.dumps(record))
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gzip_it else data)
    return valid, invalid


def write_csv(path: Path, count: int, *, note: str = 'quoted, "with"\nnewline') -> tuple[set[int], set[int]]:
    """Rows numbered by `properties.seq`; every 89th has a bad timestamp; every row holds `note`."""
    valid, invalid = set(), set()
    with path.open("w", encoding="utf-8-sig", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow(["userId", "event", "timestamp", "properties.seq", "properties.note"])
        for row in range(1, count + 1):
            timestamp = "not a time" if row % 89 == 0 else f"2021-06-01T10:00:{row % 60:02d}+02:00"
            (invalid if row % 89 == 0 else valid).add(row)
            writer.writerow([f"user-{row}", "Plan Changed", timestamp, row, note])
    return valid, invalid


def received_seqs(result: RunResult) -> Counter[int]:
    assert result.received_path
    lines = Path(result.received_path).read_bytes().splitlines()
    return Counter(orjson.loads(line)["properties"]["seq"] for line in lines)


def rejected_numbers(result: RunResult, index: int = 0) -> set[int]:
    report = result.files[index].report
    if not report["rejects_key"]:
        return set()
    path = Path(result.bucket_copy or "") / report["rejects_key"]
    return {orjson.loads(line)["number"] for line in path.read_bytes().splitlines()}


def test_every_valid_record_arrives_once_under_random_faults(tmp_path: Path) -> None:
    export = tmp_path / "history.ndjson"
    valid, invalid = write_ndjson(export, 3000)
    faults = FaultPlan.random(
        seed=20261130,
        rates={"status": 0.15, "rate_limit": 0.05, "reset": 0.1, "accept_then_fail": 0.1},
        retry_after=1,
    )
    result = run_import(
        RunOptions(
            [export],
            out_dir=tmp_path / "out",
            faults=faults,
            show_progress=False,
            parameter_overrides=BATCH_OVERRIDES,
        )
    )
    seqs = received_seqs(result)
    assert set(seqs) == valid
    assert max(seqs.values()) == 1, "a record reached Segment under two messageIds"
    assert rejected_numbers(result) == invalid
    stats = result.endpoint_stats or {}
    assert sum(stats["faults"].values()) > 0, "the seed injected no faults: the test proves nothing"
    assert stats["dropped"] == {}
    report = result.files[0].report
    assert report["records_read"] == 3000
    assert report["messages_queued"] == len(valid)
    assert report["batches_queued"] == -(-len(valid) // 100)
    assert result.files[0].messages_delivered == len(valid)
    assert result.ok


@pytest.mark.parametrize("name", ["history.csv", "history.ndjson.gz"])
def test_csv_and_gzip_exports_arrive_whole(tmp_path: Path, name: str) -> None:
    export = tmp_path / name
    valid, invalid = (
        write_csv(export, 700) if name.endswith(".csv") else write_ndjson(export, 700, gzip_it=True)
    )
    result = run_import(
        RunOptions(
            [export], out_dir=tmp_path / "out", show_progress=False, parameter_overrides=BATCH_OVERRIDES
        )
    )
    seqs = received_seqs(result)
    assert set(seqs) == valid
    assert max(seqs.values()) == 1
    assert rejected_numbers(result) == invalid
    assert result.ok
    # `segment-importer rejects` finds a one-part import's rejects file too.
    listed = tmp_path / "rejects.ndjson"
    arguments = ["rejects", result.files[0].key, "--local", str(result.run_dir), "--output", str(listed)]
    assert cli.main(arguments) == 0
    assert [orjson.loads(line)["number"] for line in listed.read_bytes().splitlines()] == sorted(invalid)


def test_the_same_file_dropped_twice_dedupes_by_message_id(tmp_path: Path, endpoint: SegmentEndpoint) -> None:
    export = tmp_path / "again.ndjson"
    valid, _ = write_ndjson(export, 400)
    options = RunOptions(
        [export], write_key=WRITE_KEY, host=endpoint.url, out_dir=tmp_path / "out", show_progress=False
    )
    first = run_import(options)
    second = run_import(options)
    assert first.ok
    assert second.ok
    stats = endpoint.stats()
    assert stats["messages_accepted"] == len(valid)
    assert stats["duplicates"] == len(valid)


def test_a_wrong_write_key_dead_letters_every_batch_and_fails_the_run(
    tmp_path: Path, endpoint: SegmentEndpoint
) -> None:
    export = tmp_path / "wrong-key.ndjson"
    write_ndjson(export, 250)
    result = run_import(
        RunOptions(
            [export],
            write_key="not-the-key",
            host=endpoint.url,
            out_dir=tmp_path / "out",
            show_progress=False,
            parameter_overrides=BATCH_OVERRIDES,
        )
    )
    outcome = result.files[0]
    assert outcome.batches_dead_lettered == outcome.report["batches_queued"] == 3
    assert outcome.messages_delivered == 0
    assert endpoint.stats()["messages_accepted"] == 0
    assert not result.ok


def test_dry_run_validates_and_sends_nothing(tmp_path: Path) -> None:
    export = tmp_path / "dry.ndjson"
    valid, invalid = write_ndjson(export, 300)
    result = run_import(RunOptions([export], dry_run=True, out_dir=tmp_path / "out", show_progress=False))
    report = result.files[0].report
    assert report["status"] == "DRY_RUN"
    assert report["messages_queued"] == len(valid)
    assert report["rejected"] == len(invalid)
    assert (result.endpoint_stats or {})["requests"] == 0
    assert result.ok


def test_job_file_limits_destinations_and_adds_context(tmp_path: Path) -> None:
    export = tmp_path / "dest.ndjson"
    valid, _ = write_ndjson(export, 120)
    job = tmp_path / "job.json"
    job.write_text(
        json.dumps({"integrations": {"All": False, "Vero": True}, "context": {"source": "migration"}})
    )
    result = run_import(RunOptions([export], job_config=job, out_dir=tmp_path / "out", show_progress=False))
    messages = [orjson.loads(line) for line in Path(result.received_path or "").read_bytes().splitlines()]
    assert len(messages) == len(valid)
    assert all(m["integrations"] == {"All": False, "Vero": True} for m in messages)
    assert all(m["context"]["source"] == "migration" for m in messages)
    assert result.files[0].report["job"]["integrations"] == {"All": False, "Vero": True}


def test_cli_runs_the_examples_end_to_end(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    report_path = tmp_path / "report.json"
    completed = subprocess.run(
        [sys.executable, "-m", "segment_importer_local.cli", "run", str(examples), "--no-progress",
         "--report", str(report_path), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    # The examples hold a few deliberately bad records: finished, with rejects (exit 3).
    assert completed.returncode == 3, completed.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["ok"] is True  # every valid record was accepted
    assert len(report["files"]) == len([p for p in examples.iterdir() if p.is_file()])
    for entry in report["files"]:
        assert entry["messages_delivered"] == entry["report"]["messages_queued"] > 0
    rejected = sum(entry["report"]["rejected"] for entry in report["files"])
    read = sum(entry["report"]["records_read"] for entry in report["files"])
    assert rejected > 0
    assert f"DONE WITH REJECTS: sent {read - rejected} of {read} records" in completed.stdout


def test_the_preflight_stops_an_import_with_an_unknown_key_before_anything_is_queued(
    tmp_path: Path, endpoint: SegmentEndpoint
) -> None:
    export = tmp_path / "typo.ndjson"
    write_ndjson(export, 200)
    result = run_import(
        RunOptions(
            [export],
            write_key="a-key-with-a-typo",
            host=endpoint.url,
            out_dir=tmp_path / "out",
            show_progress=False,
            parameter_overrides={"PreflightHost": endpoint.url},
        )
    )
    outcome = result.files[0]
    assert outcome.report["status"] == "FAILED"
    assert "pre-flight" in outcome.report["error"]
    assert outcome.report["messages_queued"] == 0
    assert (outcome.ledger or {})["status"] == "FAILED"
    assert endpoint.stats()["requests"] == 0  # not one batch was posted
    assert not result.ok


def test_the_functions_emit_emf_metrics_and_status_log_lines(tmp_path: Path) -> None:
    export = tmp_path / "metrics.ndjson"
    valid, invalid = write_ndjson(export, 150)
    result = run_import(RunOptions([export], out_dir=tmp_path / "out", show_progress=False))
    lines = [
        json.loads(line) for line in Path(result.run_dir or "", "functions.log").read_text().splitlines()
    ]
    emitted: dict[str, float] = {}
    namespaces = set()
    for line in lines:
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            namespaces.add(directive["Namespace"])
            for metric in directive["Metrics"]:
                emitted[metric["Name"]] = emitted.get(metric["Name"], 0) + sum(line[metric["Name"]])
    assert namespaces == {"SegmentImporter"}
    assert emitted["RecordsRead"] == 150
    assert emitted["RecordsRejected"] == len(invalid)
    assert emitted["MessagesSent"] == len(valid)
    assert "BatchLatency" in emitted
    messages = {line.get("message") for line in lines}
    assert {"import split", "batch delivered", "import finished"} <= messages


def test_a_file_whose_name_s3_url_encodes_arrives(tmp_path: Path) -> None:
    """S3 event notifications carry keys URL-encoded (a space as `+`): Amplitude names its
    export files like `123_2021-03-04_5#0.json.gz`."""
    export = tmp_path / "123_2021-03-04_5#0 copy+1 100%.ndjson.gz"
    valid, invalid = write_ndjson(export, 120, gzip_it=True)
    result = run_import(RunOptions([export], out_dir=tmp_path / "out", show_progress=False))
    assert set(received_seqs(result)) == valid
    assert rejected_numbers(result) == invalid
    assert result.files[0].report["key"].endswith(export.name)
    assert result.ok


def test_a_truncated_gzip_delivers_what_it_holds_and_the_run_is_not_ok(tmp_path: Path) -> None:
    whole = tmp_path / "whole.ndjson.gz"
    valid, _ = write_ndjson(whole, 3000, gzip_it=True)
    export = tmp_path / "truncated.ndjson.gz"
    export.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    result = run_import(RunOptions([export], out_dir=tmp_path / "out", show_progress=False))
    outcome = result.files[0]
    assert outcome.report["rejected_by_reason"].get("file_unreadable") == 1
    assert 0 < outcome.messages_delivered < len(valid)
    assert outcome.complete  # every record it could read arrived
    assert not outcome.read_to_its_end
    assert not result.ok
    assert result.to_dict()["files"][0]["read_to_its_end"] is False
