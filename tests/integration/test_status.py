"""`segment-importer status` during and after a local multi-file import with injected faults.

The done-criterion of the ledger: the counts status reports equal, to the message, what
the Segment endpoint received.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from moto import mock_aws

from segment_importer.import_ref import ImportRef
from segment_importer.split import stream_split
from segment_importer.track.ledger import Ledger
from segment_importer_local import cli
from segment_importer_local.progress import PipelineProgress
from segment_importer_local.runner import RunOptions, run_import
from segment_importer_local.segment_endpoint import FaultPlan
from segment_importer_local.stack import LocalStack
from segment_importer_local.status import describe, local_run_dir, snapshot_reader
from segment_importer_local.template_config import StackTemplate

FAULTS = {"status": 0.15, "rate_limit": 0.05, "reset": 0.1, "accept_then_fail": 0.1}


def write_export(path: Path, count: int, bad_every: int) -> None:
    lines = []
    for number in range(1, count + 1):
        record = {"userId": f"u{number}", "event": "Played", "timestamp": 1_700_000_000 + number}
        record["properties"] = {"file": path.name, "seq": number}
        if number % bad_every == 0:
            del record["userId"]
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")


def status_json(out_dir: Path) -> list[dict]:
    completed = subprocess.run(
        [sys.executable, "-m", "segment_importer_local.cli", "status", "--json", "--out", str(out_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(completed.stdout)


def test_status_counts_equal_what_the_endpoint_received(tmp_path: Path) -> None:
    files = []
    for name, count, bad_every in (("a.ndjson", 900, 50), ("b.ndjson", 400, 7), ("c.ndjson", 250, 1000)):
        files.append(tmp_path / name)
        write_export(files[-1], count, bad_every)
    out_dir = tmp_path / "out"
    seen_during: list[list[dict]] = []
    finished = threading.Event()

    def watch() -> None:  # what a second terminal would see while the run goes on
        while not finished.is_set():
            with contextlib.suppress(FileNotFoundError, ValueError):  # no snapshot yet
                seen_during.append(
                    [describe(item) for item in snapshot_reader(local_run_dir(out_dir, None), "")()]
                )
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_import(
            RunOptions(
                files,
                out_dir=out_dir,
                faults=FaultPlan.random(seed=3, rates=FAULTS, retry_after=1),
                show_progress=False,
                parameter_overrides={"BatchMaxMessages": "50"},
            )
        )
    finally:
        finished.set()
        watcher.join()

    received = [orjson.loads(line) for line in Path(result.received_path or "").read_bytes().splitlines()]
    received_by_file = Counter(message["properties"]["file"] for message in received)
    statuses = {Path(status["key"]).name: status for status in status_json(out_dir)}
    assert set(statuses) == {"a.ndjson", "b.ndjson", "c.ndjson"}
    for name, status in statuses.items():
        assert status["messages_delivered"] == received_by_file[name], name
        assert status["messages_delivered"] == status["messages_queued"]
        assert status["batches_delivered"] == status["batches_queued"]
        assert status["messages_failed"] == status["messages_refused"] == 0
    assert statuses["a.ndjson"]["status"] == "COMPLETE_WITH_ERRORS"  # it had rejects
    assert statuses["a.ndjson"]["rejected"] == 18
    assert statuses["c.ndjson"]["status"] == "COMPLETE"
    assert (
        sum(s["messages_delivered"] for s in statuses.values())
        == (result.endpoint_stats or {})["messages_accepted"]
    )
    assert sum((result.endpoint_stats or {})["faults"].values()) > 0

    assert seen_during, "the watcher never saw a snapshot"
    for snapshot in seen_during:  # during the run: counts only grow, never past what was queued
        for status in snapshot:
            assert (
                status["messages_delivered"] <= max(status["messages_queued"], 0)
                or status["status"] == "SPLITTING"
            )
    delivered_over_time = [sum(s["messages_delivered"] for s in snap) for snap in seen_during]
    assert delivered_over_time == sorted(delivered_over_time)


def deployed_ledger() -> tuple[str, Ledger]:
    """The stack's imports table (in moto, inside `mock_aws`) and a ledger on it."""
    stack = LocalStack(StackTemplate.load()).create(write_key="k")
    table = stack.table_name("ImportsTable")
    return table, Ledger(stack.dynamodb, table, stack.table_name("BatchesTable"))


def test_status_reads_a_deployed_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # a terminal wide enough for keys on one line
    with mock_aws():
        table, ledger = deployed_ledger()
        ref = ImportRef("bucket", "imports/2019/big.csv", "e1")
        ledger.start_split(ref, 10, "r1")
        ledger.finish_split(
            ref, {"records_read": 30, "messages_queued": 30, "batches_queued": 2, "rejected": 0}
        )
        ledger.record_delivered(ref, 1, 20, 0)
        assert cli.main(["status", "--table", table, "--json"]) == 0
        (status,) = json.loads(capsys.readouterr().out)
        assert (status["status"], status["messages_delivered"], status["progress"]) == ("SENDING", 20, 0.5)
        assert cli.main(["status", "--table", table, "imports/2019/"]) == 0
        table_text = capsys.readouterr().out
        assert "imports/2019/big.csv" in table_text
        assert "SENDING" in table_text


def test_status_shows_how_much_of_a_file_the_splitter_has_read(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    with mock_aws():
        table, ledger = deployed_ledger()
        ref = ImportRef("bucket", "imports/2019/huge.ndjson", "e1")
        ledger.start_split(ref, 4_000_000_000, "r1")
        ledger.record_split_progress(ref, {"records_read": 100_000, "bytes_read": 1_000_000_000})
        assert cli.main(["status", "--table", table, "--json"]) == 0
        (status,) = json.loads(capsys.readouterr().out)
        assert (status["status"], status["split_progress"], status["progress"]) == ("SPLITTING", 0.25, None)
        assert cli.main(["status", "--table", table]) == 0
        assert "read 25%" in capsys.readouterr().out


def test_a_local_run_moves_the_split_bar_as_the_splitter_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bar follows the splitter's own progress log lines, through the handler as loaded
    from the template (its Powertools Logger sets the level those lines need)."""
    monkeypatch.setattr(stream_split, "PROGRESS_EVERY_RECORDS", 2_000)  # a line per ~150 KB here
    export = tmp_path / "big.ndjson"
    write_export(export, 40_000, bad_every=10**9)
    size = export.stat().st_size
    assert size > 2 * (1 << 20)  # more than the reader's 1 MiB chunks, so reads arrive in steps
    seen: list[tuple[int | None, int]] = []
    real_split_read = PipelineProgress.split_read

    def recording(self: PipelineProgress, span: int | None, bytes_read: int) -> None:
        seen.append((span, bytes_read))
        real_split_read(self, span, bytes_read)

    monkeypatch.setattr(PipelineProgress, "split_read", recording)
    result = run_import(RunOptions([export], out_dir=tmp_path / "out", dry_run=True, show_progress=False))
    assert result.ok
    assert len(seen) == 40_000 // 2_000
    read = [bytes_read for span, bytes_read in seen if span is None]
    assert read == sorted(read)
    assert len(set(read)) >= 3
    assert read[-1] <= size
