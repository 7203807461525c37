"""Job documents: the documented keys, errors that name the key, and where job files live."""

from __future__ import annotations

import json
from typing import Any

import pytest

from segment_importer.job import (
    CALL_TYPES,
    JobOptions,
    JobOptionsError,
    is_job_file,
    job_file_candidates,
    parse_job_document,
)

FULL_DOCUMENT = {
    "type": "identify",
    "event": "Imported",
    "source": "mixpanel",
    "columns": {"uid": "userId", "plan": "properties.plan", "secret": None},
    "integrations": {"All": False, "Vero": True, "Mixpanel": {"apiSecret": "x"}},
    "context": {"library": {"name": "importer"}},
    "requireTimestamp": False,
    "messageIdSalt": "workspace-2",
    "encoding": "cp1252",
}


def error_for(document: Any, origin: str = "s3://drops/imports/job.json") -> str:
    text = document if isinstance(document, str | bytes) else json.dumps(document)
    with pytest.raises(JobOptionsError) as caught:
        parse_job_document(text, origin)
    return str(caught.value)


def test_documented_keys() -> None:
    assert list(JobOptions().to_document()) == [
        "type",
        "event",
        "source",
        "columns",
        "integrations",
        "context",
        "requireTimestamp",
        "messageIdSalt",
        "encoding",
    ]


def test_accepts_every_documented_key() -> None:
    text = json.dumps(FULL_DOCUMENT)
    assert parse_job_document(text, "job.json") == FULL_DOCUMENT
    assert parse_job_document(text.encode(), "job.json") == FULL_DOCUMENT


def test_document_applies_to_options() -> None:
    options = JobOptions().merged_with(parse_job_document(json.dumps(FULL_DOCUMENT), "job.json"))
    assert options == JobOptions(
        default_type="identify",
        default_event="Imported",
        source="mixpanel",
        columns={"uid": "userId", "plan": "properties.plan", "secret": None},
        integrations={"All": False, "Vero": True, "Mixpanel": {"apiSecret": "x"}},
        context={"library": {"name": "importer"}},
        require_timestamp=False,
        message_id_salt="workspace-2",
        encoding="cp1252",
    )
    assert options.to_document() == FULL_DOCUMENT


def test_defaults() -> None:
    options = JobOptions()
    assert options.to_document() == {
        "type": "track",
        "event": None,
        "source": "auto",
        "columns": {},
        "integrations": None,
        "context": {},
        "requireTimestamp": True,
        "messageIdSalt": "",
        "encoding": "utf-8",
    }


def test_merge_keeps_keys_the_document_does_not_set() -> None:
    base = JobOptions(default_type="page", message_id_salt="s1")
    merged = base.merged_with({"event": "E"})
    assert (merged.default_type, merged.default_event, merged.message_id_salt) == ("page", "E", "s1")
    assert base.default_event is None  # frozen: the defaults are not changed


@pytest.mark.parametrize("text", ["", "{}", b"", b"{}", "  {}  "])
def test_empty_documents(text: str | bytes) -> None:
    assert parse_job_document(text, "job.json") == {}


@pytest.mark.parametrize(
    ("document", "accepted"),
    [({"type": call_type}, True) for call_type in CALL_TYPES]
    + [({"source": source}, True) for source in ("auto", "segment", "mixpanel", "amplitude")]
    + [
        ({"event": None}, True),
        ({"integrations": None}, True),
        ({"integrations": {}}, True),
        ({"columns": {}}, True),
        ({"columns": {"a": None}}, True),
        ({"context": {}}, True),
        ({"requireTimestamp": True}, True),
        ({"messageIdSalt": ""}, True),
    ],
)
def test_accepted_values(document: dict[str, Any], accepted: bool) -> None:
    assert parse_job_document(json.dumps(document), "job.json") == document


def test_unknown_keys_are_named() -> None:
    message = error_for({"type": "track", "eventName": "E", "writeKey": "k"})
    assert message.startswith("s3://drops/imports/job.json: ")
    assert "'eventName'" in message
    assert "'writeKey'" in message
    assert "'type'" not in message.split("allowed")[0]
    assert "allowed" in message


def test_keys_are_case_sensitive() -> None:
    assert "'Type'" in error_for({"Type": "track"})
    assert "'require_timestamp'" in error_for({"require_timestamp": False})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("type", "Track"),
        ("type", "batch"),
        ("type", None),
        ("type", ["track"]),
        ("event", ""),
        ("event", "   "),
        ("event", 5),
        ("source", "heap"),
        ("source", None),
        ("columns", ["userId"]),
        ("columns", None),
        ("columns", {"a": ""}),
        ("columns", {"a": 5}),
        ("columns", {"a": True}),
        ("columns", {"a": {"to": "userId"}}),
        ("integrations", ["Vero"]),
        ("integrations", "All"),
        ("integrations", True),
        ("context", None),
        ("context", []),
        ("context", "ip"),
        ("requireTimestamp", "false"),
        ("requireTimestamp", 0),
        ("requireTimestamp", None),
        ("messageIdSalt", 5),
        ("messageIdSalt", None),
    ],
)
def test_wrong_types_name_the_key(key: str, value: Any) -> None:
    message = error_for({key: value}, origin="DefaultJobOptions parameter")
    assert message.startswith(f"DefaultJobOptions parameter: {key!r} must be ")


def test_messages_say_what_is_expected() -> None:
    assert error_for({"type": "x"}, "j") == (
        "j: 'type' must be one of ['track', 'identify', 'page', 'screen', 'group', 'alias']"
    )
    assert error_for({"requireTimestamp": "no"}, "j") == "j: 'requireTimestamp' must be true or false"
    assert error_for({"event": ""}, "j") == "j: 'event' must be a non-empty string"


def test_errors_do_not_echo_values() -> None:
    message = error_for({"messageIdSalt": 123456789, "type": "track"})
    assert "123456789" not in message


@pytest.mark.parametrize(
    "text", ["{", "not json", '{"type": "track",}', "[1, 2]", '"track"', "null", "5", b"\xff\xfe"]
)
def test_not_a_json_object(text: str | bytes) -> None:
    with pytest.raises(JobOptionsError) as caught:
        parse_job_document(text, "imports/acme/job.json")
    assert str(caught.value).startswith("imports/acme/job.json: ")


def test_job_options_error_is_a_value_error() -> None:
    assert issubclass(JobOptionsError, ValueError)


# --- where job files are looked for ---------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "prefix", "expected"),
    [
        (
            "imports/a/b/file.csv",
            "imports/",
            ["imports/a/b/job.json", "imports/a/job.json", "imports/job.json"],
        ),
        (
            "imports/a/b/file.csv",
            "imports",
            ["imports/a/b/job.json", "imports/a/job.json", "imports/job.json"],
        ),
        ("imports/file.csv", "imports/", ["imports/job.json"]),
        (
            "data/imports/acme/2021/events.ndjson.gz",
            "data/imports/",
            ["data/imports/acme/2021/job.json", "data/imports/acme/job.json", "data/imports/job.json"],
        ),
        ("a/file.csv", "", ["a/job.json", "job.json"]),
        ("file.csv", "", ["job.json"]),
    ],
)
def test_job_file_candidates(key: str, prefix: str, expected: list[str]) -> None:
    assert job_file_candidates(key, prefix) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("imports/job.json", True),
        ("imports/a/b/job.json", True),
        ("job.json", True),
        ("imports/a/myjob.json", False),
        ("imports/a/job.json.gz", False),
        ("imports/a/Job.json", False),
        ("imports/job.json/events.csv", False),
        ("imports/a/job.jsonl", False),
        ("imports/a/", False),
    ],
)
def test_is_job_file(key: str, expected: bool) -> None:
    assert is_job_file(key) is expected


def test_an_unknown_encoding_is_refused_by_name() -> None:
    assert "'encoding'" in error_for({"encoding": "klingon-8"})
