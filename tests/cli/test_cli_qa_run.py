"""Black-box QA of `run` as a user meets it: progress without a terminal, the functions' log
lines kept off the terminal, SIGTERM/SIGHUP, unreadable inputs, bad --out, and what to do next."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import cli_environment, no_traceback, signups, start_cli
from tests.standin_host import StandinHost, always

RECORDS, PER_BATCH = 3_000, 50


def _ndjson(path: Path, count: int) -> Path:
    lines = [
        json.dumps(
            {"type": "track", "userId": f"u{n}", "event": "Played", "timestamp": "2021-06-01T10:00:00Z"}
        )
        for n in range(count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _latest(tmp_path: Path) -> Path:
    return Path((tmp_path / "out" / "LATEST").read_text().strip())


def test_progress_lines_when_stderr_is_not_a_terminal(cli, tmp_path: Path) -> None:
    """QA 1: `run big.ndjson 2>run.log` showed nothing until the end (rich draws its bars once)."""
    _ndjson(tmp_path / "events.ndjson", 1_000)
    done = cli("run", "events.ndjson", "--parameter", "BatchMaxMessages=100", "--progress-every", "0")

    assert done.code == 0, done.both
    lines = [line for line in done.err.splitlines() if line.startswith("progress: ")]
    # One line as the split starts and ends, and one per batch delivered (every 0 s).
    assert len(lines) >= 10, done.err
    assert "progress: split events.ndjson" in lines[0]
    assert lines[-1].endswith("sent 1,000/1,000 messages") or "sent 1,000/1,000 messages;" in lines[-1]
    assert "\r" not in done.err  # plain lines: no carriage returns,
    assert "\x1b" not in done.err  # no ANSI
    assert "━" not in done.err  # no bar drawn at the end either


def test_no_progress_lines_with_no_progress(cli, tmp_path: Path) -> None:
    _ndjson(tmp_path / "events.ndjson", 10)
    done = cli("run", "events.ndjson", "--no-progress", "--progress-every", "0")
    assert done.code == 0, done.both
    assert "progress: " not in done.err


def _run_on_a_terminal(arguments: list[str], cwd: Path) -> tuple[int, str, str]:
    """The CLI with its stderr on a pseudo-terminal (as a user's shell has it): code, stdout, and
    what the terminal showed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "segment_importer_local.cli", *arguments],
        cwd=cwd, env=cli_environment(TERM="xterm"), stdout=subprocess.PIPE, stderr=terminal, text=True,
    )  # fmt: skip
    os.close(terminal)
    shown = bytearray()
    while True:  # read the terminal while the run writes to it (its buffer is small)
        ready, _, _ = select.select([controller], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the last writer is gone
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    out = process.stdout.read() if process.stdout else ""
    process.wait()
    os.close(controller)
    return process.returncode, out, shown.decode("utf-8", "replace")


def test_the_functions_json_log_lines_stay_off_the_terminal(tmp_path: Path) -> None:
    """QA 2: on a terminal, the Powertools JSON lines (one per batch) were printed among the bars:
    rich's live display took sys.stdout over while the handlers' loggers were made."""
    _ndjson(tmp_path / "events.ndjson", 1_000)
    code, out, shown = _run_on_a_terminal(
        ["run", "events.ndjson", "--parameter", "BatchMaxMessages=100"], tmp_path
    )
    run_dir = _latest(tmp_path)
    log = (run_dir / "functions.log").read_text(encoding="utf-8")

    assert code == 0, out + shown
    assert "split events.ndjson" in shown  # the bars were drawn
    assert "segment-importer-sender" not in shown, shown[-2000:]
    assert '"level"' not in shown, shown[-2000:]
    assert log.count('"message":"batch delivered"') == 10  # the lines are in the run's log instead
    assert (
        f"The functions' log lines (JSON) are in {run_dir.relative_to(tmp_path)}/functions.log"
        in " ".join(out.split())
    )


def test_verbose_echoes_the_functions_log_lines(cli, tmp_path: Path) -> None:
    _ndjson(tmp_path / "events.ndjson", 10)
    done = cli("run", "events.ndjson", "--verbose", "--no-progress")
    assert done.code == 0, done.both
    assert '"message":"batch delivered"' in done.err
    assert '"message":"batch delivered"' not in done.out


def _wait_for_batches(process: subprocess.Popen[str], tmp_path: Path, batches: int) -> None:
    latest = tmp_path / "out" / "LATEST"
    while process.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.05)
        delivered = _latest(tmp_path) / "delivered.ndjson" if latest.exists() else None
        if delivered and delivered.is_file() and delivered.read_bytes().count(b"\n") >= batches:
            return


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_like_ctrl_c_and_status_says_stopped(
    cli, tmp_path: Path, stop: signal.Signals, code: int
) -> None:
    """QA 8 and 7: SIGTERM/SIGHUP ended the run without a word; `status` then called the stopped
    run SPLITTING/SENDING, as if it were still going."""
    signups(tmp_path / "big.csv", RECORDS)
    process = start_cli(["run", "big.csv", "--parameter", f"BatchMaxMessages={PER_BATCH}"], tmp_path)
    err = _stopped_when(process, lambda: _wait_for_batches(process, tmp_path, 5), stop)
    run_dir = _latest(tmp_path)

    assert process.returncode == code, err
    no_traceback_in(err)
    assert f"interrupted by {stop.name}: stopped; " in err
    assert "messages) were delivered before the stop" in err
    assert f"Resume it with: segment-importer run --resume {run_dir} (within a day: " in err
    assert json.loads((run_dir / "state.json").read_text())["state"] == "stopped"

    status = cli("status")
    assert status.code == 0, status.both
    assert "STOPPED" in status.out
    assert "SPLITTING" not in status.out
    assert "SENDING" not in status.out
    said = " ".join(status.out.split())
    assert f"did not finish (stopped by {stop.name})" in said
    assert f"Resume it with: segment-importer run --resume {run_dir}" in said

    resumed = cli("run", "--resume", str(run_dir), "--no-progress")  # the saved state is resumable
    assert resumed.code == 0, resumed.both
    assert f"OK: sent {RECORDS:,} of {RECORDS:,} records" in resumed.out


def _stopped_when(process: subprocess.Popen[str], ready: Callable[[], object], stop: signal.Signals) -> str:
    """Wait for `ready`, send `stop`, and return the run's stderr (the process killed if it
    outlives the test)."""
    try:
        ready()
        process.send_signal(stop)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return err


def _polling(condition: Callable[[], object], process: subprocess.Popen[str]) -> Callable[[], None]:
    """Wait until `condition` holds (or the process has ended), in small steps."""

    def wait() -> None:
        while not condition() and process.poll() is None:
            time.sleep(0.01)

    return wait


def no_traceback_in(text: str) -> None:
    assert "Traceback" not in text, text


def test_status_of_a_killed_run_says_stopped(cli, tmp_path: Path) -> None:
    """QA 7: a run killed outright (SIGKILL) writes nothing; its process is gone: stopped."""
    signups(tmp_path / "big.csv", RECORDS)
    process = start_cli(["run", "big.csv", "--parameter", f"BatchMaxMessages={PER_BATCH}"], tmp_path)
    try:
        _wait_for_batches(process, tmp_path, 2)
    finally:
        process.kill()
        process.communicate()

    status = cli("status")
    assert status.code == 0, status.both
    assert "STOPPED" in status.out
    assert "did not finish (killed (its process is gone))" in " ".join(status.out.split())


def test_a_dangling_symlink_in_the_input_folder_refuses_the_run(cli, tmp_path: Path) -> None:
    """QA 9: the dangling link was skipped without a word and the run said OK."""
    signups(tmp_path / "drop" / "a.csv", 3)
    (tmp_path / "drop" / "b.csv").symlink_to(tmp_path / "gone.csv")

    folder = cli("run", "drop", "--no-progress")
    alone = cli("run", "drop/b.csv", "--no-progress")

    assert folder.code == 2, folder.both
    no_traceback(folder)
    assert f"cannot read 1 file(s) in drop: drop/b.csv (a broken symlink to {tmp_path / 'gone.csv'})" in (
        folder.err
    )
    assert not (tmp_path / "out").exists()  # refused before anything started
    assert alone.code == 2, alone.both
    assert "cannot read drop/b.csv: a broken symlink" in alone.err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_in_the_input_folder_refuses_the_run(cli, tmp_path: Path) -> None:
    signups(tmp_path / "drop" / "a.csv", 3)
    secret = signups(tmp_path / "drop" / "b.csv", 3)
    secret.chmod(0)
    done = cli("run", "drop", "--no-progress")
    assert done.code == 2, done.both
    assert "drop/b.csv (Permission denied)" in done.err


@pytest.mark.parametrize(
    "out", ["afile/sub", "/proc/no-such-folder", "afile"], ids=["under-a-file", "cannot-create", "a-file"]
)
def test_an_out_folder_that_cannot_be_written_is_one_line_not_a_traceback(
    cli, tmp_path: Path, out: str
) -> None:
    """QA 11: `--out` under a file, or where no folder can be made, crashed with a traceback."""
    signups(tmp_path / "a.csv", 3)
    (tmp_path / "afile").write_text("", encoding="utf-8")
    done = cli("run", "a.csv", "--out", out, "--no-progress")

    assert done.code == 2, done.both
    no_traceback(done)
    assert done.err.startswith(f"error: --out {out}: "), done.err
    assert len(done.err.strip().splitlines()) == 1


def test_bad_input_paths_are_one_line_errors(cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    signups(tmp_path / "a.csv", 3)
    for arguments in (
        ["run", "empty"],
        ["run", "a.csv", "--config", "empty"],
        ["run", "a.csv", "--template", "empty"],
        ["check-job", "empty"],
        ["run", "a.csv", "--report", "empty"],
    ):
        done = cli(*arguments, "--no-progress") if arguments[0] == "run" else cli(*arguments)
        assert done.code == 2, (arguments, done.both)
        no_traceback(done)
        assert done.err.startswith("error: "), (arguments, done.err)


def test_a_run_with_rejects_says_what_to_do_next(cli, tmp_path: Path) -> None:
    """QA 10: a not-OK verdict left the user without the next command."""
    signups(tmp_path / "a.csv", 3)
    with (tmp_path / "a.csv").open("a", encoding="utf-8") as export:
        export.write(",Signed Up,2021-03-06T09:00:00Z,pro\n")  # no user: rejected
    done = cli("run", "a.csv", "--no-progress")
    run_dir = _latest(tmp_path)
    said = " ".join(done.out.split())

    assert done.code == 3, done.both
    assert "Next:" in done.out
    assert f"segment-importer rejects imports/local/a.csv --local {run_dir}" in said


def test_undelivered_messages_name_the_resume_command(cli, tmp_path: Path) -> None:
    """QA 10: messages not delivered (here a key the host refuses): resume sends exactly those."""
    from segment_importer_local.segment_endpoint import SegmentEndpoint

    signups(tmp_path / "a.csv", 3)
    with SegmentEndpoint("the-right-key") as endpoint:
        done = cli("run", "a.csv", "--write-key", "not-this-one", "--host", endpoint.url, "--no-progress")
    run_dir = _latest(tmp_path)
    said = " ".join(done.out.split())

    assert done.code == 1, done.both
    assert "Next:" in done.out
    assert f'segment-importer run --resume {run_dir} --write-key "$SEGMENT_WRITE_KEY"' in said
    assert "not-this-one" not in done.both  # never the key itself


def test_rejects_to_an_output_that_cannot_be_written_is_one_line(cli, tmp_path: Path) -> None:
    """QA 11: `rejects --output` under a file ended in a traceback."""
    signups(tmp_path / "a.csv", 3)
    (tmp_path / "afile").write_text("", encoding="utf-8")
    assert cli("run", "a.csv", "--no-progress").code == 0
    done = cli("rejects", "a.csv", "--output", "afile/rejects.ndjson")

    assert done.code == 2, done.both
    no_traceback(done)
    assert done.err == "error: --output afile/rejects.ndjson: cannot write it (Not a directory)\n"


def test_a_run_stopped_while_its_stack_is_made_is_one_status_shows_and_resume_continues(
    cli, tmp_path: Path
) -> None:
    """QA3 Q3: Ctrl-C in the first seconds named the run folder to resume, but `status` said
    "no local run found" (LATEST was written only once the stack was made). The signal goes
    as soon as the run's folder has its state: making the stack (the endpoint's process, the
    queues, tables and keys) takes far longer than this test's polling step."""
    signups(tmp_path / "big.csv", 200)
    process = start_cli(["run", "big.csv", "--no-progress"], tmp_path)
    err = _stopped_when(
        process, _polling(lambda: list((tmp_path / "out").glob("*/state.json")), process), signal.SIGINT
    )
    assert process.returncode == 130, err
    no_traceback_in(err)
    run_dir = next((tmp_path / "out").glob("*/state.json")).parent
    assert json.loads((run_dir / "state.json").read_text())["state"] == "stopped"

    status = cli("status")
    assert status.code == 0, status.both
    said = " ".join(status.out.split())
    assert "did not finish (interrupted (Ctrl-C))" in said
    assert f"Resume it with: segment-importer run --resume {run_dir}" in said

    resumed = cli("run", "--resume", str(run_dir), "--no-progress")
    assert resumed.code == 0, resumed.both
    assert "OK: sent 200 of 200 records" in resumed.out


@pytest.mark.parametrize(
    ("stop", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]
)
def test_a_stop_ends_the_wait_between_retries_instead_of_retrying_to_the_deadline(
    tmp_path: Path, stop: signal.Signals, code: int
) -> None:
    """QA3 Q9: SIGTERM or Ctrl-C while a batch waits to retry (a host that is down, or slow):
    the run kept posting and retrying, 106 s to minutes, before it stopped. The post threads
    are joined before the stop goes on; their wait now ends at the signal. Counted in posts:
    the host asks for a retry in 3 s each time (8 attempts), and after the signal none come."""
    signups(tmp_path / "events.csv", 20)
    with StandinHost(always(503, b"busy", **{"Retry-After": "3"})) as host:
        process = start_cli(
            ["run", "events.csv", "--write-key", "K", "--host", host.url, "--no-progress"], tmp_path
        )
        err = _stopped_when(process, _polling(lambda: host.posts >= 1, process), stop)
        posts = host.posts
    assert process.returncode == code, err
    no_traceback_in(err)
    assert posts == 1, err  # the attempt before the signal, and no retry after it
    assert "0 batches (0 messages) were delivered before the stop" in err
