"""Parquet files and ZIP archives through the whole local stack (moto, the real handlers, the
embedded endpoint): every record delivered once, under one messageId; parts of a Parquet file
resume inside row groups; an archive's members are imports of their own, aggregated in the run."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from segment_importer.read.parquet import PARQUET_LAYER_MISSING, iso_utc
from segment_importer.settings import SplitterSettings
from segment_importer.split.archives import OUT_OF_TIME
from segment_importer.split.continuation import PartBudget
from segment_importer.split.splitter import SplitterServices, split_import
from segment_importer.track.ledger import Ledger
from segment_importer_local import cli
from segment_importer_local.runner import RunOptions, RunResult, run_import
from segment_importer_local.stack import LocalStack
from segment_importer_local.template_config import StackTemplate

START = dt.datetime(2023, 5, 1, tzinfo=dt.UTC)


def received(result: RunResult) -> list[dict[str, Any]]:
    assert result.received_path
    return [orjson.loads(line) for line in Path(result.received_path).read_bytes().splitlines()]


def run(paths: list[Path], tmp_path: Path, **overrides: str) -> RunResult:
    options = RunOptions(paths, out_dir=tmp_path / "out", show_progress=False, parameter_overrides=overrides)
    return run_import(options)


def warehouse_rows(count: int) -> dict[str, list[Any]]:
    """A Segment warehouse `tracks`-style table; row 1 of every 500 has no user (rejected)."""
    return {
        "id": [f"evt-{i}" for i in range(1, count + 1)],
        "user_id": [None if i % 500 == 1 else f"user-{i % 97}" for i in range(1, count + 1)],
        "event": ["order_completed"] * count,
        "event_text": ["Order Completed"] * count,
        "context_page_url": [f"https://shop.example/p/{i % 13}" for i in range(1, count + 1)],
        "seq": list(range(1, count + 1)),
        "received_at": [START + dt.timedelta(seconds=i) for i in range(1, count + 1)],
        "timestamp": [START + dt.timedelta(seconds=i, milliseconds=250) for i in range(1, count + 1)],
    }


def write_warehouse(folder: Path, count: int, row_group: int) -> tuple[Path, Path]:
    rows = warehouse_rows(count)
    schema = pa.schema(
        [
            *(
                pa.field(name, pa.string())
                for name in ("id", "user_id", "event", "event_text", "context_page_url")
            ),
            pa.field("seq", pa.int64()),
            pa.field("received_at", pa.timestamp("us", tz="UTC")),
            pa.field("timestamp", pa.timestamp("ns")),
        ]
    )
    parquet = folder / "tracks.parquet"
    pq.write_table(pa.table(rows, schema), parquet, row_group_size=row_group)
    ndjson = folder / "tracks.ndjson"
    with ndjson.open("wb") as out:
        for values in zip(*rows.values(), strict=True):
            line = {
                k: iso_utc(v) if isinstance(v, dt.datetime) else v for k, v in zip(rows, values, strict=True)
            }
            out.write(orjson.dumps({k: v for k, v in line.items() if v is not None}) + b"\n")
    return parquet, ndjson


def test_a_parquet_file_in_parts_arrives_whole_once_and_as_its_ndjson_twin(tmp_path: Path) -> None:
    """Parts of 1,500 rows resume inside row groups of 700; the same table as NDJSON gives the
    same messages, messageIds included (its records carry an id)."""
    parquet, ndjson = write_warehouse(tmp_path, 5_000, row_group=700)
    result = run([parquet], tmp_path, SplitRecordsPerPart="1500", BatchMaxMessages="400")
    messages = received(result)
    seqs = Counter(m["properties"]["seq"] for m in messages)
    assert set(seqs) == {i for i in range(1, 5_001) if i % 500 != 1}
    assert max(seqs.values()) == 1
    assert len({m["messageId"] for m in messages}) == len(messages)
    ledger = result.files[0].ledger or {}
    assert ledger["split_part"] == 3  # parts 0..3: four invocations
    assert ledger["format"] == "parquet"
    assert ledger["records_read"] == 5_000
    assert ledger["rejected_by_reason"] == {"missing_user": 10}
    assert result.ok
    first = next(m for m in messages if m["properties"]["seq"] == 2)
    assert first["context"]["page"]["url"] == "https://shop.example/p/2"
    assert first["timestamp"] == "2023-05-01T00:00:02.250Z"

    twin = run([ndjson], tmp_path)
    by_seq = {m["properties"]["seq"]: m for m in messages}
    for message in received(twin):
        mine = by_seq[message["properties"]["seq"]]
        assert mine["messageId"] == message["messageId"]
        assert _sent(mine) == _sent(message)
        assert mine["context"]["page"] == message["context"]["page"]


def _sent(message: dict[str, Any]) -> dict[str, Any]:
    """What the importer sent: without what the endpoint stamps (receivedAt, sentAt) and the
    library's context."""
    return {k: v for k, v in message.items() if k not in ("context", "receivedAt", "sentAt")}


def amplitude_event(number: int, hour: int) -> dict[str, Any]:
    """One line of Amplitude's Export API (its response schema's fields, abridged)."""
    at = (START + dt.timedelta(hours=hour, seconds=number % 3600)).strftime("%Y-%m-%d %H:%M:%S.%f")
    return {
        "server_received_time": at,
        "app": 123456,
        "city": "Berlin",
        "user_id": f"user-{number % 40}" if number % 3 else None,
        "device_id": f"device-{number % 60}",
        "uuid": f"5c2a1b9e-0000-4000-8000-{number:012d}",
        "event_time": at,
        "platform": "Web",
        "os_name": "Chrome",
        "amplitude_id": 10**12 + number,
        "event_type": "Song Played",
        "event_properties": {"seq": number, "hour": hour},
        "user_properties": {"plan": "pro"},
        "$insert_id": f"insert-{number}",
        "ip_address": "203.0.113.7",
        "session_id": 1_682_899_200_000 + number,
    }


def write_amplitude_export(folder: Path, hours: int, parts: int, per_file: int) -> tuple[Path, Path]:
    """`<project>/<project>_<date>_<hour>#<n>.json.gz` members, as the Export API's zip holds."""
    archive, flat, number = folder / "amplitude-export.zip", folder / "amplitude-export.ndjson", 0
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out, flat.open("wb") as lines:
        for hour in range(hours):
            for part in range(parts):
                body = b""
                for _ in range(per_file):
                    number += 1
                    body += orjson.dumps(amplitude_event(number, hour)) + b"\n"
                out.writestr(f"123456/123456_2023-05-01_{hour}#{part}.json.gz", gzip.compress(body))
                lines.write(body)
        out.writestr("__MACOSX/123456/._123456_2023-05-01_0#0.json.gz", b"\x00\x05\x16\x07")
    return archive, flat


def test_an_amplitude_export_zip_imports_each_member_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive, flat = write_amplitude_export(tmp_path, hours=4, parts=2, per_file=60)
    result = run([archive], tmp_path)
    messages = received(result)
    seqs = Counter(m["properties"]["seq"] for m in messages)
    assert set(seqs) == set(range(1, 481))
    assert max(seqs.values()) == 1
    outcome = result.files[0]
    assert result.ok
    assert outcome.ledger is not None
    assert outcome.ledger["status"] == "COMPLETE"
    assert outcome.ledger["messages_delivered"] == 480
    assert [m["key"].rsplit("!", 1)[1] for m in outcome.members] == sorted(
        f"123456/123456_2023-05-01_{h}#{p}.json.gz" for h in range(4) for p in range(2)
    )
    assert all(m["status"] == "COMPLETE" and m["records_read"] == 60 for m in outcome.members)
    report = outcome.report
    assert report["format"] == "zip"
    assert len(report["members"]) == 9
    assert [m["status"] for m in report["members"]].count("SKIPPED") == 1  # the macOS metadata
    member_report = (
        Path(result.bucket_copy or "")
        / "reports"
        / "local"
        / ("amplitude-export.zip!123456/123456_2023-05-01_2#1.json.gz.report.json")
    )
    assert orjson.loads(member_report.read_bytes())["records_read"] == 60

    capsys.readouterr()
    assert cli.main(["status", "--local", str(result.run_dir), "--json"]) == 0
    lines = {line["key"]: line for line in json.loads(capsys.readouterr().out)}
    drop = lines[outcome.key]  # the archive's line: its members' totals and status
    assert (drop["status"], drop["messages_delivered"], drop["records_read"]) == ("COMPLETE", 480, 480)
    assert sum(1 for key in lines if key.startswith(f"{outcome.key}!")) == 8  # and a line each

    flat_ids = {m["properties"]["seq"]: m["messageId"] for m in received(run([flat], tmp_path))}
    assert {m["properties"]["seq"]: m["messageId"] for m in messages} == flat_ids  # from $insert_id


def test_an_archive_with_traps_delivers_its_good_members_and_is_not_ok(tmp_path: Path) -> None:
    archive = tmp_path / "vendor.zip"
    good = b'{"userId":"u1","event":"E","timestamp":"2021-01-01T00:00:00Z","properties":{"seq":1}}\n'
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("good.ndjson", good + b'{"event":"E","timestamp":"2021-01-01T00:00:00Z"}\n')
        out.writestr("../../etc/cron.d/evil.ndjson", good)
        out.writestr("nested.zip", b"PK\x03\x04" + b"\x00" * 64)
        out.writestr("disguised.csv", b"PK\x03\x04" + b"\x00" * 64)
    result = run([archive], tmp_path)
    assert [m["properties"]["seq"] for m in received(result)] == [1]
    outcome = result.files[0]
    assert not result.ok
    statuses = {m["key"].rsplit("!", 1)[1]: (m["status"], m.get("last_error", "")) for m in outcome.members}
    assert statuses["good.ndjson"][0] == "COMPLETE_WITH_ERRORS"
    assert "path traversal" in statuses["member-00001"][1]
    assert "nested archive" in statuses["nested.zip"][1]
    assert "nested archive" in statuses["disguised.csv"][1]
    assert (outcome.ledger or {})["status"] == "FAILED"  # the drop: its least advanced member
    rejects = Path(result.bucket_copy or "") / "rejects" / "local" / "vendor.zip!good.ndjson.rejects.ndjson"
    assert orjson.loads(rejects.read_bytes().splitlines()[0])["reason"] == "missing_user"
    assert not (Path(result.bucket_copy or "") / "etc").exists()


def test_parquet_without_pyarrow_fails_the_file_naming_the_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parquet, _ = write_warehouse(tmp_path, 10, row_group=5)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    result = run([parquet], tmp_path)
    assert result.files[0].report["status"] == "FAILED"
    assert result.files[0].report["error"] == PARQUET_LAYER_MISSING
    assert not result.ok


def test_members_left_when_the_invocation_runs_out_of_time_fail_with_that_reason(tmp_path: Path) -> None:
    """An archive is split in one invocation: a member that no longer fits is a FAILED import
    with the reason, never silently left out."""
    archive, _ = write_amplitude_export(tmp_path, hours=2, parts=2, per_file=10)
    remaining = iter([900.0, 900.0, 30.0, 30.0])  # seconds left before each member
    budget = PartBudget(remaining_seconds=lambda: next(remaining), reserve_seconds=60.0)
    with mock_aws():
        stack = LocalStack(StackTemplate.load(), {"PreflightHost": ""}).create(write_key="k")
        key = "imports/amplitude-export.zip"
        stack.s3.upload_file(str(archive), stack.bucket, key)
        settings = SplitterSettings.from_env(stack.function("SplitterFunction").environment)
        ledger = Ledger(stack.dynamodb, stack.table_name("ImportsTable"), stack.table_name("BatchesTable"))
        report = split_import(
            SplitterServices(stack.s3, stack.sqs, ledger), stack.bucket, key, settings, budget=budget
        )
        items = {item["key"]: item for item in ledger.list_imports(key)}
    statuses = [member["status"] for member in report.members]
    assert statuses == ["QUEUED", "QUEUED", "FAILED", "FAILED", "SKIPPED"]
    failed = [m for m in report.members if m["status"] == "FAILED"]
    assert all(m["error"] == OUT_OF_TIME for m in failed)
    assert all(items[m["key"]]["status"] == "FAILED" for m in failed)
    assert report.records_read == 20
