"""Issue 12: a stopped local run resumes; the batches it delivered are not sent again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from segment_importer_local.template_config import StackTemplate
from tests.cli.conftest import signups, start_cli

RECORDS, PER_BATCH = 3_000, 50


def _delivered_lines(run_dir: Path) -> int:
    path = run_dir / "delivered.ndjson"
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def _wait(process: subprocess.Popen[str]) -> bool:
    try:
        process.wait(timeout=0.05)
    except subprocess.TimeoutExpired:
        return True
    return False


def test_a_stopped_run_resumes_without_resending_what_was_delivered(cli, tmp_path: Path) -> None:
    signups(tmp_path / "big.csv", RECORDS)
    process = start_cli(["run", "big.csv", "--parameter", f"BatchMaxMessages={PER_BATCH}"], tmp_path)
    latest = tmp_path / "out" / "LATEST"
    try:
        while _wait(process) and not (latest.exists() and _delivered_lines(Path(latest.read_text())) >= 5):
            pass
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    first = Path(latest.read_text())
    assert process.returncode == 130, err
    assert f"Resume it with: segment-importer run --resume {first}" in err
    delivered_first = _delivered_lines(first)
    first_received = {json.loads(line)["messageId"] for line in (first / "received.ndjson").open()}

    resumed = cli("run", "--resume", str(first), "--no-progress")
    second = Path(latest.read_text())
    second_received = [json.loads(line)["messageId"] for line in (second / "received.ndjson").open()]

    assert resumed.code == 0, resumed.both
    assert second != first
    assert f"{delivered_first:,} batches ({delivered_first * PER_BATCH:,} messages) delivered" in resumed.err
    assert f"OK: sent {RECORDS:,} of {RECORDS:,} records" in resumed.out
    # Only what the first run had not finished is sent again: at most the batch in flight twice.
    assert len(second_received) <= RECORDS - delivered_first * PER_BATCH
    # Sent again: only what was in flight at the stop, at most one sender invocation's batches
    # (delivered, not yet in the run's delivered log); Segment dedupes them by messageId.
    in_flight = int(StackTemplate.load().parameter_defaults()["SenderBatchSize"]) * PER_BATCH
    assert len(first_received & set(second_received)) <= in_flight
    assert len(first_received | set(second_received)) == RECORDS


def _stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, err


def test_the_stop_hint_names_the_stopped_run_when_another_started_meanwhile(tmp_path: Path) -> None:
    """QA: the hint named out/LATEST, which the second terminal's run had moved on."""
    signups(tmp_path / "big.csv", 6_000)
    signups(tmp_path / "small.csv", 3)
    first = start_cli(["run", "big.csv", "--parameter", "BatchMaxMessages=20"], tmp_path)
    latest = tmp_path / "out" / "LATEST"
    second = None
    try:
        while _wait(first) and not (latest.exists() and _delivered_lines(Path(latest.read_text())) >= 1):
            pass
        first_dir = latest.read_text()
        second = start_cli(["run", "small.csv", "--no-progress"], tmp_path)
        while _wait(first) and latest.read_text() == first_dir:
            pass
        code, err = _stop(first)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert latest.read_text() != first_dir  # the second run had started
    assert code == 130, err
    assert f"Resume it with: segment-importer run --resume {first_dir} (within a day: " in err
    assert f"status --local {first_dir})" in err


@pytest.fixture
def finished_run(cli, tmp_path: Path) -> Path:
    """A finished run of a folder with its job.json and a parameter override."""
    signups(tmp_path / "drop" / "a.csv", 3)
    (tmp_path / "drop" / "job.json").write_text('{"event": "Signed Up"}', encoding="utf-8")
    done = cli("run", "drop", "--parameter", "BatchMaxMessages=2", "--no-progress")
    assert done.code == 0, done.both
    return Path((tmp_path / "out" / "LATEST").read_text())


def test_resume_refuses_a_changed_parameter_naming_it(cli, finished_run: Path) -> None:
    changed = cli("run", "--resume", str(finished_run), "--parameter", "BatchMaxMessages=3")
    assert changed.code == 2, changed.both
    assert "--parameter BatchMaxMessages=3 differs (the stopped run used BatchMaxMessages=2)" in changed.err
    added = cli("run", "--resume", str(finished_run), "--parameter", "SenderBatchSize=1")
    assert added.code == 2, added.both
    assert "SenderBatchSize=1 differs (the stopped run used the template's default)" in added.err
    same = cli("run", "--resume", str(finished_run), "--parameter", "BatchMaxMessages=2", "--no-progress")
    assert same.code == 0, same.both


def test_resume_refuses_other_files_and_files_added_to_a_folder(
    cli, finished_run: Path, tmp_path: Path
) -> None:
    signups(tmp_path / "other.csv", 3)
    other = cli("run", "--resume", str(finished_run), "other.csv")
    assert other.code == 2, other.both
    assert "the files differ (the stopped run imported " in other.err
    signups(tmp_path / "drop" / "b.csv", 3)
    extra = cli("run", "--resume", str(finished_run))
    assert extra.code == 2, extra.both
    assert f"files added since the stop: {tmp_path.resolve() / 'drop' / 'b.csv'}" in extra.err


def test_resume_refuses_an_export_whose_content_changed_with_its_size_and_time(
    cli, finished_run: Path, tmp_path: Path
) -> None:
    """QA: another export of the same size, copied with its time (cp -p), resumed, and records
    at positions already sent were skipped while the verdict said OK."""
    export = tmp_path / "drop" / "a.csv"
    stat = export.stat()
    lines = export.read_bytes().splitlines(keepends=True)
    export.write_bytes(b"".join([lines[0], *reversed(lines[1:])]))  # the same bytes, rows swapped
    os.utime(export, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert export.stat().st_size == stat.st_size
    changed = cli("run", "--resume", str(finished_run))
    assert changed.code == 2, changed.both
    assert f"files changed since the stop: {export.resolve()}" in changed.err


def test_resume_refuses_a_job_file_changed_since_the_stop(cli, finished_run: Path, tmp_path: Path) -> None:
    (tmp_path / "drop" / "job.json").write_text('{"event": "Signed In"}', encoding="utf-8")  # same size
    changed = cli("run", "--resume", str(finished_run))
    assert changed.code == 2, changed.both
    assert f"files changed since the stop: {tmp_path.resolve() / 'drop' / 'job.json'}" in changed.err
    assert "start a new run instead" in changed.err
