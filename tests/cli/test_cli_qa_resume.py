"""Black-box QA of `run --resume`: refusals carried forward, and never to another workspace."""

from __future__ import annotations

import json
from pathlib import Path

from segment_importer_local.segment_endpoint import FaultPlan, SegmentEndpoint
from tests.cli.conftest import no_traceback, signups

KEY = "the-workspace-key"


def _latest(tmp_path: Path) -> Path:
    return Path((tmp_path / "out" / "LATEST").read_text().strip())


def test_resume_keeps_what_segment_refused_as_refused(cli, tmp_path: Path) -> None:
    """QA 4: the batches of a run that Segment refused (400) were resumed as delivered: the
    verdict turned OK and the refused messages were counted as sent."""
    signups(tmp_path / "a.csv", 20)
    one_per_batch = ["--parameter", "BatchMaxMessages=1", "--no-progress"]
    with SegmentEndpoint(KEY, faults=FaultPlan.script([400, 400])) as endpoint:
        first = cli("run", "a.csv", "--write-key", KEY, "--host", endpoint.url, *one_per_batch)
        first_dir = _latest(tmp_path)
        resumed = cli("run", "--resume", str(first_dir), "--write-key", KEY, "--no-progress")
        received_again = endpoint.stats()["messages_accepted"]
    second_dir = _latest(tmp_path)
    refused = cli("rejects", "a.csv", "--local", str(second_dir))

    assert first.code == 3, first.both
    assert "DONE WITH REJECTS: sent 18 of 20 records" in first.out
    assert resumed.code == 3, resumed.both
    assert "DONE WITH REJECTS: sent 18 of 20 records" in resumed.out
    assert "; 2 rejected" in resumed.out
    assert "20 batches (20 messages) delivered before the stop were not sent again" in resumed.err
    assert received_again == 18  # nothing was sent again: the refused were not retried either
    lines = [json.loads(line) for line in refused.out.splitlines()]
    assert [line["reason"] for line in lines] == ["rejected_by_segment"] * 2  # carried over


def test_resume_with_another_write_key_is_refused_naming_hosts_and_fingerprints(cli, tmp_path: Path) -> None:
    """QA 5: a resume with another --write-key sent the rest to another workspace, silently."""
    signups(tmp_path / "a.csv", 3)
    with SegmentEndpoint(KEY, other_write_keys=["another-workspace-key"]) as endpoint:
        url = endpoint.url
        first = cli("run", "a.csv", "--write-key", KEY, "--host", url, "--no-progress")
        first_dir = _latest(tmp_path)
        other = cli(
            "run", "--resume", str(first_dir), "--write-key", "another-workspace-key", "--no-progress"
        )
        other_host = cli(
            "run", "--resume", str(first_dir), "--write-key", KEY, "--host", "http://127.0.0.1:9",
            "--no-progress",
        )  # fmt: skip
        allowed = cli(
            "run", "--resume", str(first_dir), "--write-key", "another-workspace-key",
            "--allow-other-destination", "--no-progress",
        )  # fmt: skip
    saved = (first_dir / "run.json").read_text()

    assert first.code == 0, first.both
    assert other.code == 2, other.both
    no_traceback(other)
    assert "the write key differs (fingerprints: the stopped run's " in other.err
    assert f"The stopped run sent to {url}" in other.err
    assert "--allow-other-destination" in other.err
    assert "another-workspace-key" not in other.both
    assert KEY not in other.both
    assert other_host.code == 2, other_host.both
    assert f"the stopped run sent to {url}, this would send to http://127.0.0.1:9" in other_host.err
    assert allowed.code == 0, allowed.both
    assert "resuming to another destination" in allowed.err
    assert KEY not in saved  # run.json keeps a salted digest, never the key
    assert "write_key_digest" in saved


def test_resume_with_the_same_key_goes_on(cli, tmp_path: Path) -> None:
    signups(tmp_path / "a.csv", 3)
    with SegmentEndpoint(KEY) as endpoint:
        first = cli("run", "a.csv", "--write-key", KEY, "--host", endpoint.url, "--no-progress")
        same = cli("run", "--resume", str(_latest(tmp_path)), "--write-key", KEY, "--no-progress")
    assert first.code == 0, first.both
    assert same.code == 0, same.both
