"""Mixpanel, Heap and PostHog shapes found by black-box QA on real vendor exports
(/tmp/qa-vendors findings 01, 03, 04, 08, 10, 11): each test pins one fix."""

from __future__ import annotations

from typing import Any

import pytest

from segment_importer.job import JobOptions
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.mapping.message_ids import file_identity, message_id_for_source_id
from segment_importer.mapping.shaping import LeftOut
from segment_importer.mapping.validation import check_fields
from segment_importer.track.reasons import Reject
from tests.expected_ids import shared_id

FILE_ID = file_identity('"abc123"', 1000)


def map_one(fields: dict[str, Any], *, from_csv: bool = False, **options: Any) -> dict[str, Any]:
    return MessageMapper(JobOptions(**options), FILE_ID, from_csv=from_csv).map(1, fields)


def without_library(message: dict[str, Any]) -> dict[str, Any]:
    context = {key: value for key, value in message["context"].items() if key != "library"}
    return {**message, "context": context}


# --- Mixpanel --------------------------------------------------------------------------------

# A US/Pacific project's raw export line (finding 11): `time` counts the project's wall clock
# (10:27:57 PDT is 17:27:57Z); `$mp_api_timestamp_ms` is Mixpanel's UTC ingestion time.
PACIFIC_LINE = {
    "event": "Signed Up",
    "properties": {
        "time": 1618741677,  # read as UTC: 2021-04-18T10:27:57Z; as PDT wall clock: 17:27:57Z
        "distinct_id": "user-1",
        "$insert_id": "a1b2c3d4e5f6a7b8",
        "$mp_api_timestamp_ms": 1618766878123,
    },
}


def test_mixpanel_time_is_read_in_the_jobs_timezone() -> None:
    local = map_one(PACIFIC_LINE, timezone="America/Los_Angeles")
    assert local["timestamp"] == "2021-04-18T17:27:57.000Z"
    # Without a timezone the number is the UTC moment, as before; the messageId does not
    # depend on the timezone (it holds the time as exported, what Mixpanel dedupes on).
    utc = map_one(PACIFIC_LINE)
    assert utc["timestamp"] == "2021-04-18T10:27:57.000Z"
    assert (
        local["messageId"]
        == utc["messageId"]
        == message_id_for_source_id("", "mixpanel:Signed Up|user-1|1618741677|a1b2c3d4e5f6a7b8")
    )


def test_mixpanel_millisecond_time_in_the_jobs_timezone() -> None:
    line = {"event": "Signed Up", "properties": {"time": 1618741677123, "distinct_id": "u1"}}
    assert map_one(line, timezone="Europe/Berlin")["timestamp"] == "2021-04-18T08:27:57.123Z"
    assert map_one(line)["timestamp"] == "2021-04-18T10:27:57.123Z"


def test_mixpanel_identify_anonymous_id_has_no_device_prefix() -> None:
    """`$anon_distinct_id` is `$device:<id>`; the device's own events carry `<id>`."""
    device = "18bd0a3d2f04d2-0c1f"
    anonymous = map_one(
        {"event": "Viewed", "properties": {"time": 1700000000, "distinct_id": f"$device:{device}"}}
    )
    identify = map_one(
        {
            "event": "$identify",
            "properties": {
                "time": 1700000100,
                "distinct_id": "user-77",
                "$anon_distinct_id": f"$device:{device}",
                "$identified_id": "user-77",
                "$insert_id": "cccc3333dddd4444",
            },
        }
    )
    assert anonymous["anonymousId"] == identify["anonymousId"] == device
    assert (identify["type"], identify["userId"]) == ("identify", "user-77")


def test_mixpanel_web_page_view_is_a_page_call() -> None:
    line = {
        "event": "$mp_web_page_view",
        "properties": {
            "time": 1700000000,
            "distinct_id": "$device:d-1",
            "$insert_id": "aaaa1111bbbb2222",
            "$current_url": "https://shop.example.com/p/1?utm_source=news",
            "current_page_title": "Product 1",
            "current_domain": "shop.example.com",
            "current_url_path": "/p/1",
            "current_url_search": "?utm_source=news",
            "$referrer": "https://google.com/",
            "utm_source": "news",
        },
    }
    message = without_library(map_one(line))
    page = {
        "url": "https://shop.example.com/p/1?utm_source=news",
        "title": "Product 1",
        "path": "/p/1",
        "search": "?utm_source=news",
        "referrer": "https://google.com/",
    }
    assert message == {
        "type": "page",
        "anonymousId": "d-1",
        "name": "Product 1",
        # Segment's page properties, and what the event had besides (never lost).
        "properties": {**page, "current_domain": "shop.example.com"},
        "context": {"page": page, "campaign": {"source": "news"}},
        "timestamp": "2023-11-14T22:13:20.000Z",
        "messageId": message_id_for_source_id(
            "", "mixpanel:$mp_web_page_view|$device:d-1|1700000000|aaaa1111bbbb2222"
        ),
    }


# --- Heap Connect ----------------------------------------------------------------------------

# A row of the `pageviews` table, and one of a per-event table: neither has a column naming
# the event, and both have the page's columns (finding 03).
HEAP_PAGEVIEW = {
    "event_id": "4011183218219201",
    "user_id": "7528914370143926012",
    "session_id": "5513268190512211",
    "time": "2021-01-31 00:00:05.423",
    "path": "/pricing",
    "title": "Pricing | Heap",
}
HEAP_CLICK = {**HEAP_PAGEVIEW, "event_id": "4011183218219999", "target_text": "Sign up"}


def map_csv(row: dict[str, Any], file_key: str = "", **options: Any) -> dict[str, Any]:
    mapper = MessageMapper(JobOptions(**options), FILE_ID, from_csv=True, file_key=file_key)
    return mapper.map(1, row)


@pytest.mark.parametrize(
    "file_key", ["pageviews.csv", "exports/main_production.pageviews.csv.gz", "pageviews_0000_part_00"]
)
def test_heap_pageviews_table_rows_are_page_calls(file_key: str) -> None:
    message = map_csv(HEAP_PAGEVIEW, file_key)
    assert (message["type"], message["name"]) == ("page", "Pricing | Heap")
    assert message["context"]["page"] == {"path": "/pricing", "title": "Pricing | Heap"}
    assert message["messageId"] == shared_id("heap:4011183218219201", message)


def test_heap_unnamed_rows_follow_the_jobs_type_and_event() -> None:
    assert map_csv(HEAP_PAGEVIEW, "export.csv", default_type="page")["type"] == "page"
    track = map_csv(HEAP_CLICK, "main_production_clicked_signup.csv", default_event="Clicked Signup")
    assert (track["type"], track["event"]) == ("track", "Clicked Signup")
    assert track["properties"]["target_text"] == "Sign up"
    # The columns do not tell a per-event table from pageviews: not guessed, but rejected
    # with the advice to set `event` (validation's missing_event).
    unnamed = map_csv(HEAP_CLICK, "main_production_clicked_signup.csv")
    assert unnamed["type"] == "track"
    assert "event" not in unnamed
    with pytest.raises(Reject) as rejected:
        check_fields(unnamed)
    assert rejected.value.reason == "missing_event"


def test_heap_anonymous_user_row_is_an_identify() -> None:
    """`identity` NULL: no cell in a CSV unload; the row is still the users table's."""
    row = {
        "user_id": "1234567890123456789",
        "joindate": "2021-01-21 10:00:00",
        "last_modified": "2021-01-22 10:00:00",
    }
    message = map_csv(row)
    assert without_library(message) == {
        "type": "identify",
        "anonymousId": "1234567890123456789",
        "traits": {"createdAt": "2021-01-21 10:00:00"},
        "context": {},
        "timestamp": "2021-01-22T10:00:00.000Z",
        "messageId": message["messageId"],
    }


# --- PostHog persons batch export ------------------------------------------------------------

PERSON_ROW = {
    "team_id": 2,
    "distinct_id": "user-123",
    "person_id": "018b7a2e-0000-0000-0000-000000000001",
    "properties": '{"email": "u@example.com", "$initial_referrer": "$direct", "$geoip_country_code": "US",'
    ' "$creator_event_uuid": "018b7a2e-1111-7000-8000-000000000001"}',
    "person_distinct_id_version": 0,
    "person_version": 3,
    "created_at": "2023-10-01 09:00:00.000000",
    "_inserted_at": "2023-10-27 12:35:02.000000",
    "is_deleted": 0,
}


def test_posthog_persons_row_is_an_identify_without_bookkeeping() -> None:
    message = without_library(map_one(PERSON_ROW))
    assert message == {
        "type": "identify",
        "userId": "user-123",
        # PostHog's "$direct" (no referrer) and the creating event's uuid are not traits; the
        # geo properties go to context, as an event's do; no storage column is a trait.
        "traits": {"email": "u@example.com"},
        "context": {"location": {"country": "US"}},
        "timestamp": "2023-10-27T12:35:02.000Z",
        "messageId": shared_id("posthog:person|018b7a2e-0000-0000-0000-000000000001|user-123|3|0", message),
    }


def test_posthog_persons_anonymous_distinct_id_is_the_anonymous_id() -> None:
    anonymous = map_one({**PERSON_ROW, "distinct_id": "018b7a2d-aaaa-7bbb-8ccc-ddddeeeeffff"})
    assert anonymous["anonymousId"] == "018b7a2d-aaaa-7bbb-8ccc-ddddeeeeffff"
    assert "userId" not in anonymous
    # A product's own uuid (v4) is a user's id.
    user = map_one({**PERSON_ROW, "distinct_id": "6f1c2a4e-9b3d-4c1e-8f2a-1b2c3d4e5f60"})
    assert user["userId"] == "6f1c2a4e-9b3d-4c1e-8f2a-1b2c3d4e5f60"


def test_posthog_deleted_person_is_left_out() -> None:
    with pytest.raises(LeftOut) as left_out:
        map_one({**PERSON_ROW, "is_deleted": 1})
    assert left_out.value.rule == "posthog_deleted_person"
