"""QA2's open findings, through the real CLI: what `check-job` and `run` said, and what reached
the endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import no_traceback, write_csv

COLLIDING = "userId,event,timestamp,a,b"


def received(tmp_path: Path) -> list[dict]:
    """Every message the embedded endpoint accepted in the runs under tmp_path/out."""
    return [
        json.loads(line)
        for path in sorted((tmp_path / "out").glob("*/received.ndjson"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


@pytest.mark.parametrize(
    ("columns", "kept"),
    [({"a": "userId"}, "userId"), ({"a": "properties.b"}, "b")],
)
@pytest.mark.parametrize("spans", [False, True])
def test_a_rename_onto_a_column_that_keeps_its_name_refuses_the_file(
    cli, tmp_path: Path, columns: dict[str, str], kept: str, spans: bool
) -> None:
    """QA2 O3: run said OK and sent `userId: "AVAL"`: the file's own userId (or column b) was
    lost without a word. Refused at the header, before any row, in byte ranges too."""
    rows = [f"u{i},E,2021-03-04T05:06:07Z,AVAL{i},BVAL{i}" for i in range(2000 if spans else 1)]
    write_csv(tmp_path / "ov.csv", COLLIDING, rows)
    (tmp_path / "job.json").write_text(json.dumps({"columns": columns}), encoding="utf-8")
    split = ["--parameter", "ParallelSplitBytes=8192", "--verbose"] if spans else []

    ran = cli("run", "ov.csv", "--config", "job.json", "--no-progress", *split)

    assert ran.code == 1, ran.both
    said = " ".join(ran.both.split())
    target = columns["a"]
    assert f"columns: 'a' is mapped to '{target}', which '{kept}' (not mapped" in said, said
    assert said.count("columns: 'a' is mapped") == 1, said
    assert "file to split in byte ranges" not in said  # refused once, not by each span
    assert "NOT OK: sent 0 of 0 records" in said
    assert received(tmp_path) == []
    no_traceback(ran)


def test_mapping_the_kept_column_too_sends_both_values(cli, tmp_path: Path) -> None:
    write_csv(tmp_path / "ov.csv", COLLIDING, ["u1,E,2021-03-04T05:06:07Z,AVAL,BVAL"])
    job = {"columns": {"a": "userId", "userId": "properties.crm_id"}}
    (tmp_path / "job.json").write_text(json.dumps(job), encoding="utf-8")

    ran = cli("run", "ov.csv", "--config", "job.json", "--no-progress")

    assert ran.code == 0, ran.both
    [message] = received(tmp_path)
    assert message["userId"] == "AVAL"
    assert message["properties"] == {"crm_id": "u1", "b": "BVAL"}


@pytest.mark.parametrize(
    ("shaping", "says"),
    [
        ({"timestamp": "1970-01-01T00:00:00Z"}, "outside the plausible range 1990-01-01 to 2100-01-01"),
        ({"timestamp": 1614834367}, "an epoch number is not taken"),
        ({"originalTimestamp": "garbage"}, "'originalTimestamp' must be set to an ISO 8601 time"),
    ],
)
def test_check_job_and_run_refuse_a_set_time_segment_would_misfile(
    cli, tmp_path: Path, shaping, says
) -> None:
    """QA2 O1, O2: check-job passed these and run sent every message stamped 1970 (or kept an
    epoch number's `set` without a word)."""
    (tmp_path / "job.json").write_text(json.dumps({"set": shaping}), encoding="utf-8")
    write_csv(tmp_path / "a.csv", "userId,event,timestamp", ["u1,E,2021-03-04T05:06:07Z"])

    checked = cli("check-job", "job.json")
    ran = cli("run", "a.csv", "--config", "job.json", "--no-progress")

    for completed in (checked, ran):
        assert completed.code == 2, completed.both
        assert says in " ".join(completed.err.split())
        no_traceback(completed)
    assert not (tmp_path / "out").exists()


def test_run_warns_of_excel_day_numbers_a_widened_range_takes(cli, tmp_path: Path) -> None:
    """QA2 O11: sent as 1970-01-01T12:17:41.395Z without a word; O10: a decimal comma's day number
    was only "not an ISO 8601 time"."""
    write_csv(tmp_path / "y.csv", "userId,event,timestamp", ["u1,E,44261.3958", "u2,E,2021-03-04T05:06:07Z"])
    write_csv(tmp_path / "x.csv", "userId;event;timestamp", ["u1;E;44261,3958"])
    (tmp_path / "job.json").write_text(json.dumps({"timestampRange": ["1970-01-01", "2100-01-01"]}))

    ran = cli("run", "y.csv", "--config", "job.json", "--no-progress")
    comma = cli("run", "x.csv", "--no-progress")
    rejects = cli("rejects", "x.csv")

    assert ran.code == 0, ran.both
    assert "1 records have a time that looks like an Excel day number" in " ".join(ran.both.split())
    assert comma.code == 1, comma.both
    assert "invalid_timestamp" in rejects.out
    assert "looks like an Excel day number (44261.4 is 2021-03-06T09:29:57.000Z)" in rejects.out
    no_traceback(ran)


def test_run_names_a_sep_line_the_header_does_not_fit(cli, tmp_path: Path) -> None:
    """QA2 O7: NOT OK with every row rejected missing_timestamp, the record one column named
    "userId,event,timestamp", and nothing naming the `sep=` line."""
    write_csv(tmp_path / "c.csv", "sep=;\nuserId,event,timestamp", ["u1,E1,2021-03-04T05:06:07Z"])

    ran = cli("run", "c.csv", "--no-progress")

    said = " ".join(ran.both.split())
    assert ran.code == 1, ran.both
    assert (
        "the first line `sep=;` names a semicolon as the separator, but the header line is separated" in said
    )
    assert "missing_timestamp" not in said
    no_traceback(ran)


@pytest.mark.parametrize("first_line", ["sep=;;", "sep=; ", '"sep=;"'])
def test_a_sep_line_variant_sends_the_same_messages_in_byte_ranges(
    cli, tmp_path: Path, first_line: str
) -> None:
    """QA2 O8: read as the header. The sequential read and byte ranges agree on the new forms."""
    rows = [f"u{i};E;2021-03-04T05:{i % 60:02d}:07Z;{'x' * 40}" for i in range(1500)]
    write_csv(tmp_path / "s.csv", f"{first_line}\n\ufeffuserId;event;timestamp;note", rows)

    whole = cli("run", "s.csv", "--no-progress", "--parameter", "ParallelSplitBytes=0")
    ranged = cli("run", "s.csv", "--no-progress", "--parameter", "ParallelSplitBytes=8192", "--verbose")

    for completed in (whole, ranged):
        assert completed.code == 0, completed.both
        assert "OK: sent 1,500 of 1,500 records" in " ".join(completed.both.split())
    # A quoted line is never cut in byte ranges (the survey proves no line holds a quote).
    assert ("file split in byte ranges" in ranged.both) is ('"' not in first_line)
    runs = sorted((tmp_path / "out").glob("*/received.ndjson"))
    ids = [sorted(json.loads(line)["messageId"] for line in run.read_text().splitlines()) for run in runs]
    assert len(ids) == 2
    assert ids[0] == ids[1]
    assert {json.loads(line)["userId"] for line in runs[0].read_text().splitlines()} == {
        f"u{i}" for i in range(1500)
    }


def test_check_job_refuses_a_hash_key_parameter_outside_the_stacks_path(cli, tmp_path: Path) -> None:
    """QA2 O4: check-job passed it; run refused it (and the import failed after starting)."""
    job = {"hash": {"paths": ["traits.email"], "keyParameter": "/other/crm"}}
    (tmp_path / "hk2.json").write_text(json.dumps(job), encoding="utf-8")

    checked = cli("check-job", "hk2.json")
    deployed = cli("check-job", "hk2.json", "--parameter", "HashKeyParameterPath=/other/")

    assert checked.code == 2, checked.both
    assert (
        "hk2.json: hash.keyParameter '/other/crm' is not under the stack's HashKeyParameterPath "
        "'/segment-importer/hash-keys/'"
    ) in " ".join(checked.err.split())
    assert deployed.code == 0, deployed.both  # a stack deployed with that path takes it
    no_traceback(checked)


def test_a_nan_in_a_json_array_costs_only_its_record(cli, tmp_path: Path) -> None:
    """QA2 O9: record 1 was sent, then `file_unreadable` "lexical error: invalid char in json
    text", and the third record was never read (NOT OK)."""
    good = '{"userId":"g%d","event":"E","timestamp":"2021-03-04T05:06:07Z"}'
    bad = '{"userId":"n","event":"E","timestamp":"2021-03-04T05:06:07Z","v":NaN}'
    (tmp_path / "a1.json").write_text(f"[{good % 1},{bad},{good % 3}]", encoding="utf-8")

    ran = cli("run", "a1.json", "--no-progress")
    rejects = cli("rejects", "a1.json")

    said = " ".join(ran.both.split())
    assert ran.code == 3, ran.both
    assert "DONE WITH REJECTS: sent 2 of 3 records" in said
    assert {message["userId"] for message in received(tmp_path)} == {"g1", "g3"}
    assert '"number":2,"reason":"invalid_json"' in rejects.out
    assert "NaN and Infinity are not JSON" in rejects.out
    no_traceback(ran)
