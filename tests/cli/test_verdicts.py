"""Issue 12, verdicts that mean what they say: exit 0 only when every record was sent."""

from __future__ import annotations

import json
from pathlib import Path

from segment_importer_local.runner import RunOptions, run_import
from segment_importer_local.verdict import of_run
from tests.cli.conftest import no_traceback, signups, write_csv


def test_a_spreadsheet_with_every_row_rejected_is_not_ok(cli, tmp_path: Path) -> None:
    rows = [f"u{i}@example.com,Signed Up,2021-03-0{i + 1}T09:30:00Z,pro" for i in range(4)]
    write_csv(tmp_path / "spreadsheet.csv", "email,event,created_at,plan", rows)
    done = cli("run", "spreadsheet.csv", "--no-progress")

    assert done.code == 1, done.both
    assert "NOT OK: sent 0 of 4 records" in done.out
    assert "top reject reason missing_user (4): no column maps to userId or anonymousId" in done.out
    assert '"columns": {"email": "userId"}' in done.out
    no_traceback(done)


def test_every_record_sent_is_ok_and_some_rejected_is_exit_3(cli, tmp_path: Path) -> None:
    signups(tmp_path / "good.csv", 3)
    ok = cli("run", "good.csv", "--no-progress")
    write_csv(
        tmp_path / "mixed.csv", "userId,event,timestamp", ["u1,Played,2021-01-01T00:00:00Z", ",Played,2021"]
    )
    mixed = cli("run", "mixed.csv", "--no-progress")

    assert ok.code == 0, ok.both
    assert "OK: sent 3 of 3 records" in ok.out
    assert mixed.code == 3, mixed.both
    assert "DONE WITH REJECTS: sent 1 of 2 records" in mixed.out
    assert "1 rejected" in mixed.out


def test_a_time_in_another_format_names_its_column_then_timestamp_format_reads_it(
    cli, tmp_path: Path
) -> None:
    write_csv(tmp_path / "sheet.csv", "userId,event,created_at", ["u1,Signed Up,03/06/2021 09:30"])
    before = cli("run", "sheet.csv", "--no-progress")
    rejects = cli("rejects", "sheet.csv")
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"timestampFormat": "%m/%d/%Y %H:%M"}), encoding="utf-8")
    after = cli("run", "sheet.csv", "--config", "job.json", "--no-progress")

    assert before.code == 1, before.both
    (reject,) = [json.loads(line) for line in rejects.out.splitlines()]
    assert reject["reason"] == "missing_timestamp"
    assert "column 'created_at' looks like the event time but is not ISO 8601 or epoch" in reject["message"]
    assert "timestampFormat" in reject["message"]
    assert after.code == 0, after.both
    (received,) = [json.loads(line) for line in _latest_run(tmp_path).joinpath("received.ndjson").open()]
    assert received["timestamp"] == "2021-03-06T09:30:00.000Z"


def test_empty_inputs_are_not_ok(cli, tmp_path: Path) -> None:
    (tmp_path / "empty.ndjson").write_bytes(b"")
    write_csv(tmp_path / "header-only.csv", "userId,event,timestamp", [])
    for name in ("empty.ndjson", "header-only.csv"):
        done = cli("run", name, "--no-progress")

        assert done.code == 1, done.both
        assert "NOT OK: 0 records in the input" in done.out


def test_a_dry_run_says_what_it_would_send(cli, tmp_path: Path) -> None:
    signups(tmp_path / "signups.csv", 7)
    done = cli("run", "signups.csv", "--dry-run", "--no-progress")

    assert done.code == 0, done.both
    assert "OK (dry run, nothing sent): would send 7 of 7 records in 1 batch" in done.out
    assert "accepted 0 messages" not in done.both


def test_results_go_to_stdout_and_progress_to_stderr(cli, tmp_path: Path) -> None:
    signups(tmp_path / "signups.csv", 3)
    done = cli("run", "signups.csv", "--report", "report.json")

    assert done.code == 0, done.both
    assert "OK: sent 3 of 3 records" in done.out
    assert "split signups.csv" in done.err  # the progress bars
    assert "split signups.csv" not in done.out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["exit_code"] == 0
    assert report["verdict"].startswith("OK")


def _latest_run(tmp_path: Path) -> Path:
    return Path((tmp_path / "out" / "LATEST").read_text().strip())


def _archive(path: Path, members: dict[str, bytes]) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _events(count: int, first: int = 0) -> bytes:
    lines = [
        f'{{"type":"track","userId":"u{n}","event":"Played","timestamp":"2021-06-01T10:00:{n:02d}Z"}}'
        for n in range(first, first + count)
    ]
    return ("\n".join(lines) + "\n").encode()


def test_an_archive_of_good_members_is_ok_and_counts_its_members(cli, tmp_path: Path) -> None:
    """Found by black-box QA: a ZIP whose members were all delivered said 'every record was
    rejected' and NOT OK (its own report has no batches: its members are imports of their own)."""
    _archive(tmp_path / "export.zip", {"a.ndjson": _events(3), "b.ndjson": _events(2, first=3)})
    done = cli("run", "export.zip", "--no-progress")
    assert done.code == 0, done.both
    assert "every record was rejected" not in done.both
    assert "OK: sent 5 of 5 records" in done.out


def test_a_dry_run_of_an_archive_with_refused_members_is_not_ok(cli, tmp_path: Path) -> None:
    """Found by black-box QA: the dry run said OK (exit 0) where the real run failed the
    archive's refused members (a nested archive)."""
    nested = _archive(tmp_path / "inner.zip", {"c.ndjson": _events(1)}).read_bytes()
    _archive(tmp_path / "bundle.zip", {"a.ndjson": _events(2), "nested.zip": nested})
    dry = cli("run", "bundle.zip", "--dry-run", "--no-progress")
    real = cli("run", "bundle.zip", "--no-progress")
    assert real.code == 1, real.both
    assert dry.code == 1, dry.both
    assert "nested" in dry.out


def test_bad_parameters_and_output_paths_are_usage_errors_before_anything_is_sent(
    cli, tmp_path: Path
) -> None:
    """Found by black-box QA: these ran (and sent) before a traceback (exit 1)."""
    signups(tmp_path / "signups.csv", 2)
    (tmp_path / "a-file").write_text("x")
    for arguments in (
        ["--parameter", "BatchMaxMessages=1.5"],
        ["--parameter", "DefaultJobOptions={bad"],
        ["--parameter", 'DefaultJobOptions={"colums": {}}'],
        ["--report", str(tmp_path / "no-such-folder" / "r.json")],
        ["--out", str(tmp_path / "a-file")],
    ):
        done = cli("run", "signups.csv", "--no-progress", *arguments)
        assert done.code == 2, (arguments, done.both)
        assert "Traceback" not in done.both, arguments
        assert "error:" in done.err, arguments


def test_a_cp1252_spreadsheet_is_told_to_name_its_encoding(cli, tmp_path: Path) -> None:
    """Excel on Windows saves CSV in cp1252: every row with an umlaut is rejected (never
    garbled), and the verdict names the job file's option that reads it."""
    rows = [f"u{i},Signed Up,2021-03-0{i + 1}T09:30:00Z,Zürich" for i in range(3)]
    (tmp_path / "excel.csv").write_bytes(
        "\r\n".join(["userId,event,timestamp,city", *rows]).encode("cp1252") + b"\r\n"
    )
    done = cli("run", "excel.csv", "--no-progress")
    assert done.code == 1, done.both
    assert "top reject reason invalid_utf8 (3)" in done.out
    assert '"encoding": "cp1252"' in done.out
    no_traceback(done)


def test_nan_and_lone_surrogates_are_rejected_with_their_cause(cli, tmp_path: Path) -> None:
    head = '{"userId": "u1", "event": "Scored", "timestamp": "2021-03-04T05:06:07Z", "properties": '
    lines = [
        head + value + "}" for value in ('{"s": NaN}', '{"s": -Infinity}', '{"n": "\\ud800"}', '{"s": 1.5}')
    ]
    (tmp_path / "scores.ndjson").write_text("\n".join(lines) + "\n")
    done = cli("run", "scores.ndjson", "--no-progress")
    assert done.code == 3, done.both  # DONE WITH REJECTS: one sent, three rejected
    rejects = [
        json.loads(line)
        for path in sorted(tmp_path.glob("out/*/bucket/rejects/**/*.ndjson"))
        for line in path.read_text().splitlines()
    ]
    details = {reject["number"]: reject["message"] for reject in rejects}
    assert sorted(details) == [1, 2, 3]
    assert "NaN and Infinity are not JSON" in details[1]
    assert "write null" in details[1]
    assert "NaN and Infinity are not JSON" in details[2]
    assert "lone UTF-16 surrogate" in details[3]
    no_traceback(done)


def test_a_run_whose_messages_the_endpoint_dropped_is_not_ok(tmp_path: Path) -> None:
    """Segment answers 200 to an invalid message and drops it: a run the embedded endpoint
    reports drops for lost those messages, whatever the importer counted as sent."""
    export = signups(tmp_path / "signups.csv")
    result = run_import(RunOptions([export], out_dir=tmp_path / "out", show_progress=False))
    assert of_run(result, dry_run=False).code == 0  # every message was accepted
    assert result.endpoint_stats is not None
    result.endpoint_stats["dropped"] = {"invalid_field": 2}  # as the endpoint counts its drops
    verdict = of_run(result, dry_run=False)
    assert verdict.code == 1, verdict.headline
    assert verdict.headline.startswith("NOT OK")
    assert any("dropped 2 invalid messages (invalid_field 2)" in reason for reason in verdict.reasons)


def test_a_file_that_failed_is_named_in_the_verdicts_count(cli, tmp_path: Path) -> None:
    """QA F-low-4: with one file failed before a record was read, the verdict said `sent 1
    of 1 records`, as if the run had read everything it was given."""
    rows = "userId,event,timestamp\r\nu1,Signed Up,2021-03-06T09:30:00Z\r\n"
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "wide.csv").write_bytes(rows.encode("utf-16-le"))  # no BOM: refused
    signups(tmp_path / "exports" / "signups.csv", 1)
    done = cli("run", "exports", "--no-progress")
    assert done.code == 1, done.both
    assert "NOT OK: sent 1 of 1 records" in done.out
    assert "; 1 file failed (said above)" in done.out
    no_traceback(done)
