"""Profiles are plug-ins: an ordered registry of `Profile(name, matches, to_spec)` drives
detection, and a job file's `source` choices come from it."""

from __future__ import annotations

from typing import Any

import pytest

from segment_importer.job import JobOptions, JobOptionsError, parse_job_document, source_choices
from segment_importer.mapping import profiles
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.mapping.profiles import PROFILES, Profile, detect_profile, profile_named

FILE_ID = "f" * 40


def _heap_to_spec(record: dict[str, Any]) -> profiles.SpecRecord:
    spec = {
        "type": "track",
        "event": record["heap_event"],
        "userId": record["identity"],
        "timestamp": record["time"],
    }
    return spec, f"heap:{record['heap_id']}"


HEAP = Profile("heap", lambda record: "heap_event" in record, _heap_to_spec)
HEAP_ROW = {"heap_event": "Viewed", "identity": "u1", "time": "2021-03-04T05:06:07Z", "heap_id": "h-1"}


def test_every_profile_has_a_unique_name_and_segment_is_the_fallback() -> None:
    names = [profile.name for profile in PROFILES]
    assert len(set(names)) == len(names)
    assert PROFILES[-1] is profiles.FALLBACK
    assert profiles.FALLBACK.name == "segment"
    assert detect_profile({"anything": 1}) is profiles.FALLBACK


def test_source_choices_come_from_the_registry() -> None:
    assert source_choices() == ("auto", "segment", "mixpanel", "amplitude")
    assert set(source_choices()) == {"auto", *(profile.name for profile in PROFILES)}
    with pytest.raises(JobOptionsError, match=r"'source' must be one of \['auto', 'segment'"):
        parse_job_document('{"source": "heap"}', "job.json")


def test_a_new_profile_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profiles, "PROFILES", (HEAP, *PROFILES))
    assert "heap" in source_choices()
    assert detect_profile(dict(HEAP_ROW)) is HEAP
    job = JobOptions().merged_with(parse_job_document('{"source": "heap"}', "job.json"))
    message = MessageMapper(job, FILE_ID, from_csv=False).map(1, dict(HEAP_ROW))
    assert (message["event"], message["userId"]) == ("Viewed", "u1")
    detected = MessageMapper(JobOptions(), FILE_ID, from_csv=False).map(1, dict(HEAP_ROW))
    assert detected["messageId"] == message["messageId"]  # both from the tagged source id


def test_profile_named_knows_every_choice() -> None:
    for name in source_choices()[1:]:
        assert profile_named(name).name == name
    with pytest.raises(KeyError):
        profile_named("heap")
