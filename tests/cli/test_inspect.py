"""Issue 12: status, rejects and redrive without AWS settings; pipes and Ctrl-C; check-job;
the status table at 80 columns; --version and help."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.cli.conftest import no_traceback, signups, start_cli, write_csv

NO_AWS = {
    "AWS_DEFAULT_REGION": None,
    "AWS_REGION": None,
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
}


@pytest.mark.parametrize(
    "arguments",
    [
        ["status", "--stack", "importer"],
        ["rejects", "x.csv", "--stack", "importer"],
        ["redrive", "--stack", "s"],
    ],
)
def test_deployed_commands_without_region_or_credentials_say_what_is_missing(cli, arguments) -> None:
    no_region = cli(*arguments, **NO_AWS)
    no_credentials = cli(*arguments, **{**NO_AWS, "AWS_DEFAULT_REGION": "eu-west-1"})

    assert no_region.code == 1, no_region.both
    assert no_region.err.strip().splitlines() == [
        "error: no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region)"
    ]
    assert no_credentials.code == 1, no_credentials.both
    assert "error: no AWS credentials found" in no_credentials.err
    assert len(no_credentials.err.strip().splitlines()) == 1
    no_traceback(no_region)
    no_traceback(no_credentials)


def _local_run(folder: Path, imports: int) -> Path:
    """A local run's folder as `run` leaves it: the ledger snapshot and out/LATEST."""
    run_dir = folder / "out" / "20261201T000000Z-0000"
    run_dir.mkdir(parents=True)
    items = [
        {
            "key": f"imports/local/exports/{2000 + i % 20}/customers-with-a-long-name-{i:05d}.csv",
            "status": "SENDING",
            "messages_queued": 1_250_000,
            "messages_delivered": 730_000 + i,
            "batches_queued": 500,
            "batches_delivered": 292,
            "rejected": 12_345,
            "rejected_by_reason": {"missing_user": 12_345},
            "started_at": "2026-12-01T00:00:00Z",
        }
        for i in range(imports)
    ]
    (run_dir / "ledger.json").write_bytes(orjson.dumps({"written_at": 0, "imports": items}))
    (folder / "out" / "LATEST").write_text(str(run_dir))
    return run_dir


def test_the_status_table_keeps_each_import_on_one_line_at_80_columns(cli, tmp_path: Path) -> None:
    _local_run(tmp_path, 3)
    done = cli("status", COLUMNS="80")

    assert done.code == 0, done.both
    table = done.out.split("\n\n")[0].splitlines()
    assert all(len(line) <= 80 for line in table), done.out
    rows = [line for line in table if "SENDING" in line]
    assert len(rows) == 3, done.out
    assert [row.split()[0][-9:] for row in rows] == ["00000.csv", "00001.csv", "00002.csv"]  # the key's end
    assert all(re.search(r" \d+h\d\dm$", row) for row in rows)  # the ETA, whole
    assert all("730k/1.25M" in row for row in rows)  # counts in 3 significant digits


def test_status_json_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    _local_run(tmp_path, 2_000)  # a few MB of JSON: more than a pipe holds
    process = start_cli(["status", "--json"], tmp_path)
    assert process.stdout is not None
    first = process.stdout.readline()
    process.stdout.close()  # `| head -1`
    code = process.wait(timeout=120)
    stderr = process.stderr.read() if process.stderr else ""

    assert first.strip() == "["
    assert code == 141
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr


def test_ctrl_c_stops_cleanly_and_says_what_was_done(tmp_path: Path) -> None:
    signups(tmp_path / "big.csv", 60_000)
    process = start_cli(["run", "big.csv", "--no-progress"], tmp_path)
    latest = tmp_path / "out" / "LATEST"
    try:
        # Interrupt once the run has started (its folder is recorded), as a user would.
        while not latest.exists() and _still_running(process):
            pass
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()

    assert latest.exists()
    assert process.returncode == 130, err
    assert "interrupted: stopped; what was done so far is in" in err
    assert "segment-importer status --local" in err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err


def _still_running(process: subprocess.Popen[str]) -> bool:
    try:
        process.wait(timeout=0.05)
    except subprocess.TimeoutExpired:
        return True
    return False


def test_check_job_reports_every_error(cli, tmp_path: Path) -> None:
    job = {
        "columns": {"email": "userId", "plan": "properties..plan", "seats": "properties.seats."},
        "integrations": {"All": "no", "Mixpanel": True},
        "type": "click",
        "colour": "blue",
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    done = cli("check-job", "job.json")

    assert done.code == 2, done.both
    for says in (
        "4 problem(s) in the job file",
        "unknown keys ['colour']",
        "'type' must be one of",
        "\"'plan': 'properties..plan'",
        "'seats': 'properties.seats.'",
        "'All': 'no'",
    ):
        assert says.strip('"') in done.err, done.err
    assert "'email'" not in done.err  # a good entry is not listed
    no_traceback(done)


def test_a_bad_job_file_stops_run_before_it_starts(cli, tmp_path: Path) -> None:
    signups(tmp_path / "drop" / "a.csv")
    (tmp_path / "drop" / "job.json").write_text(json.dumps({"integrations": {"All": "no"}}))
    done = cli("run", "drop", "--no-progress")

    assert done.code == 2, done.both
    assert "'All': 'no'" in done.err
    assert not (tmp_path / "out").exists()


def test_version_and_help(cli) -> None:
    version = cli("--version")
    top = cli("--help")

    assert version.code == 0
    assert version.out.startswith("segment-importer 0.")
    assert "examples:" in top.out
    assert "segment-importer run examples/" in top.out
    for command in ("run", "status", "rejects", "redrive", "check-job"):
        sub = cli(command, "--help")
        assert sub.code == 0, sub.both
        description = sub.out.split("\n\n")[1]  # usage, then the description
        assert len(description.split()) > 8, (command, sub.out)
        assert "xample" in sub.out, (command, sub.out)


def test_make_test_runs_offline_in_parallel_and_audit_on_its_own() -> None:
    root = Path(__file__).resolve().parents[2]
    test = subprocess.run(["make", "-n", "test"], cwd=root, capture_output=True, text=True, check=True).stdout
    audit = subprocess.run(
        ["make", "-n", "audit"], cwd=root, capture_output=True, text=True, check=True
    ).stdout

    assert "pytest -n 2 --dist loadfile" in test
    assert "pip-audit" not in test
    assert "pip-audit" in audit
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"  # tests/conftest.py, for the whole session


def test_missing_inputs_are_usage_errors(cli, tmp_path: Path) -> None:
    write_csv(tmp_path / "ok.csv", "userId,event,timestamp", ["u1,Played,2021-01-01T00:00:00Z"])
    done = cli("run", "ok.csv", "missing.csv", "--no-progress")

    assert done.code == 2, done.both
    assert "no such file or folder: missing.csv" in done.err
