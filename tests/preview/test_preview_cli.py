"""`segment-importer preview` through the CLI: the same counts and the same messages as the
splitter sends through the local stack, and every documented key of the JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from segment_importer_local import cli
from segment_importer_local.runner import RunOptions, run_import

from .conftest import EXAMPLES

DOCUMENTED_KEYS = {
    "records", "valid", "rejected", "by_reason", "by_type", "by_event", "first_timestamp", "last_timestamp",
    "by_month", "distinct_users", "coverage", "filtered", "filtered_by", "samples",
}  # fmt: skip


def preview(capsys: pytest.CaptureFixture[str], *arguments: str | Path) -> tuple[int, dict[str, Any]]:
    status = cli.main(["preview", *map(str, arguments), "--json", "--no-progress"])
    return status, json.loads(capsys.readouterr().out)


def test_preview_counts_and_messages_are_the_splitters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every example: the preview's per-file counts are the local run's, and its mapped
    messages (ids included) are exactly what the embedded Segment endpoint received."""
    mapped = tmp_path / "mapped.ndjson"
    status, document = preview(capsys, EXAMPLES, "--mapped", mapped, "--sample", 3)
    assert status == 0
    assert set(document) >= DOCUMENTED_KEYS
    run = run_import(RunOptions([EXAMPLES], out_dir=tmp_path / "out", show_progress=False))
    assert run.ok
    for entry, outcome in zip(document["files"], run.files, strict=True):
        report = outcome.report
        assert entry["file"] == Path(outcome.file).name
        assert (entry["records"], entry["rejected"], entry["would_send"]) == (
            report["records_read"],
            report["rejected"],
            report["messages_queued"],
        )
    received = {
        m["messageId"]: m for m in map(orjson.loads, Path(run.received_path or "").read_bytes().splitlines())
    }
    previewed = [orjson.loads(line) for line in mapped.read_bytes().splitlines()]
    assert len(previewed) == document["would_send"] == len(received) == 131
    for message in previewed:
        sent = dict(received[message["messageId"]])
        sent.pop("receivedAt")  # the endpoint stamps it, as Segment does
        assert message == sent
    assert document["samples"] == [orjson.loads(line) for line in mapped.read_bytes().splitlines()[:3]]


def crafted(path: Path) -> Path:
    lines = [
        {
            "type": "track",
            "event": "Signed Up",
            "userId": "u1",
            "timestamp": "2023-01-05T00:00:00Z",
            "properties": {"plan": "pro", "seats": 3},
        },
        {
            "type": "track",
            "event": "Signed Up",
            "anonymousId": "a1",
            "timestamp": "2023-01-06T00:00:00Z",
            "properties": {"plan": "free"},
        },
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "u1",
            "timestamp": "2023-03-01T00:00:00Z",
            "properties": {"plan": None, "total": 9.5},
        },
        {"type": "track", "userId": "u2", "timestamp": "2023-03-01T00:00:00Z"},  # 4: no event
        {"type": "identify", "userId": "u2", "timestamp": "2022-12-31T23:59:59.5Z", "traits": {"email": "e"}},
        {"type": "track", "event": "X", "timestamp": "2023-01-01T00:00:00Z"},  # 6: no user
        {"type": "track", "event": "X", "timestamp": "2023-01-01T00:00:00Z"},  # 7: no user
        {"type": "page", "name": "Home", "userId": "u3", "timestamp": "2023-02-10T00:00:00Z"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n{broken\n")  # 9: invalid JSON
    return path


def test_every_figure_of_a_crafted_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, document = preview(capsys, crafted(tmp_path / "crafted.ndjson"))
    assert status == 0
    assert (document["records"], document["valid"], document["rejected"]) == (9, 5, 4)
    assert {reason: entry["count"] for reason, entry in document["by_reason"].items()} == {
        "missing_user": 2, "missing_event": 1, "invalid_json": 1,
    }  # fmt: skip
    assert [r["record"] for r in document["by_reason"]["missing_user"]["first_records"]] == [6, 7]
    assert document["by_reason"]["invalid_json"]["first_records"][0]["record"] == 9
    assert document["by_type"] == {"track": 3, "identify": 1, "page": 1}
    assert document["by_event"] == {"Signed Up": 2, "Order Completed": 1}
    assert document["first_timestamp"] == "2022-12-31T23:59:59.500Z"
    assert document["last_timestamp"] == "2023-03-01T00:00:00.000Z"
    assert document["by_month"] == {"2022-12": 1, "2023-01": 2, "2023-02": 1, "2023-03": 1}
    assert document["distinct_users"]["userId"] == {"count": 3, "exact": True}
    assert document["distinct_users"]["anonymousId"] == {"count": 1, "exact": True}
    properties = document["coverage"]["properties"]
    assert properties["messages"] == 4  # three tracks and a page
    assert properties["fields"]["plan"] == {"messages": 3, "share": 0.75, "types": ["null", "string"]}
    assert properties["fields"]["seats"] == {"messages": 1, "share": 0.25, "types": ["number"]}
    assert document["coverage"]["traits"]["fields"]["email"]["share"] == 1.0
    assert (document["filtered"], document["filtered_by"], document["would_send"]) == (0, {}, 5)
    assert len(document["samples"]) == 5  # the default


def test_shaping_in_the_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({
        "filter": {"types": ["track"], "exclude_events": ["Order Completed"]},
        "hash": {"paths": ["userId"], "key": "k"},
        "drop": ["properties.seats"],
        "set": {"context.source": "crm"},
    }))  # fmt: skip
    status, document = preview(capsys, crafted(tmp_path / "crafted.ndjson"), "--config", job)
    assert status == 0
    assert document["rejected"] == 4, "validation comes first"
    assert document["filtered_by"] == {"types": 2, "exclude_events": 1}
    assert (document["filtered"], document["would_send"]) == (3, 2)
    assert document["by_event"] == {"Signed Up": 2}
    first = document["samples"][0]
    assert len(first["userId"]) == 64
    assert "seats" not in first["properties"]
    assert first["context"]["source"] == "crm"
    assert document["job"]["hash"]["key"] == "(redacted)"
    assert document["coverage"]["properties"]["fields"].keys() == {"plan"}


def test_the_terminal_shows_the_top_and_says_nothing_was_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps lines at the terminal's width
    lines = [
        {"type": "track", "event": f"Event {n % 14:02d}", "userId": "u", "timestamp": 1.6e9}
        for n in range(140)
    ]
    export = tmp_path / "many.ndjson"
    export.write_text("\n".join(json.dumps(line) for line in lines))
    assert cli.main(["preview", str(export), "--no-progress", "--sample", "0"]) == 0
    out = capsys.readouterr().out
    assert "would send 140" in out
    assert "nothing was sent" in out
    assert "accepted" not in out
    assert "(4 more)" in out, "the terminal shows the top 10 of 14 event names"
    _, document = preview(capsys, export)
    assert len(document["by_event"]) == 14, "the JSON has all of them"


def test_a_file_that_cannot_be_read_fails_the_preview(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parquet = tmp_path / "events.parquet"
    parquet.write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    truncated = tmp_path / "cut.ndjson.gz"
    truncated.write_bytes((EXAMPLES / "segment-archive.ndjson.gz").read_bytes()[:-40])
    status, document = preview(capsys, parquet, truncated)
    assert status == 1
    parquet_entry, truncated_entry = document["files"]
    assert "Parquet" in parquet_entry["error"]
    assert truncated_entry["read_to_its_end"] is False
    assert "file_unreadable" in document["by_reason"]


def test_a_bad_job_file_stops_the_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"filter": {"since": "yesterday"}}))
    with pytest.raises(SystemExit) as stopped:
        cli.main(["preview", str(EXAMPLES / "spreadsheet.csv"), "--config", str(job)])
    assert "'filter.since' must be an ISO 8601 time" in str(stopped.value)


def test_check_job_validates_the_shaping_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"sample": 2}))
    assert cli.main(["check-job", str(job)]) == 2  # a usage error, every problem listed
    assert "'sample' must be a fraction" in capsys.readouterr().err
    job.write_text(json.dumps({"limit": 10, "filter": {"where": "length(properties) > `0`"}}))
    assert cli.main(["check-job", str(job)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "limit": 10,
        "filter": {"where": "length(properties) > `0`"},
    }


def test_a_folders_job_files_govern_the_preview_as_they_do_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The nearest job.json governs the files in and below its folder, in `preview` as in
    `run`: the same counts and the same messages, and each file names its job file."""
    drop = tmp_path / "drop"
    (drop / "sub").mkdir(parents=True)
    root_job = {"columns": {"email": "userId"}, "context": {"source": "root"}}
    (drop / "job.json").write_text(json.dumps(root_job))
    (drop / "sub" / "job.json").write_text(
        json.dumps({"type": "identify", "columns": {"mail": "userId"}, "limit": 1})
    )
    (drop / "a.csv").write_text("email,event,timestamp\nu1,Signed Up,2023-01-05T00:00:00Z\n")
    (drop / "sub" / "b.csv").write_text("mail,plan\nu2,pro\nu3,free\n")
    mapped = tmp_path / "mapped.ndjson"
    status, document = preview(capsys, drop, "--mapped", mapped)
    assert status == 0
    assert [(entry["file"], entry["job_file"]) for entry in document["files"]] == [
        ("a.csv", str(drop / "job.json")),
        ("b.csv", str(drop / "sub" / "job.json")),
    ]
    assert (document["rejected"], document["filtered"], document["would_send"]) == (0, 1, 2)
    previewed = [orjson.loads(line) for line in mapped.read_bytes().splitlines()]
    assert [(m["type"], m["userId"], m["context"].get("source")) for m in previewed] == [
        ("track", "u1", "root"),
        ("identify", "u2", None),
    ]
    run = run_import(RunOptions([drop], out_dir=tmp_path / "out", show_progress=False))
    assert run.ok
    received = {
        m["messageId"]: m for m in map(orjson.loads, Path(run.received_path or "").read_bytes().splitlines())
    }
    assert len(received) == 2
    for message in previewed:
        sent = dict(received[message["messageId"]])
        sent.pop("receivedAt")  # the endpoint stamps it, as Segment does
        assert message == sent
