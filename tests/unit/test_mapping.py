"""MessageMapper over records shaped like real exports, and profile detection."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from segment_importer.job import JobOptions
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.mapping.message_ids import (
    IMPORTER_NAMESPACE,
    file_identity,
    message_id_for_position,
    message_id_for_source_id,
)
from segment_importer.mapping.profiles import detect_profile
from segment_importer.track.reasons import Reject
from tests.expected_ids import shared_id

FILE_ID = file_identity('"abc123"', 1000)  # "abc123:1000"
TS = "2021-03-04T05:06:07.123Z"


def mapper(
    *, from_csv: bool = False, file_id: str = FILE_ID, file_key: str = "", **options: Any
) -> MessageMapper:
    return MessageMapper(JobOptions(**options), file_id, from_csv=from_csv, file_key=file_key)


def map_one(fields: dict[str, Any], number: int = 1, **kwargs: Any) -> dict[str, Any]:
    return mapper(**kwargs).map(number, fields)


def position_id(number: int, salt: str = "", file_id: str = FILE_ID) -> str:
    return message_id_for_position(salt, file_id, number)


def source_id(original: str, salt: str = "") -> str:
    return message_id_for_source_id(salt, original)


def segment_id(message_id: str, message: dict[str, Any], salt: str = "") -> str:
    """What a Segment messageId becomes: tagged with its source, so tools never collide."""
    return shared_id(f"segment:{message_id}", message, salt)


def mixpanel_id(
    insert_id: str, distinct_id: str = "u1", time: int = 1614834367, event: str = "Signed Up"
) -> str:
    """Mixpanel dedupes on (event, distinct_id, time, $insert_id): so does the derived id,
    which holds the event, user and time already (`ids_tell_apart`)."""
    return source_id(f"mixpanel:{event}|{distinct_id}|{time}|{insert_id}")


def amplitude_id(insert_id: str, message: dict[str, Any], user_id: str = "", device_id: str = "") -> str:
    """Amplitude dedupes insert_id per user or device."""
    return shared_id(f"amplitude:{user_id}|{device_id}|{insert_id}", message)


# Every message names the importer as its library (Segment's `context.library`).
IMPORTER_LIBRARY = {"name": "segment-importer", "version": "0.1.0"}


def with_library(expected: dict[str, Any]) -> dict[str, Any]:
    """An expected message as the importer sends it: `context.library` names the importer."""
    return {**expected, "context": {**expected.get("context", {}), "library": IMPORTER_LIBRARY}}


def reason_of(fields: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(Reject) as caught:
        map_one(fields, **kwargs)
    return caught.value.reason


# --- message ids ---------------------------------------------------------------------------


def test_message_ids_are_pinned() -> None:
    # Changing the derivation would re-send every import as new events: pin it.
    assert str(IMPORTER_NAMESPACE) == "01bfd122-4ac8-5089-a8cf-4ee551c3c725"
    assert FILE_ID == "abc123:1000"
    assert position_id(1) == "44483ada-b516-53c9-a3bd-c556c822ec45"
    assert source_id("ajs-next-1a2b3c") == "138803bf-6ee1-5bca-b3bb-36e621a923fa"
    assert source_id("ajs-next-1a2b3c", salt="salt-1") == "eefe60ec-0102-58d5-b92a-b6f22f25f619"
    assert uuid.UUID(position_id(1)).version == 5


def test_message_ids_deterministic_per_file_and_number() -> None:
    record = {"type": "identify", "userId": "u1"}
    first = map_one(dict(record), number=7)["messageId"]
    again = mapper().map(7, dict(record))["messageId"]
    assert first == again == position_id(7)
    assert map_one(dict(record), number=8)["messageId"] == position_id(8) != first
    other_file = map_one(dict(record), number=7, file_id="def456:1000")["messageId"]
    assert other_file == position_id(7, file_id="def456:1000") != first
    # the same content in another record position gets another id
    ids = {mapper().map(n, dict(record))["messageId"] for n in range(1, 201)}
    assert len(ids) == 200


def test_message_id_salt_changes_every_id() -> None:
    positional = {"type": "identify", "userId": "u1"}
    sourced = {"type": "identify", "userId": "u1", "messageId": "ajs-1"}
    assert map_one(dict(positional), message_id_salt="w2")["messageId"] == position_id(1, salt="w2")
    assert map_one(dict(positional), message_id_salt="w2")["messageId"] != position_id(1)
    salted = map_one(dict(sourced), message_id_salt="w2")
    assert salted["messageId"] == segment_id("ajs-1", salted, salt="w2")
    assert salted["messageId"] != segment_id("ajs-1", salted)


# --- Segment spec messages -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {
                "type": "track",
                "userId": "u1",
                "event": "Order Completed",
                "properties": {"revenue": 9.99, "currency": "USD"},
                "context": {"ip": "1.2.3.4"},
                "timestamp": TS,
            },
            {
                "type": "track",
                "userId": "u1",
                "event": "Order Completed",
                "properties": {"revenue": 9.99, "currency": "USD"},
                "context": {"ip": "1.2.3.4"},
                "timestamp": TS,
            },
            id="track",
        ),
        pytest.param(
            {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com", "plan": "pro"}},
            {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com", "plan": "pro"}},
            id="identify-without-timestamp",
        ),
        pytest.param(
            {
                "type": "page",
                "anonymousId": "a1",
                "name": "Home",
                "category": "Docs",
                "properties": {"url": "https://example.com/"},
                "timestamp": "2021-03-04T07:06:07.123+02:00",
            },
            {
                "type": "page",
                "anonymousId": "a1",
                "name": "Home",
                "category": "Docs",
                "properties": {"url": "https://example.com/"},
                "timestamp": TS,
            },
            id="page",
        ),
        pytest.param(
            {"type": "screen", "userId": "u1", "name": "Settings", "timestamp": 1614834367123},
            {"type": "screen", "userId": "u1", "name": "Settings", "timestamp": TS},
            id="screen",
        ),
        pytest.param(
            {"type": "group", "userId": "u1", "groupId": "g1", "traits": {"name": "Acme"}, "timestamp": TS},
            {"type": "group", "userId": "u1", "groupId": "g1", "traits": {"name": "Acme"}, "timestamp": TS},
            id="group",
        ),
        pytest.param(
            {"type": "alias", "userId": "u2", "previousId": "a1", "timestamp": TS},
            {"type": "alias", "userId": "u2", "previousId": "a1", "timestamp": TS},
            id="alias",
        ),
        pytest.param(
            {"type": "Track", "userId": 42, "anonymousId": 7.0, "event": "E", "timestamp": TS},
            {"type": "track", "userId": "42", "anonymousId": "7", "event": "E", "timestamp": TS},
            id="type-case-and-numeric-ids",
        ),
        pytest.param(
            {"type": "track", "userId": "u1", "event": "E", "timestamp": TS, "traits": {"plan": "pro"}},
            {
                "type": "track",
                "userId": "u1",
                "event": "E",
                "context": {"traits": {"plan": "pro"}},
                "timestamp": TS,
            },
            id="track-traits-go-to-context",
        ),
        pytest.param(
            {"type": "track", "userId": "u1", "event": "E", "timestamp": TS, "plan": "pro", "seats": 3},
            {
                "type": "track",
                "userId": "u1",
                "event": "E",
                "properties": {"plan": "pro", "seats": 3},
                "timestamp": TS,
            },
            id="track-extras-become-properties",
        ),
        pytest.param(
            {"type": "identify", "userId": "u1", "email": "a@example.com", "properties": {"age": 3}},
            {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com", "age": 3}},
            id="identify-extras-become-traits",
        ),
    ],
)
def test_segment_spec_messages(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    message = map_one(fields, number=3)
    assert message == with_library({**expected, "messageId": position_id(3)})


def test_channel_is_kept() -> None:
    message = map_one({"type": "identify", "userId": "u1", "channel": "server"})
    assert message["channel"] == "server"


def test_blank_ids_are_dropped() -> None:
    message = map_one({"type": "identify", "userId": "  ", "anonymousId": "a1"})
    assert "userId" not in message
    assert message["anonymousId"] == "a1"


def test_boolean_id_is_invalid() -> None:
    assert reason_of({"type": "identify", "userId": True}) == "invalid_field"
    assert reason_of({"type": "identify", "userId": {"id": 1}}) == "invalid_field"


# --- Segment S3 archive lines ---------------------------------------------------------------


ARCHIVE_LINE = {
    "anonymousId": "a1b2c3",
    "context": {
        "library": {"name": "analytics.js", "version": "next-1.53.0"},
        "page": {"path": "/pricing", "url": "https://example.com/pricing"},
        "userAgent": "Mozilla/5.0",
    },
    "event": "Plan Viewed",
    "integrations": {},
    "messageId": "ajs-next-1a2b3c",
    "originalTimestamp": "2021-03-04T05:06:06.900Z",
    "projectId": "pRoJeCt",
    "properties": {"plan": "pro"},
    "receivedAt": "2021-03-04T05:06:08.456Z",
    "sentAt": "2021-03-04T05:06:07.000Z",
    "timestamp": "2021-03-04T05:06:07.123Z",
    "type": "track",
    "userId": "u1",
    "version": 2,
    "writeKey": "wk-secret",
    "_metadata": {"bundled": ["Segment.io"], "unbundled": []},
    "channel": "client",
}


def test_segment_archive_line() -> None:
    message = map_one(copy.deepcopy(ARCHIVE_LINE), number=11)
    expected = {
        "type": "track",
        "userId": "u1",
        "anonymousId": "a1b2c3",
        "event": "Plan Viewed",
        "properties": {"plan": "pro"},
        # The archive's library is kept under its own key; `library` is the importer.
        "context": {
            **{key: value for key, value in ARCHIVE_LINE["context"].items() if key != "library"},
            "sourceLibrary": ARCHIVE_LINE["context"]["library"],
        },
        "timestamp": "2021-03-04T05:06:07.123Z",
        "channel": "client",
    }
    assert message == with_library({**expected, "messageId": segment_id("ajs-next-1a2b3c", expected)})
    assert message["messageId"] != ARCHIVE_LINE["messageId"]
    for archive_only in ("sentAt", "projectId", "receivedAt", "writeKey", "version", "_metadata"):
        assert archive_only not in message
        assert archive_only not in message["properties"]


def test_segment_archive_message_id_is_stable_across_positions_and_files() -> None:
    first = map_one(copy.deepcopy(ARCHIVE_LINE), number=1)["messageId"]
    moved = map_one(copy.deepcopy(ARCHIVE_LINE), number=99, file_id="other:5")["messageId"]
    assert first == moved == segment_id("ajs-next-1a2b3c", map_one(copy.deepcopy(ARCHIVE_LINE)))


def test_segment_archive_without_timestamp_gets_segments_clock_corrected_time() -> None:
    # receivedAt - (sentAt - originalTimestamp): 08.456 - (07.000 - 06.900), as Segment stamps it
    line = copy.deepcopy(ARCHIVE_LINE)
    del line["timestamp"]
    assert map_one(line)["timestamp"] == "2021-03-04T05:06:08.356Z"
    line = copy.deepcopy(ARCHIVE_LINE)
    line["timestamp"] = ""
    assert map_one(line)["timestamp"] == "2021-03-04T05:06:08.356Z"
    line = copy.deepcopy(ARCHIVE_LINE)
    del line["timestamp"], line["sentAt"]  # no sentAt: the device's time is all there is
    assert map_one(line)["timestamp"] == "2021-03-04T05:06:06.900Z"


def test_segment_archive_identify_line() -> None:
    line = {
        "type": "identify",
        "userId": "u1",
        "traits": {"email": "a@example.com"},
        "messageId": "ajs-id-1",
        "sentAt": "2021-03-04T05:06:07.000Z",
        "receivedAt": "2021-03-04T05:06:08.000Z",
        "originalTimestamp": "2021-03-04T05:06:06.000Z",
        "projectId": "p",
        "version": 2,
        "writeKey": "wk",
    }
    expected = {
        "type": "identify",
        "userId": "u1",
        "traits": {"email": "a@example.com"},
        "timestamp": "2021-03-04T05:06:07.000Z",  # 08.000 - (07.000 - 06.000): Segment's correction
    }
    assert map_one(line) == with_library({**expected, "messageId": segment_id("ajs-id-1", expected)})


# --- Segment warehouse rows ------------------------------------------------------------------


WAREHOUSE_ROW = {
    "id": "ajs-wh-1",
    "anonymous_id": "a1",
    "user_id": "u1",
    "event": "order_completed",
    "event_text": "Order Completed",
    "timestamp": "2021-03-04 05:06:07.123 UTC",
    "original_timestamp": "2021-03-04 05:06:06.000 UTC",
    "sent_at": "2021-03-04 05:06:07.000 UTC",
    "received_at": "2021-03-04 05:06:08.000 UTC",
    "uuid_ts": "2021-03-04 06:00:00.000 UTC",
    "loaded_at": "2021-03-04 06:00:01.000 UTC",
    "context_library_name": "analytics.js",
    "context_library_version": "4.1.0",
    "revenue": 9.99,
}


# The library the warehouse row was tracked with (its `context_library_*` columns).
WAREHOUSE_SOURCE_LIBRARY = {"name": "analytics.js", "version": "4.1.0"}


def with_source_library(message: dict[str, Any]) -> dict[str, Any]:
    message = with_library(message)
    message["context"]["sourceLibrary"] = WAREHOUSE_SOURCE_LIBRARY
    return message


def test_segment_warehouse_row() -> None:
    message = map_one(dict(WAREHOUSE_ROW), number=4)
    expected = {
        "type": "track",
        "userId": "u1",
        "anonymousId": "a1",
        "event": "Order Completed",
        "properties": {"revenue": 9.99},
        "timestamp": "2021-03-04T05:06:07.123Z",
    }
    assert message == with_source_library({**expected, "messageId": segment_id("ajs-wh-1", expected)})


def test_segment_warehouse_row_without_timestamp_gets_segments_clock_corrected_time() -> None:
    row = dict(WAREHOUSE_ROW)
    del row["timestamp"]
    assert map_one(row)["timestamp"] == "2021-03-04T05:06:07.000Z"  # 08.000 - (07.000 - 06.000)
    del row["sent_at"]
    assert map_one(row)["timestamp"] == "2021-03-04T05:06:06.000Z"  # the device's time


def test_segment_warehouse_row_from_csv() -> None:
    row = {key: str(value) for key, value in WAREHOUSE_ROW.items()}
    row["plan"] = "pro"
    row["seats"] = "5"
    message = map_one(row, number=2, from_csv=True)
    expected = {
        "type": "track",
        "userId": "u1",
        "anonymousId": "a1",
        "event": "Order Completed",
        "properties": {"revenue": 9.99, "plan": "pro", "seats": 5},
        "timestamp": "2021-03-04T05:06:07.123Z",
    }
    assert message == with_source_library({**expected, "messageId": segment_id("ajs-wh-1", expected)})


def test_segment_warehouse_identifies_row_with_job_type() -> None:
    row = {
        "id": "ajs-wh-2",
        "user_id": "u9",
        "email": "x@example.com",
        "received_at": "2021-03-04 05:06:08 UTC",
        "timestamp": "2021-03-04 05:06:07 UTC",
        "uuid_ts": "2021-03-04 06:00:00 UTC",
    }
    message = map_one(row, default_type="identify")
    expected = {
        "type": "identify",
        "userId": "u9",
        "traits": {"email": "x@example.com"},
        "timestamp": "2021-03-04T05:06:07.000Z",
    }
    assert message == with_library({**expected, "messageId": segment_id("ajs-wh-2", expected)})


# An identifies row as the warehouse loads one (traits email, name, plan as columns).
IDENTIFIES_ROW = {
    "id": "ajs-wh-3",
    "anonymous_id": "a1",
    "user_id": "u1",
    "context_library_name": "analytics.js",
    "context_library_version": "4.1.0",
    "email": "peter@example.com",
    "name": "Peter Gibbons",
    "plan": "premium",
    "received_at": "2015-02-23 22:28:55.387",
    "timestamp": "2015-02-23 22:28:55.111",
    "uuid_ts": "2015-02-23 22:29:10.001",
}


def test_a_warehouse_identifies_row_with_a_name_trait_is_an_identify() -> None:
    """`name` alone is a screens row; with an identify trait column (`email`) it is the
    user's name in an identifies row, and goes to traits with the others."""
    row = {key: str(value) for key, value in IDENTIFIES_ROW.items()}
    message = map_one(row, from_csv=True)
    expected = {
        "type": "identify",
        "userId": "u1",
        "anonymousId": "a1",
        "traits": {"email": "peter@example.com", "name": "Peter Gibbons", "plan": "premium"},
        "timestamp": "2015-02-23T22:28:55.111Z",
    }
    assert message == with_source_library({**expected, "messageId": segment_id("ajs-wh-3", expected)})
    screen = {key: value for key, value in row.items() if key != "email"}
    assert map_one(screen, from_csv=True)["type"] == "screen"


@pytest.mark.parametrize("call_type", ["identify", "screen", "page", "group"])
def test_a_jobs_type_wins_over_the_warehouse_columns_guess(call_type: str) -> None:
    row = {key: value for key, value in IDENTIFIES_ROW.items() if key != "email"}  # looks like a screen
    message = map_one({**row, "group_id": "g1"}, default_type=call_type)
    assert message["type"] == call_type
    # The default (`track`) is no choice: the columns still decide; so does a `type` column.
    assert map_one(row)["type"] == "screen"
    assert map_one({**row, "type": "page"}, default_type=call_type)["type"] == "page"


@pytest.mark.parametrize(
    ("key", "call_type"),
    [
        ("imports/identifies.csv", "identify"),
        ("imports/prod.identifies.csv.gz", "identify"),
        ("imports/wh/pages_0000_part_00", "page"),
        ("imports/export.zip!groups.ndjson", "group"),
        ("imports/Screens.csv", "screen"),
    ],
)
def test_a_warehouse_files_name_says_its_table(key: str, call_type: str) -> None:
    """A warehouse table exported to a file keeps its name: the rows of `identifies.csv`
    are identifies even when their columns look like a screen's (`name`, no `email`)."""
    row = {key: str(value) for key, value in IDENTIFIES_ROW.items() if key != "email"}
    row = {**row, "group_id": "g1"} if call_type == "group" else row
    assert map_one(row, from_csv=True, file_key=key)["type"] == call_type
    # A job's type still wins over the name; a name of no table, or of two, leaves the guess.
    assert map_one(row, from_csv=True, file_key=key, default_type="alias")["type"] == "alias"
    guess = "group" if call_type == "group" else "screen"
    for unnamed in ("imports/export.csv", "imports/pages_and_screens.csv", "imports/identifies.csv/x.csv"):
        assert map_one(row, from_csv=True, file_key=unnamed)["type"] == guess


def test_a_warehouse_name_does_not_type_rows_that_are_not_warehouse_rows() -> None:
    row = {"userId": "u1", "event": "Signed Up", "timestamp": TS}
    assert map_one(row, from_csv=True, file_key="imports/identifies.csv")["type"] == "track"


def test_a_users_table_row_is_an_identify_of_its_id_at_its_received_time() -> None:
    """Segment's `users` table holds each user's latest traits: `id` is the userId (a users
    row has no messageId), `received_at` when those traits arrived."""
    row = {
        "id": "u123",
        "email": "ana@example.com",
        "name": "Ana",
        "plan": "pro",
        "received_at": "2021-03-01 10:00:00",
        "uuid_ts": "2021-03-01 10:05:00",
    }
    message = map_one(row, from_csv=True, file_key="imports/users.csv")
    assert message["type"] == "identify"
    assert message["userId"] == "u123"
    assert message["traits"] == {"email": "ana@example.com", "name": "Ana", "plan": "pro"}
    assert message["timestamp"] == "2021-03-01T10:00:00.000Z"
    assert message["messageId"] != segment_id("u123", message)
    # Another table's `id` stays its messageId.
    identifies = map_one(
        {**row, "user_id": "u123", "id": "m1"}, from_csv=True, file_key="imports/identifies.csv"
    )
    assert identifies["messageId"] == segment_id("m1", identifies)


def test_a_warehouse_row_nests_its_context_columns_back() -> None:
    row = {
        **WAREHOUSE_ROW,
        "context_ip": "203.0.113.9",
        "context_user_agent": "Mozilla/5.0",
        "context_page_url": "https://example.com/a",
        "context_campaign_name": "spring",
        "context_device_ad_tracking_enabled": True,
        "context_traits_email": "x@example.com",
        "context_custom_field": "kept",
    }
    message = map_one(row)
    assert message["context"] == {
        "ip": "203.0.113.9",
        "userAgent": "Mozilla/5.0",
        "page": {"url": "https://example.com/a"},
        "campaign": {"name": "spring"},
        "device": {"adTrackingEnabled": True},
        "traits": {"email": "x@example.com"},
        "custom_field": "kept",
        "library": IMPORTER_LIBRARY,
        "sourceLibrary": WAREHOUSE_SOURCE_LIBRARY,
    }
    assert message["properties"] == {"revenue": 9.99}


def test_a_warehouse_rows_message_id_and_type_columns_are_event_properties() -> None:
    """In a warehouse event table `id` is the messageId; a `message_id` column is the
    event's own property, so two rows sharing one must not dedupe each other away."""
    columns = {"message_id": "msg_123", "type": "upgrade"}
    first = map_one({**WAREHOUSE_ROW, **columns}, number=1)
    second = map_one({**WAREHOUSE_ROW, "id": "ajs-wh-2", **columns}, number=2)
    assert first["messageId"] == segment_id("ajs-wh-1", first)
    assert second["messageId"] == segment_id("ajs-wh-2", second)
    assert first["type"] == "track"
    assert first["properties"] == {"revenue": 9.99, "message_id": "msg_123", "type": "upgrade"}
    # A call type in a `type` column is still the call type (a union of warehouse tables,
    # whose pages rows have no event: the union's `event` cells are NULL, so left out).
    page_row = {key: value for key, value in WAREHOUSE_ROW.items() if key not in ("event", "event_text")}
    assert map_one({**page_row, "type": "page", "name": "Home"})["type"] == "page"


def test_a_warehouse_row_without_received_at_is_still_one() -> None:
    row = {key: value for key, value in WAREHOUSE_ROW.items() if key not in ("received_at", "loaded_at")}
    message = map_one(row)
    assert message["messageId"] == segment_id("ajs-wh-1", message)
    assert "id" not in message["properties"]


def test_a_snake_case_export_that_is_not_a_warehouse_row_keeps_message_id() -> None:
    message = map_one({"user_id": "u1", "event": "E", "timestamp": 1_600_000_000, "message_id": "m-1"})
    assert message["messageId"] == segment_id("m-1", message)


# --- Mixpanel export lines -------------------------------------------------------------------


def mixpanel(**properties: Any) -> dict[str, Any]:
    return {"event": "Signed Up", "properties": {"time": 1614834367, **properties}}


def test_mixpanel_line() -> None:
    line = mixpanel(
        distinct_id="u1",
        **{"$insert_id": "ins-1", "$current_url": "https://example.com/join", "mp_lib": "web"},
        ip="1.2.3.4",
        plan="pro",
    )
    message = map_one(line, number=5)
    expected = {
        "type": "track",
        "userId": "u1",
        "event": "Signed Up",
        # Default properties go to context (where Segment's Mixpanel destination reads
        # `$current_url` and `mp_lib` from), the importer is the library.
        "properties": {"plan": "pro"},
        "context": {
            "ip": "1.2.3.4",
            "page": {"url": "https://example.com/join"},
            "sourceLibrary": {"name": "web"},
        },
        "timestamp": "2021-03-04T05:06:07.000Z",
    }
    assert message == with_library({**expected, "messageId": mixpanel_id("ins-1")})


def test_mixpanel_time_in_milliseconds() -> None:
    line = mixpanel(distinct_id="u1", **{"$insert_id": "ins-2"})
    line["properties"]["time"] = 1614834367123
    assert map_one(line)["timestamp"] == "2021-03-04T05:06:07.123Z"


def test_mixpanel_device_distinct_id() -> None:
    message = map_one(mixpanel(distinct_id="$device:d-123", **{"$insert_id": "ins-3"}))
    assert message["anonymousId"] == "d-123"
    assert "userId" not in message


def test_mixpanel_user_and_device_ids() -> None:
    line = mixpanel(distinct_id="u1", **{"$user_id": "u1", "$device_id": "d-1", "$insert_id": "ins-4"})
    message = map_one(line)
    assert (message["userId"], message["anonymousId"]) == ("u1", "d-1")
    assert message["properties"] == {}
    # $device_id wins over the one in a $device: distinct_id
    line = mixpanel(distinct_id="$device:d-9", **{"$device_id": "d-1", "$insert_id": "ins-5"})
    message = map_one(line)
    assert message["anonymousId"] == "d-1"
    assert "userId" not in message


def test_mixpanel_anonymous_event_before_id_merge_has_no_user_id() -> None:
    """Projects without ID merge send an anonymous event's device id as its distinct_id."""
    line = mixpanel(distinct_id="16b4a1c2", **{"$device_id": "16b4a1c2", "$insert_id": "x1"})
    message = map_one(line)
    assert message["anonymousId"] == "16b4a1c2"
    assert "userId" not in message
    identified = map_one(mixpanel(distinct_id="u7", **{"$device_id": "16b4a1c2", "$insert_id": "x2"}))
    assert (identified["userId"], identified["anonymousId"]) == ("u7", "16b4a1c2")


def test_mixpanel_numeric_distinct_id_becomes_text() -> None:
    assert map_one(mixpanel(distinct_id=12345))["userId"] == "12345"


def test_mixpanel_insert_id_gives_stable_message_id() -> None:
    one = map_one(mixpanel(distinct_id="u1", **{"$insert_id": "abc"}), number=1)
    two = map_one(mixpanel(distinct_id="u1", **{"$insert_id": "abc"}), number=2, file_id="x:1")
    assert one["messageId"] == two["messageId"] == mixpanel_id("abc")
    without = map_one(mixpanel(distinct_id="u1"), number=2)
    assert without["messageId"] == position_id(2)


def test_mixpanel_without_time_is_missing_timestamp() -> None:
    line = mixpanel(distinct_id="u1", **{"$insert_id": "ins-6"})
    del line["properties"]["time"]
    assert reason_of(line) == "missing_timestamp"


def test_mixpanel_forced_source() -> None:
    # With "source": "mixpanel" a line is read as Mixpanel even if detection would not.
    line = {"event": "E", "properties": {"distinct_id": "u1", "time": 1614834367, "x": 1}}
    message = map_one(line, source="mixpanel")
    assert message["properties"] == {"x": 1}
    assert message["userId"] == "u1"


# --- Amplitude export lines -----------------------------------------------------------------


AMPLITUDE_LINE = {
    "amplitude_id": 123456789,
    "app": 1234,
    "event_type": "Song Played",
    "event_time": "2021-03-04 05:06:07.123456",
    "client_event_time": "2021-03-04 05:06:06.000000",
    "server_upload_time": "2021-03-04 05:06:09.000000",
    "user_id": "u1",
    "device_id": "d-1",
    "event_properties": {"genre": "jazz"},
    "user_properties": {"plan": "pro"},
    "insert_id": "amp-ins-1",
    "uuid": "7f1e1c34-0000-0000-0000-000000000001",
    "ip_address": "1.2.3.4",
    "os_name": "ios",
    "os_version": "14.2",
    "device_model": "iPhone",
    "device_manufacturer": "Apple",
    "device_type": "Apple iPhone 12",
    "app_version": "1.2.3",
    "language": "English",
    "country": "United States",
    "city": "Austin",
    "region": "Texas",
    "library": "amplitude-ios/8.3.0",
    "platform": "iOS",
    "session_id": 1614834360000,
}


def test_amplitude_line() -> None:
    message = map_one(dict(AMPLITUDE_LINE), number=6)
    expected = {
        "type": "track",
        "userId": "u1",
        "anonymousId": "d-1",
        "event": "Song Played",
        # The session id where Segment's Amplitude destinations read it, and a property.
        "properties": {"genre": "jazz", "session_id": 1614834360000},
        "integrations": {
            "Amplitude": {"session_id": 1614834360000},
            "Actions Amplitude": {"session_id": 1614834360000},
        },
        "context": {
            "traits": {"plan": "pro"},
            "ip": "1.2.3.4",
            "os": {"name": "ios", "version": "14.2"},
            "device": {
                "id": "d-1",
                "model": "iPhone",
                "manufacturer": "Apple",
                "type": "iOS",
                "name": "Apple iPhone 12",
            },
            "app": {"version": "1.2.3"},
            "location": {"country": "United States", "city": "Austin", "region": "Texas"},
            "locale": "English",
            "sourceLibrary": {"name": "amplitude-ios/8.3.0"},
        },
        "timestamp": "2021-03-04T05:06:07.123Z",
    }
    assert message == with_library(
        {**expected, "messageId": amplitude_id("amp-ins-1", expected, user_id="u1", device_id="d-1")}
    )


def test_amplitude_export_version_name_is_the_app_version() -> None:
    line = {key: value for key, value in AMPLITUDE_LINE.items() if key != "app_version"}
    assert map_one({**line, "version_name": "5.1.0"})["context"]["app"] == {"version": "5.1.0"}


def test_amplitude_identify() -> None:
    line = {
        "event_type": "$identify",
        "user_id": "u1",
        "event_time": "2021-03-04 05:06:07.000000",
        "user_properties": {"plan": "pro", "seats": 3},
        "event_properties": {"ignored": True},
        "insert_id": "amp-ins-2",
    }
    expected = {
        "type": "identify",
        "userId": "u1",
        "traits": {"plan": "pro", "seats": 3},
        "timestamp": "2021-03-04T05:06:07.000Z",
    }
    assert map_one(line) == with_library(
        {**expected, "messageId": amplitude_id("amp-ins-2", expected, user_id="u1")}
    )


def test_amplitude_falls_back_to_uuid_and_client_time() -> None:
    line = {
        "event_type": "Opened",
        "device_id": "d-2",
        "event_time": None,
        "client_event_time": "2021-03-04 05:06:06.500000",
        "insert_id": None,
        "uuid": "uuid-2",
    }
    message = map_one(line)
    assert message["timestamp"] == "2021-03-04T05:06:06.500Z"
    assert message["messageId"] == shared_id("amplitude:uuid-2", message)
    assert message["anonymousId"] == "d-2"
    assert message["context"] == {"device": {"id": "d-2"}, "library": IMPORTER_LIBRARY}
    assert message["properties"] == {}
    assert "userId" not in message


def test_amplitude_numeric_user_id_is_text() -> None:
    line = {"event_type": "E", "user_id": 42, "event_time": "2021-03-04 05:06:07"}
    assert map_one(line)["userId"] == "42"


# --- CSV rows -------------------------------------------------------------------------------


def test_csv_dot_notation_and_coercion() -> None:
    row = {
        "userId": "007",
        "anonymousId": "123",
        "event": "Signed Up",
        "timestamp": "2021-03-04T05:06:07.123Z",
        "properties.plan": "pro",
        "properties.seats": "5",
        "properties.zip": "02134",
        "properties.active": "TRUE",
        "properties.trial": "false",
        "properties.price": "3.50",
        "properties.delta": "-0.25",
        "properties.big": "9007199254740993",
        "properties.tags": '["a", "b"]',
        "properties.address.city": "Berlin",
        "properties.address.code": "10115",
        "properties.note": "",
        "context.ip": "1.2.3.4",
        "context.app.build": "42",
    }
    message = map_one(row, number=9, from_csv=True)
    expected = {
        "type": "track",
        "userId": "007",
        "anonymousId": "123",
        "event": "Signed Up",
        "properties": {
            "plan": "pro",
            "seats": 5,
            "zip": "02134",
            "active": True,
            "trial": False,
            "price": 3.5,
            "delta": -0.25,
            "big": "9007199254740993",
            "tags": ["a", "b"],
            "address": {"city": "Berlin", "code": 10115},
            "note": "",
        },
        "context": {"ip": "1.2.3.4", "app": {"build": "42"}},  # context is not coerced
        "timestamp": TS,
    }
    assert message == with_library({**expected, "messageId": position_id(9)})


def test_csv_ids_and_names_stay_text() -> None:
    row = {
        "type": "group",
        "userId": "123",
        "groupId": "0042",
        "timestamp": "1614834367",
        "traits.employees": "250",
    }
    message = map_one(row, from_csv=True)
    assert message["userId"] == "123"
    assert message["groupId"] == "0042"
    assert message["traits"] == {"employees": 250}
    assert message["timestamp"] == "2021-03-04T05:06:07.000Z"
    row = {"type": "alias", "userId": "5", "previousId": "true", "timestamp": "1614834367"}
    assert map_one(row, from_csv=True)["previousId"] == "true"
    row = {"type": "page", "userId": "5", "name": "404", "category": "true", "timestamp": "1614834367"}
    page = map_one(row, from_csv=True)
    assert (page["name"], page["category"]) == ("404", "true")
    row = {"userId": "5", "event": "1", "timestamp": "1614834367"}
    assert map_one(row, from_csv=True)["event"] == "1"


def test_csv_properties_column_holding_json() -> None:
    row = {
        "userId": "u1",
        "event": "E",
        "timestamp": TS,
        "properties": '{"plan": "pro", "seats": 5, "nested": {"a": [1, 2]}}',
        "context": '{"ip": "1.2.3.4"}',
        "integrations": '{"All": false, "Vero": true}',
    }
    message = map_one(row, from_csv=True)
    assert message["properties"] == {"plan": "pro", "seats": 5, "nested": {"a": [1, 2]}}
    assert message["context"] == {"ip": "1.2.3.4", "library": IMPORTER_LIBRARY}
    assert message["integrations"] == {"All": False, "Vero": True}


def test_csv_json_text_keeps_its_types() -> None:
    row = {
        "userId": "u1",
        "event": "E",
        "timestamp": TS,
        "properties": '{"count": "5", "flag": "true", "zip": "02134"}',
        "properties_meta": "x",
    }
    message = map_one(row, from_csv=True)
    assert message["properties"] == {"count": "5", "flag": "true", "zip": "02134", "properties_meta": "x"}


def test_csv_json_cell_under_dotted_column_keeps_its_types() -> None:
    row = {"userId": "u1", "event": "E", "timestamp": TS, "properties.meta": '{"count": "5"}'}
    assert map_one(row, from_csv=True)["properties"] == {"meta": {"count": "5"}}


@pytest.mark.parametrize("blank", ["", "  "])
def test_csv_empty_object_cells_are_absent(blank: str) -> None:
    row = {
        "userId": "u1",
        "event": "E",
        "timestamp": TS,
        "properties": blank,
        "context": blank,
        "integrations": blank,
    }
    expected = {
        "type": "track",
        "userId": "u1",
        "event": "E",
        "timestamp": TS,
    }
    assert map_one(row, number=2, from_csv=True) == with_library({**expected, "messageId": position_id(2)})


def test_csv_properties_column_not_an_object_is_invalid() -> None:
    row = {"userId": "u1", "event": "E", "timestamp": TS, "properties": "[1, 2]"}
    assert reason_of(row, from_csv=True) == "invalid_field"
    row = {"userId": "u1", "event": "E", "timestamp": TS, "properties": "plan=pro"}
    assert reason_of(row, from_csv=True) == "invalid_field"


def test_csv_bare_columns_become_properties_on_track() -> None:
    row = {"userId": "u1", "event": "E", "timestamp": TS, "plan": "pro", "seats": "3", "zip": "007"}
    message = map_one(row, from_csv=True)
    assert message["properties"] == {"plan": "pro", "seats": 3, "zip": "007"}


def test_csv_bare_columns_become_traits_on_identify() -> None:
    row = {"type": "identify", "userId": "0099", "email": "a@example.com", "age": "42", "vip": "True"}
    message = map_one(row, number=4, from_csv=True)
    expected = {
        "type": "identify",
        "userId": "0099",
        "traits": {"email": "a@example.com", "age": 42, "vip": True},
    }
    assert message == with_library({**expected, "messageId": position_id(4)})


def test_csv_empty_id_and_timestamp_cells_are_absent() -> None:
    row = {"type": "identify", "userId": "", "anonymousId": "a1", "timestamp": ""}
    message = map_one(row, from_csv=True)
    assert message == with_library({"type": "identify", "anonymousId": "a1", "messageId": position_id(1)})
    row = {"userId": "u1", "event": "E", "timestamp": ""}
    assert reason_of(row, from_csv=True) == "missing_timestamp"


# --- job options ----------------------------------------------------------------------------


def test_default_type() -> None:
    message = map_one({"userId": "u1", "traits": {"a": 1}}, default_type="identify")
    assert message["type"] == "identify"
    assert message["traits"] == {"a": 1}
    # a record's own type wins
    record = {"type": "track", "userId": "u1", "event": "E", "timestamp": TS}
    assert map_one(record, default_type="identify")["type"] == "track"


def test_default_event() -> None:
    record = {"userId": "u1", "timestamp": TS}
    assert map_one(dict(record), default_event="Imported")["event"] == "Imported"
    assert map_one({**record, "event": "Mine"}, default_event="Imported")["event"] == "Mine"
    assert map_one({**record, "event": ""}, default_event="Imported")["event"] == "Imported"
    assert "event" not in map_one(dict(record))  # validation rejects it later


def test_default_event_only_for_track() -> None:
    message = map_one({"type": "identify", "userId": "u1"}, default_event="Imported")
    assert "event" not in message


def test_columns_rename_drop_and_nest() -> None:
    columns = {
        "uid": "userId",
        "what": "event",
        "when": "timestamp",
        "plan": "properties.plan",
        "city": "context.location.city",
        "secret": None,
    }
    row = {
        "uid": "42",
        "what": "Bought",
        "when": "2021-03-04 05:06:07",
        "plan": "pro",
        "city": "Berlin",
        "secret": "hunter2",
        "seats": "2",
    }
    message = map_one(row, number=3, from_csv=True, columns=columns)
    expected = {
        "type": "track",
        "userId": "42",
        "event": "Bought",
        "properties": {"plan": "pro", "seats": 2},
        "context": {"location": {"city": "Berlin"}},
        "timestamp": "2021-03-04T05:06:07.000Z",
    }
    assert message == with_library({**expected, "messageId": position_id(3)})
    assert "hunter2" not in repr(message)


def test_columns_on_json_records() -> None:
    columns = {"user": "userId", "name": "event", "plan": "properties.plan", "debug": None}
    record = {"user": 7, "name": "E", "timestamp": TS, "plan": "pro", "debug": {"x": 1}}
    message = map_one(record, columns=columns)
    expected = {
        "type": "track",
        "userId": "7",
        "event": "E",
        "properties": {"plan": "pro"},
        "timestamp": TS,
    }
    assert message == with_library({**expected, "messageId": position_id(1)})


def test_mapping_does_not_mutate_the_input_record() -> None:
    record = {
        "type": "track",
        "userId": "u1",
        "event": "E",
        "timestamp": TS,
        "properties": {"a": 1},
        "plan": "pro",
    }
    before = copy.deepcopy(record)
    message = map_one(record, columns={"plan": "properties.plan"})
    assert message["properties"] == {"a": 1, "plan": "pro"}
    assert record == before


def test_mapping_leaves_plain_input_records_alone() -> None:
    for record in (copy.deepcopy(ARCHIVE_LINE), dict(AMPLITUDE_LINE), mixpanel(distinct_id="u", ip="1")):
        before = copy.deepcopy(record)
        map_one(record)
        assert record == before


def test_integrations_replace_the_records() -> None:
    record = {
        "type": "track",
        "userId": "u1",
        "event": "E",
        "timestamp": TS,
        "integrations": {"Mixpanel": False},
    }
    job_integrations = {"All": False, "Vero": True}
    assert map_one(dict(record), integrations=job_integrations)["integrations"] == {
        "All": False,
        "Vero": True,
    }
    assert map_one(dict(record))["integrations"] == {"Mixpanel": False}


def test_context_defaults_deep_merged_record_wins() -> None:
    job_context = {
        "library": {"name": "segment-importer", "version": "1.0"},
        "app": {"name": "Shop"},
        "ip": "0.0.0.0",
    }
    snapshot = copy.deepcopy(job_context)
    record = {
        "type": "track",
        "userId": "u1",
        "event": "E",
        "timestamp": TS,
        "context": {"library": {"name": "analytics.js"}, "ip": "1.2.3.4", "locale": "de-DE"},
        "traits": {"plan": "pro"},
    }
    message = map_one(record, context=job_context)
    assert message["context"] == {
        # The recorded library (with the job's defaults under it) is kept as the source's.
        "library": IMPORTER_LIBRARY,
        "sourceLibrary": {"name": "analytics.js", "version": "1.0"},
        "app": {"name": "Shop"},
        "ip": "1.2.3.4",
        "locale": "de-DE",
        "traits": {"plan": "pro"},
    }
    assert job_context == snapshot
    # a record without context gets the defaults (a library the job names is the source's)
    bare = map_one({"type": "identify", "userId": "u1"}, context=job_context)
    assert bare["context"] == {
        **snapshot,
        "library": IMPORTER_LIBRARY,
        "sourceLibrary": snapshot["library"],
    }


def test_require_timestamp_false() -> None:
    record = {"type": "track", "userId": "u1", "event": "E"}
    message = map_one(record, require_timestamp=False)
    assert message == with_library(
        {"type": "track", "userId": "u1", "event": "E", "messageId": position_id(1)}
    )
    # a bad timestamp is still an error
    assert reason_of({**record, "timestamp": "soon"}, require_timestamp=False) == "invalid_timestamp"


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("call_type", ["event", "trak", "batch", "Identify ify", 5])
def test_unknown_type(call_type: Any) -> None:
    record = {"type": call_type, "userId": "u1", "event": "E", "timestamp": TS}
    with pytest.raises(Reject) as caught:
        map_one(record)
    assert caught.value.reason == "unknown_type"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("key", ["properties", "traits", "context", "integrations"])
@pytest.mark.parametrize("value", [[1, 2], "text", 5, True])
def test_object_fields_must_be_objects(key: str, value: Any) -> None:
    record = {"type": "track", "userId": "u1", "event": "E", "timestamp": TS, key: value}
    assert reason_of(record) == "invalid_field"


@pytest.mark.parametrize("call_type", ["track", "page", "screen"])
def test_missing_timestamp_on_timed_calls(call_type: str) -> None:
    record = {"type": call_type, "userId": "u1", "event": "E", "name": "N"}
    assert reason_of(record) == "missing_timestamp"
    assert reason_of({**record, "timestamp": None}) == "missing_timestamp"


@pytest.mark.parametrize(
    "record",
    [
        {"type": "identify", "userId": "u1"},
        {"type": "group", "userId": "u1", "groupId": "g1"},
        {"type": "alias", "userId": "u1", "previousId": "a1"},
    ],
)
def test_missing_timestamp_fine_on_untimed_calls(record: dict[str, Any]) -> None:
    message = map_one(record)
    assert "timestamp" not in message


@pytest.mark.parametrize("value", ["yesterday", "2021-02-30T00:00:00Z", True, [2021], {"t": 1}])
def test_invalid_timestamp(value: Any) -> None:
    record = {"type": "track", "userId": "u1", "event": "E", "timestamp": value}
    assert reason_of(record) == "invalid_timestamp"
    identify = {"type": "identify", "userId": "u1", "timestamp": value}
    assert reason_of(identify) == "invalid_timestamp"


def test_mapping_error_carries_reason_and_detail() -> None:
    with pytest.raises(Reject) as caught:
        map_one({"type": "track", "userId": "u1", "event": "E", "properties": [1]})
    assert caught.value.reason == "invalid_field"
    assert "properties" in caught.value.detail
    assert str(caught.value) == caught.value.detail


# --- profile detection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "profile"),
    [
        ({"event_type": "Song Played", "user_id": "u1"}, "amplitude"),
        ({"event_type": "$identify", "device_id": "d1"}, "amplitude"),
        ({"event_type": "x", "type": "track"}, "segment"),
        ({"event": "E", "properties": {"distinct_id": "u1"}}, "mixpanel"),
        ({"event": "E", "properties": {"$insert_id": "i"}}, "mixpanel"),
        ({"event": "E", "properties": {"time": 1}}, "mixpanel"),
        ({"event": "E", "properties": {"time": 1}, "type": "track"}, "segment"),
        ({"event": "E", "properties": {"time": 1}, "userId": "u1"}, "segment"),
        ({"event": "E", "properties": {"time": 1}, "anonymousId": "a1"}, "segment"),
        ({"event": "E", "properties": {"plan": "pro"}}, "segment"),
        ({"event": "E", "properties": "{}"}, "segment"),
        ({"properties": {"distinct_id": "u1"}}, "segment"),
        (ARCHIVE_LINE, "segment"),
        (WAREHOUSE_ROW, "segment"),
        ({"userId": "u1", "event": "E", "properties.plan": "pro"}, "segment"),
        ({}, "segment"),
    ],
)
def test_detect_profile(record: dict[str, Any], profile: str) -> None:
    assert detect_profile(record).name == profile


@pytest.mark.parametrize("timestamp", [{}, {"timestamp": TS}])
def test_a_record_with_traits_but_no_type_or_event_is_rejected_for_its_missing_type(
    timestamp: dict[str, str],
) -> None:
    """Read as a track call, it lacked an event (and often a time, as identifies do): the
    reject says what it most likely is, not that its time is missing."""
    with pytest.raises(Reject) as rejected:
        map_one({"userId": "u1", "traits": {"email": "ana@example.com"}, **timestamp})
    assert rejected.value.reason == "missing_event"
    assert '"type": "identify"' in rejected.value.detail
    message = map_one(
        {"userId": "u1", "traits": {"email": "ana@example.com"}, **timestamp}, default_type="identify"
    )
    assert message["type"] == "identify"
    assert (
        map_one({"userId": "u1", "traits": {"plan": "pro"}, "timestamp": TS}, default_event="Seen")["event"]
        == "Seen"
    )


def test_a_warehouse_aliases_row_is_an_alias() -> None:
    """QA: an aliases table row became an identify with traits.previousId."""
    row = {
        "id": "ajs-a1", "previous_id": "anon-1", "user_id": "u1", "received_at": "2021-03-04 05:06:08",
        "timestamp": "2021-03-04 05:06:07", "context_library_name": "analytics.js",
    }  # fmt: skip
    message = map_one(row, from_csv=True)
    assert (message["type"], message["previousId"], message["userId"]) == ("alias", "anon-1", "u1")
    assert "traits" not in message
