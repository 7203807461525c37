"""QA's event-time findings, as a user meets them: an Excel serial date is not history (issue
14's implausible_timestamp), and an identify call needs no time (Segment stamps it on arrival;
requireTimestamp is about track, page and screen calls), with `source` set or not."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import write_csv


def test_excel_serial_dates_are_implausible_and_identify_calls_need_no_time(cli, tmp_path: Path) -> None:
    write_csv(tmp_path / "sheet.csv", "userId,event,timestamp", ["u1,Played,44259.4", "u2,Played,44259"])
    calls = [
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
        {"type": "track", "userId": "u1", "event": "Played", "timestamp": "2021-03-06T09:00:00Z"},
    ]
    (tmp_path / "calls.ndjson").write_text("".join(json.dumps(call) + "\n" for call in calls))
    (tmp_path / "job.json").write_text(json.dumps({"source": "segment"}))

    done = cli("run", "sheet.csv", "calls.ndjson", "--config", "job.json", "--no-progress")
    sheet = cli("rejects", "sheet.csv")
    run_dir = Path((tmp_path / "out" / "LATEST").read_text())
    received = [json.loads(line) for line in (run_dir / "received.ndjson").open()]

    assert done.code == 1, done.both  # the sheet's every record was rejected
    assert [json.loads(line)["reason"] for line in sheet.out.splitlines()] == ["implausible_timestamp"] * 2
    (identify,) = [message for message in received if message["type"] == "identify"]
    assert identify["userId"] == "u1"
    assert "timestamp" not in identify  # Segment gives it the time it arrives
    assert len(received) == 2
