"""Issue 12, files and folders as people have them; issue 11.7 (one base name in two folders),
11.10 (Segment's refusals in `rejects`), 11.11 (the installed template) and owner-only output."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

from segment_importer_local.segment_endpoint import FaultPlan, SegmentEndpoint
from tests.cli.conftest import no_traceback, signups, write_csv
from tests.conftest import WRITE_KEY


def _statuses(cli, tmp_path: Path) -> dict[str, dict]:
    done = cli("status", "--json")
    assert done.code == 0, done.both
    return {status["key"]: status for status in json.loads(done.out)}


def test_folders_recurse_keep_their_paths_and_the_nearest_job_file(cli, tmp_path: Path) -> None:
    """2019/events.csv and 2020/events.csv used to land on one key: one report overwrote the
    other and the failed import was hidden (exit 0, OK)."""
    drop = tmp_path / "exports"
    signups(drop / "2019" / "events.csv", 3)
    # All rows lack a user id: every record rejected, unless the job file nearest to it maps email.
    rows = [f"u{i}@example.com,Played,2021-01-01T00:00:0{i}Z" for i in range(2)]
    write_csv(drop / "2020" / "events.csv", "email,event,timestamp", rows)
    write_csv(drop / "2020" / "mapped" / "events.csv", "email,event,timestamp", rows)
    (drop / "2020" / "mapped" / "job.json").write_text(json.dumps({"columns": {"email": "userId"}}))

    done = cli("run", "exports", "--no-progress")
    statuses = _statuses(cli, tmp_path)

    assert done.code == 1, done.both  # the 2020 file sent nothing
    assert statuses["imports/local/exports/2019/events.csv"]["messages_delivered"] == 3
    assert statuses["imports/local/exports/2020/events.csv"]["rejected_by_reason"] == {"missing_user": 2}
    assert statuses["imports/local/exports/2020/mapped/events.csv"]["messages_delivered"] == 2
    assert "imports/local/exports/2020/mapped/job.json" not in statuses  # a job file, not an import
    assert "exports/2020/events.csv" in done.out


def test_config_and_a_folders_job_file_are_refused_unless_they_are_the_same(cli, tmp_path: Path) -> None:
    """QA: the folder's job.json silently overrode --config (nearest wins), which says "for every file"."""
    write_csv(tmp_path / "drop" / "events.csv", "email,event,timestamp", ["a@x.com,A,2021-01-01T00:00:00Z"])
    (tmp_path / "drop" / "job.json").write_text(json.dumps({"columns": {"email": "userId"}}))
    (tmp_path / "job.json").write_text(json.dumps({"columns": {"email": "traits.email"}}))

    both = cli("run", "drop", "--config", "job.json", "--no-progress")
    assert not (tmp_path / "out").exists()  # refused before anything ran
    same = cli("run", "drop", "--config", "drop/job.json", "--dry-run", "--no-progress")

    assert both.code == 2, both.both
    assert (
        "--config job.json and the job file(s) in the folders given, drop/job.json, would both apply"
        in both.err
    )
    no_traceback(both)
    assert same.code == 0, same.both


def test_a_file_given_alone_is_governed_by_the_job_file_beside_or_above_it(cli, tmp_path: Path) -> None:
    """QA: `run exports/tracks.csv` ignored exports/job.json (its integrations too: history went
    to every destination, exit 0); `run exports` applied it."""
    rows = [f"u{i}@example.com,Played,2021-01-01T00:00:0{i}Z" for i in range(2)]
    write_csv(tmp_path / "exports" / "tracks.csv", "email,event,timestamp", rows)
    write_csv(
        tmp_path / "exports" / "2020" / "more.csv",
        "email,event,timestamp",
        [r.replace("Played", "Won") for r in rows],
    )
    job = {"columns": {"email": "userId"}, "integrations": {"All": False, "Mixpanel": True}}
    (tmp_path / "exports" / "job.json").write_text(json.dumps(job))
    write_csv(tmp_path / "loose.csv", "email,event,timestamp", rows)  # no job file: the defaults

    done = cli("run", "exports/tracks.csv", "exports/2020/more.csv", "loose.csv", "--no-progress")
    statuses = _statuses(cli, tmp_path)

    assert done.code == 1, done.both  # loose.csv: every record lacks a user
    assert statuses["imports/local/exports/tracks.csv"]["messages_delivered"] == 2
    assert statuses["imports/local/exports/2020/more.csv"]["messages_delivered"] == 2
    assert statuses["imports/local/loose.csv"]["rejected_by_reason"] == {"missing_user": 2}
    assert "Job file exports/job.json governs the files under exports/" in done.err
    run_dir = Path((tmp_path / "out" / "LATEST").read_text().strip())
    messages = [json.loads(line) for line in (run_dir / "received.ndjson").read_text().splitlines()]
    assert len(messages) == 4
    assert all(message["integrations"] == {"All": False, "Mixpanel": True} for message in messages)
    (tmp_path / "other.json").write_text(json.dumps({"columns": {"email": "traits.email"}}))
    refused = cli("run", "exports/tracks.csv", "--config", "other.json", "--no-progress")
    assert refused.code == 2, refused.both  # the file's own job file and --config would both apply
    assert "would both apply" in refused.err


def test_two_files_of_one_name_given_directly_are_refused(cli, tmp_path: Path) -> None:
    signups(tmp_path / "a" / "events.csv")
    signups(tmp_path / "b" / "events.csv")
    done = cli("run", "a/events.csv", "b/events.csv", "--no-progress")

    assert done.code == 2, done.both
    assert "two inputs would land on one key (events.csv)" in done.err


def test_rejects_by_the_name_given_to_run_and_zero_rejects_apart_from_no_such_import(
    cli, tmp_path: Path
) -> None:
    write_csv(
        tmp_path / "mixed.csv", "userId,event,timestamp", ["u1,Played,2021-01-01T00:00:00Z", ",Played,x"]
    )
    signups(tmp_path / "clean.csv", 2)
    assert cli("run", "mixed.csv", "clean.csv", "--no-progress").code == 3

    mixed, clean, missing = (
        cli("rejects", "mixed.csv"),
        cli("rejects", "clean.csv"),
        cli("rejects", "nope.csv"),
    )

    assert mixed.code == 0, mixed.both
    assert [json.loads(line)["number"] for line in mixed.out.splitlines()] == [2]
    assert clean.code == 0, clean.both
    assert clean.out == ""
    assert "0 rejects for imports/local/clean.csv" in clean.err
    assert missing.code == 1, missing.both
    assert "no such import: 'nope.csv'" in missing.err
    no_traceback(missing)


def test_rejects_of_a_zip_are_its_members_rejects_each_counted(cli, tmp_path: Path) -> None:
    """QA: `rejects export.zip` said 0 rejects; they are under the members' keys (`zip!member`)."""
    with zipfile.ZipFile(tmp_path / "export.zip", "w") as archive:
        archive.writestr(
            "m1.csv", "userId,event,timestamp\nu1,A,2021-03-06T09:00:00Z\n,B,2021-03-06T09:01:00Z\n"
        )
        archive.writestr("m2.csv", "userId,event,timestamp\n,C,2021-03-06T09:00:00Z\n")
    assert cli("run", "export.zip", "--no-progress").code == 3

    whole, member = cli("rejects", "export.zip"), cli("rejects", "export.zip!m2.csv")

    assert whole.code == 0, whole.both
    assert sorted(json.loads(line)["record"]["event"] for line in whole.out.splitlines()) == ["B", "C"]
    assert "1 rejects for imports/local/export.zip!m1.csv" in whole.err
    assert "1 rejects for imports/local/export.zip!m2.csv" in whole.err
    assert "0 rejects" not in whole.err
    assert [json.loads(line)["record"]["event"] for line in member.out.splitlines()] == ["C"]


def test_rejects_lists_the_messages_segment_refused(cli, tmp_path: Path) -> None:
    """A 400 from Segment for a one-message batch: kept under .refused/ with "number": null."""
    signups(tmp_path / "one.csv", 1)
    with SegmentEndpoint(WRITE_KEY, faults=FaultPlan.script([400])) as endpoint:
        url = endpoint.url
        done = cli("run", "one.csv", "--write-key", WRITE_KEY, "--host", url, "--no-progress")
    listed = cli("rejects", "one.csv")

    assert done.code == 1, done.both  # nothing was sent
    assert "rejected_by_segment" in done.out
    (refused,) = [json.loads(line) for line in listed.out.splitlines()]
    assert refused["reason"] == "rejected_by_segment"
    assert refused["number"] is None


def test_output_is_for_the_owner_only_and_the_template_is_the_installed_one(cli, tmp_path: Path) -> None:
    """A template.yaml in the working folder is not read (it would choose the code that runs)."""
    (tmp_path / "template.yaml").write_text("Resources: {this is: [not the project's template\n")
    write_csv(
        tmp_path / "mixed.csv", "userId,event,timestamp", ["u1,Played,2021-01-01T00:00:00Z", ",Played,x"]
    )
    done = cli("run", "mixed.csv", "--no-progress")

    assert done.code == 3, done.both
    run_dir = Path((tmp_path / "out" / "LATEST").read_text().strip())
    written = [run_dir, *run_dir.rglob("*")]
    assert any(path.name == "received.ndjson" for path in written)
    assert any(path.name.endswith(".rejects.ndjson") for path in written)
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
