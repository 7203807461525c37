"""Black-box QA of check-job: what it accepted and `run` then failed on, record by record."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from tests.cli.conftest import no_traceback, signups

MISTAKES = [  # the job, the key path named, and the suggestion
    ({"intergrations": {"All": False}}, "intergrations: not a job key", "did you mean 'integrations'?"),
    ({"timestampFormat": "%Q %Y"}, "timestampFormat: 'Q' is a bad directive in format '%Q %Y'", "%m/%d/%Y"),
    ({"timestampFormat": "%Y-%m-%d %"}, "timestampFormat: stray % in format '%Y-%m-%d %'", "%m/%d/%Y"),
    (
        {"columns": {"user": "userid"}},
        "columns.user: 'userid' is not a Segment field",
        "did you mean 'userId'?",
    ),
    ({"columns": {"plan": "Properties.plan"}}, "columns.plan: ", "did you mean 'properties.plan'?"),
    (  # QA F-high-1: `All` stayed true, the history went to every destination
        {"integrations": {"all": False, "Mixpanel": True}},
        "integrations.all: Segment's destination names are case-sensitive",
        "every destination gets the history; did you mean 'All'?",
    ),
    (
        {"integrations": {"All": False, "mixpanel": True}},
        "integrations.mixpanel: ",
        "did you mean 'Mixpanel'?",
    ),
    (  # QA2 F2, F6: a set, and a name with a space, left All true as well
        {"set": {"integrations.all": False}},
        "set.integrations.all: Segment's destination names",
        "did you mean 'All'?",
    ),
    (
        {"set": {"integrations": {"All": False, "mixpanel": True}}},
        "set.integrations.mixpanel: ",
        "'Mixpanel'?",
    ),
    ({"integrations": {" All": False}}, "integrations. All: ", "did you mean 'All'?"),
    (  # QA2 F7
        {"columns": {"a": "properties.x", "b": "properties.x.y"}},
        "columns: 'a' is mapped to 'properties.x' and 'b' into it ('properties.x.y')",
        "map them to fields side by side",
    ),
    (  # QA F-med-3: the first column's value was lost
        {"columns": {"email": "userId", "user": "userId"}},
        "columns: 'email', 'user' are all mapped to 'userId'",
        "map each to its own field",
    ),
    (  # a bare `b` is properties.b: one of the two cells was lost
        {"columns": {"b": "properties.b", "a": "b"}},
        "columns: 'a' is mapped to 'b', which is 'properties.b' as a property or trait, where 'b' is mapped",
        "map them to fields side by side",
    ),
]


@pytest.mark.parametrize(("job", "says", "suggests"), MISTAKES)
def test_check_job_and_run_refuse_the_same_mistake_with_a_suggestion(
    cli, tmp_path: Path, job, says, suggests
) -> None:
    """QA 3: check-job said nothing of these; run then rejected every record (missing_user,
    invalid_timestamp) or ignored the key."""
    (tmp_path / "job.json").write_text(json.dumps(job), encoding="utf-8")
    signups(tmp_path / "a.csv", 3, user_column="user")

    checked = cli("check-job", "job.json")
    ran = cli("run", "a.csv", "--config", "job.json", "--no-progress")

    assert checked.code == 2, checked.both
    assert f"job.json: {says}" in checked.err
    assert suggests in checked.err
    assert ran.code == 2, ran.both
    assert f"job.json: {says}" in ran.err
    assert suggests in ran.err
    no_traceback(ran)
    assert not (tmp_path / "out").exists()  # refused before anything was sent


def test_a_sound_job_file_is_still_accepted(cli, tmp_path: Path) -> None:
    job = {
        "columns": {"user": "userId", "when": "timestamp", "plan": "properties.plan"},
        "timestampFormat": "%Y-%m-%d",
        "integrations": {"All": False, "Mixpanel": True, "My Own Webhook": True},
    }
    (tmp_path / "job.json").write_text(json.dumps(job), encoding="utf-8")
    checked = cli("check-job", "job.json")
    assert checked.code == 0, checked.both


def test_a_job_hashing_with_a_key_parameter_runs_locally_with_its_key(cli, tmp_path: Path) -> None:
    """QA F-med-4: the documented hash.keyParameter failed a local run after three attempts
    ("internal error"): the local stack has none of the user's parameters."""
    name = "/segment-importer/hash-keys/crm"
    job = {"hash": {"paths": ["userId"], "keyParameter": name}}
    (tmp_path / "job.json").write_text(json.dumps(job), encoding="utf-8")
    signups(tmp_path / "a.csv", 3)

    refused = cli("run", "a.csv", "--config", "job.json", "--no-progress")
    assert refused.code == 2, refused.both
    assert f"--hash-key-for {name}=KEY" in refused.err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "job.json").write_text(
        json.dumps({"hash": {**job["hash"], "keyParameter": "/x/k"}})
    )
    signups(tmp_path / "other" / "b.csv", 1)
    outside = cli("run", "other", "--no-progress", "--hash-key-for", "/x/k=s")
    assert outside.code == 2, outside.both  # QA2 F8: it failed only once the import had started
    assert "'/x/k' is not under the stack's HashKeyParameterPath" in outside.err
    assert not (tmp_path / "out").exists()  # refused before anything was sent

    ran = cli("run", "a.csv", "--config", "job.json", "--no-progress", "--hash-key-for", f"{name}=s3cret")
    assert ran.code == 0, ran.both
    assert "s3cret" not in ran.both
    received = [
        json.loads(line) for line in next(tmp_path.glob("out/*/received.ndjson")).read_text().splitlines()
    ]
    digest = hmac.new(b"s3cret", b"user_1", hashlib.sha256).hexdigest()
    assert digest in {message["userId"] for message in received}
    no_traceback(ran)


def test_check_job_does_not_print_a_literal_hash_key(cli, tmp_path: Path) -> None:
    """QA2 O5: check-job printed the job's literal `hash.key` in clear."""
    job = {"hash": {"paths": ["traits.email"], "key": "LITERALKEY12345"}}
    (tmp_path / "job.json").write_text(json.dumps(job), encoding="utf-8")
    checked = cli("check-job", "job.json")
    assert checked.code == 0, checked.both
    assert "LITERALKEY12345" not in checked.both
    assert '"key": "(redacted)"' in checked.out
