"""Jobs that name their own workspace, from the command line: check-job, and a local run that
seeds each job-named write key (issue 18, several workspaces)."""

from __future__ import annotations

import json
from pathlib import Path

from segment_importer_local.template_config import StackTemplate

from .conftest import no_traceback, signups

JOB_KEYS = StackTemplate.load().parameter_defaults()["JobKeyParameterPath"]


def write_job(folder: Path, job: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.json"
    path.write_text(json.dumps(job), encoding="utf-8")
    return path


def test_check_job_lists_a_parameter_outside_the_path_and_a_host_not_allowed(cli, tmp_path: Path) -> None:
    write_job(tmp_path, {"writeKeyParameter": "/other-team/key", "host": "https://collector.example.com"})
    done = cli("check-job", "job.json")
    assert done.code == 2, done.both
    assert "2 problem(s) in the job file" in done.err
    assert f"'/other-team/key' is not under {JOB_KEYS}" in done.err
    assert "'https://collector.example.com' is not one the stack allows" in done.err
    no_traceback(done)


def test_check_job_takes_the_deployed_path(cli, tmp_path: Path) -> None:
    write_job(
        tmp_path, {"writeKeyParameter": "/team-a/segment/test", "host": "https://events.eu1.segmentapis.com"}
    )
    assert cli("check-job", "job.json").code == 2
    done = cli("check-job", "job.json", "--parameter", "JobKeyParameterPath=/team-a/segment/")
    assert done.code == 0, done.both
    assert json.loads(done.out)["writeKeyParameter"] == "/team-a/segment/test"


def test_a_local_run_seeds_the_keys_jobs_name(cli, tmp_path: Path) -> None:
    """Two folders, one with a job naming a test source's key: the embedded endpoint stands in
    for both sources, so both files are delivered (an unseeded key would be refused: 401)."""
    signups(tmp_path / "drops" / "production" / "signups.csv", 5)
    signups(tmp_path / "drops" / "trial" / "signups.csv", 4)
    write_job(
        tmp_path / "drops" / "trial", {"writeKeyParameter": JOB_KEYS + "test-source", "messageIdSalt": "t"}
    )
    done = cli("run", "drops", "--no-progress", "--report", "report.json")
    assert done.code == 0, done.both
    report = json.loads((tmp_path / "report.json").read_text())
    delivered = {item["key"]: item["ledger"]["messages_delivered"] for item in report["files"]}
    assert sorted(delivered.values()) == [4, 5], delivered


def test_a_local_run_refuses_a_job_host_it_would_not_send_to(cli, tmp_path: Path) -> None:
    signups(tmp_path / "drops" / "signups.csv")
    write_job(tmp_path / "drops", {"host": "https://events.eu1.segmentapis.com"})
    done = cli("run", "drops", "--no-progress")
    assert done.code == 2, done.both
    assert "this run sends to the embedded endpoint" in done.err
    no_traceback(done)


def test_a_run_to_segment_needs_the_key_of_each_job_named_parameter(cli, tmp_path: Path) -> None:
    signups(tmp_path / "drops" / "signups.csv")
    write_job(tmp_path / "drops", {"writeKeyParameter": JOB_KEYS + "prod"})
    done = cli("run", "drops", "--no-progress", "--write-key", "the-stack-key")
    assert done.code == 2, done.both
    assert f"--write-key-for {JOB_KEYS}prod=KEY" in done.err
    bad = cli("run", "drops", "--no-progress", "--write-key", "k", "--write-key-for", "a-bare-secret-key")
    assert bad.code == 2, bad.both
    assert "a-bare-secret-key" not in bad.both
    assert "--write-key-for expects NAME=KEY" in bad.err


def test_a_key_for_a_parameter_no_job_names_is_a_usage_error(cli, tmp_path: Path) -> None:
    """QA: a typo in --write-key-for went unnoticed (the job's own name then got no key)."""
    signups(tmp_path / "drops" / "signups.csv")
    write_job(tmp_path / "drops", {"writeKeyParameter": JOB_KEYS + "alpha"})
    done = cli("run", "drops", "--no-progress", "--write-key-for", f"{JOB_KEYS}alpah=THE-KEY-77")
    assert done.code == 2, done.both
    assert f"--write-key-for names '{JOB_KEYS}alpah', which no job file of this run names" in done.err
    assert "THE-KEY-77" not in done.both
    no_traceback(done)
