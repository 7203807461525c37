"""Issue 12: a stopped local run resumes; the batches it delivered are not sent again."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

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
