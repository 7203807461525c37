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


def _hubble_to_spec(record: dict[str, Any]) -> profiles.SpecRecord:
    spec = {
        "type": "track",
        "event": record["hubble_event"],
        "userId": record["identity"],
        "timestamp": record["time"],
    }
    return spec, f"hubble:{record['hubble_id']}"


# A made-up vendor: a plug-in the registry does not ship.
HUBBLE = Profile("hubble", lambda record: "hubble_event" in record, _hubble_to_spec)
HUBBLE_ROW = {"hubble_event": "Viewed", "identity": "u1", "time": "2021-03-04T05:06:07Z", "hubble_id": "h-1"}


def test_every_profile_has_a_unique_name_and_segment_is_the_fallback() -> None:
    names = [profile.name for profile in PROFILES]
    assert len(set(names)) == len(names)
    assert PROFILES[-1] is profiles.FALLBACK
    assert profiles.FALLBACK.name == "segment"
    assert detect_profile({"anything": 1}) is profiles.FALLBACK


def test_source_choices_come_from_the_registry() -> None:
    assert source_choices() == (
        "auto",
        "segment",
        "posthog",
        "mixpanel",
        "amplitude",
        "ga4",
        "snowplow",
        "heap",
    )
    assert set(source_choices()) == {"auto", *(profile.name for profile in PROFILES)}
    with pytest.raises(JobOptionsError, match=r"'source' must be one of \['auto', 'segment'"):
        parse_job_document('{"source": "hubble"}', "job.json")


def test_a_new_profile_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profiles, "PROFILES", (HUBBLE, *PROFILES))
    assert "hubble" in source_choices()
    assert detect_profile(dict(HUBBLE_ROW)) is HUBBLE
    job = JobOptions().merged_with(parse_job_document('{"source": "hubble"}', "job.json"))
    message = MessageMapper(job, FILE_ID, from_csv=False).map(1, dict(HUBBLE_ROW))
    assert (message["event"], message["userId"]) == ("Viewed", "u1")
    detected = MessageMapper(JobOptions(), FILE_ID, from_csv=False).map(1, dict(HUBBLE_ROW))
    assert detected["messageId"] == message["messageId"]  # both from the tagged source id


def test_profile_named_knows_every_choice() -> None:
    for name in source_choices()[1:]:
        assert profile_named(name).name == name
    with pytest.raises(KeyError):
        profile_named("hubble")


def test_amplitude_http_api_events_keep_revenue_ip_and_unknown_fields() -> None:
    """QA, Amplitude's HTTP API V2 example: price, quantity, revenue, productId, revenueType
    and ip vanished without a word. Revenue goes where Segment's Amplitude destinations read
    it; Export API `$revenue`-style properties take the same names; bookkeeping stays out."""
    from segment_importer.job import JobOptions
    from segment_importer.mapping.mapper import MessageMapper

    record = {
        "user_id": "203201202", "device_id": "C8F9E604", "event_type": "purchase", "time": 1396381378123,
        "event_properties": {"source": "notification", "$price": 1.5, "$quantity": 2},
        "price": 4.99, "quantity": 3, "revenue": -1.99, "productId": "sku-1", "revenueType": "Refund",
        "ip": "127.0.0.1", "idfv": "BCCE52E7", "event_id": 23, "api_key": "KEY", "custom_field": "kept",
    }  # fmt: skip
    message = MessageMapper(JobOptions(), None, from_csv=False).map(1, record)
    assert message["properties"] == {
        "source": "notification",
        "price": 1.5,
        "quantity": 2,
        "revenue": -1.99,
        "productId": "sku-1",
        "revenueType": "Refund",
        "custom_field": "kept",
    }  # fmt: skip  (the event's own $price/$quantity win over the top-level ones)
    assert message["context"]["ip"] == "127.0.0.1"
    assert message["context"]["device"]["id"] == "C8F9E604"  # device_id first; idfv when it is absent
    without_device = {key: value for key, value in record.items() if key != "device_id"}
    mapped = MessageMapper(JobOptions(), None, from_csv=False).map(1, without_device)
    assert mapped["context"]["device"]["id"] == "BCCE52E7"


@pytest.mark.parametrize(
    ("record", "profile"),
    [
        # mixpanel-utils CSV rows: an event's properties, or a profile's, as columns
        ({"event": "E", "time": "1602611311", "distinct_id": "u1", "$insert_id": "i-1"}, "mixpanel"),
        ({"event": "E", "time": "1602611311", "mp_lib": "web"}, "mixpanel"),
        (
            {"$distinct_id": "13793", "$email": "a@example.com", "$last_seen": "2021-04-08T18:58:24"},
            "mixpanel",
        ),
        # Fivetran's Mixpanel EVENT table
        ({"name": "plays", "time": "2020-08-01 10:16:46", "distinct_id": "u1", "insert_id": "i"}, "mixpanel"),
        ({"name": "plays", "time": "2020-08-01 10:16:46", "_fivetran_synced": "2020-08-07"}, "mixpanel"),
        # ... and rows of other shapes that only look alike stay where they were
        ({"event": "E", "time": "1602611311", "distinct_id": "u1", "plan": "pro"}, "segment"),
        ({"event": "E", "timestamp": "2021-03-04T05:06:07Z", "userId": "u1", "$insert_id": "i"}, "segment"),
        ({"$distinct_id": "u1", "userId": "u1"}, "segment"),
        ({"name": "Settings", "time": "2021-03-04", "distinct_id": "u1"}, "segment"),
        ({"name": "Home", "timestamp": "2021-03-04", "received_at": "2021-03-04", "id": "m1"}, "segment"),
        # PostHog: an EventsQuery export's `*`, a batch export's JSON text properties
        ({"event": "$pageview", "*": {"uuid": "u", "event": "$pageview", "timestamp": "t"}}, "posthog"),
        ({"*": {"distinct_id": "d", "event": "$pageview"}}, "posthog"),
        ({"uuid": "u", "event": "E", "distinct_id": "d", "properties": '{"$lib": "web"}'}, "posthog"),
        ({"event": "E", "distinct_id": "d", "time": 1, "properties": '{"$insert_id": "i"}'}, "mixpanel"),
        ({"event": "E", "properties": '{"plan": "pro"}'}, "segment"),
    ],
)
def test_export_forms_are_detected(record: dict[str, Any], profile: str) -> None:
    assert detect_profile(record).name == profile
