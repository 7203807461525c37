"""What the mapper takes from a line before mapping: the record inside an envelope, and
the job's column renames applied at once."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from segment_importer.job import JobOptions
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.track.reasons import Reject
from tests.expected_ids import shared_id

TS = "2021-03-04T05:06:07.123Z"
EVENT = {"type": "track", "userId": "u1", "event": "E", "timestamp": TS, "properties": {"plan": "pro"}}


def mapped(fields: dict[str, Any], *, from_csv: bool = False, **options: Any) -> dict[str, Any]:
    message = MessageMapper(JobOptions(**options), "f:1", from_csv=from_csv).map(1, fields)
    del message["messageId"], message["context"]
    return message


def test_renames_swap_two_columns_from_the_original_record() -> None:
    # Applied one after another, `a`->`b` overwrote `b` before `b`->`a` read it: every row lost
    # its user id and the whole file became rejects.
    row = {"userId": "E", "event": "u1", "timestamp": TS}
    message = mapped(row, from_csv=True, columns={"userId": "event", "event": "userId"})
    assert (message["userId"], message["event"]) == ("u1", "E")


def test_renames_chain_moves_each_value_once() -> None:
    row = {"uid": "u1", "userId": "legacy-1", "name": "E", "timestamp": TS}
    message = mapped(
        row, from_csv=True, columns={"uid": "userId", "userId": "properties.legacy_id", "name": "event"}
    )
    assert message == {
        "type": "track",
        "userId": "u1",
        "event": "E",
        "properties": {"legacy_id": "legacy-1"},
        "timestamp": TS,
    }


def test_a_rename_to_null_drops_the_column_and_order_of_the_job_keys_does_not_matter() -> None:
    columns = {"secret": None, "b": "properties.b", "a": "b"}
    row = {"a": "1", "b": "2", "secret": "x", "userId": "u1", "event": "E", "timestamp": TS}
    # properties.b is b's cell (a CSV integer), not a's, whatever order the job lists them in
    assert mapped(row, from_csv=True, columns=columns)["properties"] == {"b": 2}
    reordered = dict(reversed(list(columns.items())))
    assert mapped(row, from_csv=True, columns=reordered)["properties"] == {"b": 2}


def test_record_path_names_the_record_inside_each_line() -> None:
    line = {"EventPayload": {"event": EVENT, "source": "queue"}, "EventType": "Imported"}
    assert mapped(line, record_path="EventPayload.event") == EVENT


def test_a_line_without_the_record_path_is_rejected_with_a_reason() -> None:
    with pytest.raises(Reject) as caught:
        mapped({"data": EVENT}, record_path="payload")
    assert caught.value.reason == "invalid_field"
    assert "recordPath 'payload'" in caught.value.detail


@pytest.mark.parametrize(
    "line",
    [
        {"data": EVENT, "metadata": {"received": "2021-03-04"}},
        {"data": EVENT},
        {"EventPayload": EVENT, "EventType": "track", "EventId": "1"},
        {"stream": "events", "data": EVENT, "emitted_at": 1694709577929},  # Airbyte's record (QA)
        {"_airbyte_raw_id": "r1", "_airbyte_extracted_at": "2023-08-24", "_airbyte_data": EVENT},
    ],
)
def test_well_known_envelopes_are_opened_without_a_job(line: dict[str, Any]) -> None:
    assert mapped(line) == EVENT


def test_an_event_with_a_data_property_is_not_an_envelope() -> None:
    line = {**EVENT, "data": {"x": 1}}
    assert mapped(line)["properties"] == {"plan": "pro", "data": {"x": 1}}


def test_null_spellings_of_the_job_are_no_value_like_empty_cells() -> None:
    row = {"userId": "u1", "event": "E", "timestamp": TS, "plan": "NULL", "seats": "None", "note": "null-ish"}
    message = mapped(row, from_csv=True, null_values=["NULL", "None"])
    assert message["properties"] == {"note": "null-ish"}
    assert mapped(row, from_csv=True)["properties"] == {"plan": "NULL", "seats": "None", "note": "null-ish"}


def test_trimmed_cells_lose_their_surrounding_spaces_and_blank_ones_are_empty() -> None:
    row = {
        "userId": " u1 ",
        "event": " Signed Up",
        "timestamp": TS,
        "plan": " pro ",
        "seats": " 3",
        "x": "   ",
    }
    message = mapped(row, from_csv=True, trim_cells=True)
    assert (message["event"], message["properties"]) == ("Signed Up", {"plan": "pro", "seats": 3})
    assert mapped(row, from_csv=True)["properties"] == {"plan": " pro ", "seats": " 3", "x": "   "}


def test_a_column_mapped_to_message_id_is_taken_with_event_user_and_time() -> None:
    mapper = MessageMapper(JobOptions(columns={"order_id": "messageId"}), "f:1", from_csv=True)
    rows = [
        {"order_id": "o-1", "userId": "u1", "event": "Order Placed", "timestamp": TS},
        {"order_id": "o-1", "userId": "u1", "event": "Order Shipped", "timestamp": TS},
        {"order_id": "o-1", "userId": "u1", "event": "Order Placed", "timestamp": TS},
    ]
    ids = [mapper.map(number, row)["messageId"] for number, row in enumerate(rows, 1)]
    assert ids[0] != ids[1]  # distinct events never merge
    assert ids[0] == ids[2]  # the same event twice still dedupes
    assert mapper.id_collisions == 1
    assert MessageMapper(JobOptions(), "f:1", from_csv=False).id_collisions == 0


def _archived(event: str) -> dict[str, Any]:
    return {"type": "track", "messageId": "m-1", "userId": "u1", "event": event, "timestamp": TS}


def _posthog(event: str) -> dict[str, Any]:
    return {"uuid": "m-1", "event": event, "distinct_id": "u1", "timestamp": TS}


# An export id on either mapping path: Segment's (the fast path) and PostHog's (the general).
BOTH_PATHS = pytest.mark.parametrize(
    ("job", "record", "tag"),
    [(JobOptions(), _archived, "segment"), (JobOptions(source="posthog"), _posthog, "posthog")],
    ids=["segment-fast-path", "posthog-general-path"],
)


@BOTH_PATHS
def test_an_export_id_shared_by_distinct_events_keeps_them_apart_in_any_order_or_part(
    job: JobOptions, record: Any, tag: str
) -> None:
    mapper = MessageMapper(job, None, from_csv=False)
    messages = [mapper.map(n, record(event)) for n, event in enumerate(["A", "B", "A", "B", "C"], 1)]
    ids = [message["messageId"] for message in messages]
    assert ids == [shared_id(f"{tag}:m-1", message, job.message_id_salt) for message in messages]
    assert (ids[0] == ids[2], ids[1] == ids[3]) == (True, True)  # true repeats still dedupe
    assert len({ids[0], ids[1], ids[4]}) == 3
    assert mapper.id_collisions == 3  # B, B again, C
    # Another part of the file (a span, a continuation) that meets B first: B keeps B's id,
    # and never takes the id A has in the first part (they merged into one message before).
    other_part = MessageMapper(job, None, from_csv=False)
    assert [other_part.map(n, record(event))["messageId"] for n, event in enumerate("BA", 1)] == [
        ids[1],
        ids[0],
    ]


def test_an_export_id_on_a_record_with_an_unhashable_event_is_still_mapped() -> None:
    mapper = MessageMapper(JobOptions(source="posthog"), None, from_csv=False)
    for event in (["not", "text"], {"also": "not"}):
        record = {"uuid": "m-1", "event": event, "distinct_id": "u1", "timestamp": TS, "properties": {}}
        with contextlib.suppress(Reject):  # rejected as a bad event is fine; a TypeError is not
            mapper.map(1, record)


def test_a_created_at_column_of_identify_and_group_rows_is_the_created_at_trait() -> None:
    """QA, a CRM export of users and accounts: `created_at` became the call's time and was
    dropped, so destinations never saw when the account was created."""
    crm = {"userId": "u1", "email": "a@example.com", "created_at": "2020-01-02T03:04:05Z"}
    identify = mapped(crm, from_csv=True, default_type="identify")
    assert identify["traits"] == {"email": "a@example.com", "createdAt": "2020-01-02T03:04:05Z"}
    assert identify["timestamp"] == "2020-01-02T03:04:05.000Z"  # still the time, lacking another
    account = {"userId": "u1", "groupId": "g1", "Created At": "2020-01-02", "timestamp": TS}
    group = mapped(account, from_csv=True, default_type="group")
    assert (group["traits"], group["timestamp"]) == ({"createdAt": "2020-01-02"}, TS)
    users = MessageMapper(JobOptions(), None, from_csv=True, file_key="imports/users.csv")
    row = {"id": "u1", "created_at": "2020-01-02T03:04:05Z", "received_at": TS}
    assert users.map(1, row)["traits"] == {"createdAt": "2020-01-02T03:04:05Z"}
    track = mapped({"userId": "u1", "event": "E", "created_at": TS}, from_csv=True)
    assert ("properties" not in track, track["timestamp"]) == (True, TS)  # a track's time, as before


def test_a_jobs_event_makes_rows_of_a_per_event_warehouse_table_track_calls() -> None:
    """QA, RudderStack's `order_completed` table exported without its `event` column: with a
    job's `"event": "Order Completed"` every row became an identify (the table guess)."""
    row = {"id": "m1", "user_id": "u1", "timestamp": TS, "received_at": TS, "uuid_ts": TS, "total": "10"}
    job = JobOptions(default_event="Order Completed")
    for key in ("imports/order_completed.csv", "imports/rudder/order_completed_0000_part_00"):
        message = MessageMapper(job, None, from_csv=True, file_key=key).map(1, dict(row))
        assert (message["type"], message["event"], message["properties"]) == (
            "track",
            "Order Completed",
            {"total": 10},
        )
    identifies = MessageMapper(job, None, from_csv=True, file_key="imports/identifies.csv").map(1, dict(row))
    assert identifies["type"] == "identify"  # the table's name still says what its rows are


@pytest.mark.parametrize("from_csv", [False, True])
def test_an_integrations_setting_that_is_not_true_false_or_an_object_is_rejected(from_csv: bool) -> None:
    """QA2 O6: a column mapped to `integrations.All` holding text was sent; Segment takes any
    text as on, so the history went to every destination."""
    record = {"type": "track", "userId": "u1", "event": "E", "timestamp": TS}
    nested = {**record, "integrations": {"All": "hacked"}}
    fields = {**record, "integrations.All": "hacked"} if from_csv else nested
    with pytest.raises(Reject, match="true, false or an object"):
        MessageMapper(JobOptions(), "f:1", from_csv=from_csv).map(1, fields)
    fine = {**record, "integrations": {"All": False, "Mixpanel": {"apiSecret": "x"}}}
    assert (
        MessageMapper(JobOptions(), "f:1", from_csv=False).map(1, fine)["integrations"]
        == fine["integrations"]
    )


@BOTH_PATHS
def test_an_export_id_repeated_with_other_properties_is_counted_as_merged(
    job: JobOptions, record: Any, tag: str
) -> None:
    """Same id, event, user and time, other properties: one messageId (the tools' own dedupe
    merges them too), so Segment keeps the first: counted for the report's warning (QA3 Q1:
    it was silent). An exact repeat is not counted."""
    mapper = MessageMapper(job, None, from_csv=False)
    first, other, again = record("A"), {**record("A"), "properties": {"sku": "B"}}, record("A")
    first["properties"] = again["properties"] = {"sku": "A"}
    ids = [mapper.map(n, dict(r))["messageId"] for n, r in enumerate([first, other, again], 1)]
    assert ids[0] == ids[1] == ids[2]
    assert (mapper.id_merges, mapper.id_collisions) == (1, 0)


def _rudder_identify(**extra: Any) -> dict[str, Any]:
    """The shape of RudderStack's identify (rudderstack.com/docs/event-spec/standard-events/identify):
    the traits in `context.traits` only."""
    return {
        "type": "identify",
        "userId": "ana-1",
        "anonymousId": "a-1",
        "channel": "web",
        "rudderId": "8f2e1d3c",
        "request_ip": "203.0.113.7",
        "context": {"traits": {"email": "ana@example.com", "plan": "pro"}, "locale": "en-US"},
        "messageId": "rs-1",
        "originalTimestamp": TS,
        "sentAt": TS,
        "receivedAt": TS,
        "timestamp": TS,
        **extra,
    }


def test_a_rudderstack_identify_carries_its_context_traits_as_traits() -> None:
    """QA3 Q8: sent with no `traits`, the identify set no trait in Segment's profiles or in
    the destinations that read an identify's traits."""
    mapper = MessageMapper(JobOptions(), "f:1", from_csv=False)
    message = mapper.map(1, _rudder_identify())
    assert message["traits"] == {"email": "ana@example.com", "plan": "pro"}
    assert message["context"]["traits"] == message["traits"]
    assert message["traits"] is not message["context"]["traits"]  # a hash of traits.email alone
    assert message["context"]["ip"] == "203.0.113.7"
    own = mapper.map(2, _rudder_identify(traits={"plan": "free"}))
    assert own["traits"] == {"plan": "free"}  # an identify's own traits are left as they are
    track = mapper.map(3, {**_rudder_identify(), "type": "track", "event": "E"})
    assert "traits" not in track  # a track call's context.traits stays where it belongs


def test_a_message_without_timestamp_gets_segments_clock_corrected_time() -> None:
    """QA3 Q6: Segment stamps a message that has no `timestamp` with receivedAt - (sentAt -
    originalTimestamp). Here the device's clock was an hour behind; the device's own time was
    sent, and sentAt and receivedAt (dropped before sending) lost the correction."""
    line = {
        "type": "track",
        "event": "E",
        "userId": "u1",
        "messageId": "m-1",
        "originalTimestamp": "2021-03-04T05:06:07Z",
        "sentAt": "2021-03-04T05:06:17Z",
        "receivedAt": "2021-03-04T06:06:17Z",
    }
    mapper = MessageMapper(JobOptions(), "f:1", from_csv=False)
    assert mapper.map(1, dict(line))["timestamp"] == "2021-03-04T06:06:07.000Z"
    # Segment's own timestamp wins; without sentAt the device's time is all there is.
    stamped = mapper.map(2, {**line, "timestamp": "2021-03-04T06:06:08Z"})
    assert stamped["timestamp"] == "2021-03-04T06:06:08.000Z"
    no_sent = {key: value for key, value in line.items() if key != "sentAt"}
    assert mapper.map(3, no_sent)["timestamp"] == "2021-03-04T05:06:07.000Z"
    unreadable = mapper.map(4, {**line, "sentAt": "soon"})
    assert unreadable["timestamp"] == "2021-03-04T05:06:07.000Z"
    assert "sentAt" not in unreadable
    assert "receivedAt" not in unreadable
    row = {
        "id": "m-2",
        "user_id": "u1",
        "event": "e",
        "event_text": "E",
        "original_timestamp": "2021-03-04 05:06:07.000",
        "sent_at": "2021-03-04 05:06:17.000",
        "received_at": "2021-03-04 06:06:17.000",
        "uuid_ts": "2021-03-04 06:06:20.000",
    }
    warehouse = MessageMapper(JobOptions(), "f:1", from_csv=True).map(5, row)
    assert warehouse["timestamp"] == "2021-03-04T06:06:07.000Z"


@pytest.mark.parametrize(
    ("columns", "record", "kept"),
    [
        ({"a": "userId"}, {"a": "AVAL", "userId": "u1", "event": "E", "timestamp": TS}, "userId"),
        (
            {"a": "properties.b"},
            {"a": "AVAL", "b": "BVAL", "userId": "u1", "event": "E", "timestamp": TS},
            "b",
        ),
        (
            {"a": "b"},
            {"a": "AVAL", "properties.b": "BVAL", "userId": "u1", "event": "E", "timestamp": TS},
            "properties.b",
        ),
    ],
)
def test_a_rename_onto_a_field_the_record_fills_itself_is_rejected_naming_both(
    columns: dict[str, str], record: dict[str, Any], kept: str
) -> None:
    """QA2 O3: the renamed value replaced the record's own (`userId` u1 became AVAL) without a
    word. A JSON record has no header to refuse, so the record is rejected."""
    with pytest.raises(Reject) as caught:
        mapped(record, columns=columns)
    assert caught.value.reason == "invalid_field"
    assert f"'a' is mapped to {columns['a']!r}, which {kept!r} (not mapped" in caught.value.detail
    assert "AVAL" not in caught.value.detail  # names, never values
    assert "BVAL" not in caught.value.detail


def test_a_rename_onto_a_field_the_record_leaves_empty_is_sent() -> None:
    mapper = MessageMapper(JobOptions(columns={"a": "userId"}), "f:1", from_csv=False)
    assert mapper.map(1, {"a": "AVAL", "event": "E", "timestamp": TS})["userId"] == "AVAL"
    with pytest.raises(Reject):
        mapper.map(2, {"a": "AVAL", "userId": "u1", "event": "E", "timestamp": TS})
    assert (
        mapper.map(3, {"a": "AVAL", "event": "E", "timestamp": TS})["userId"] == "AVAL"
    )  # cached, still fine
