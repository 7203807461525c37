"""Segment warehouse tables (and other Snowflake unloads) as the vendor-export QA found them:
per-event tables whose property columns look like another table's, UPPER_CASE names,
snake_cased reserved traits, and the `tracks` table that repeats the per-event tables."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from segment_importer.batch.packing import BatchLimits
from segment_importer.job import JobOptions
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.split.splitter import CountingSink, split_stream
from segment_importer.track.rejects import RejectsWriter
from segment_importer.track.report import ImportReport
from segment_importer_local.inputs import find_inputs

from .test_mapping import TS, WAREHOUSE_ROW, map_one, segment_id

AMPLITUDE_ROW = {
    "uuid": "a0e6f3b2-5893-11ec-9c1c-0a1b2c3d4e5f",
    "event_time": "2021-12-09 00:45:29.430",
    "event_type": "Clicked Button",
    "user_id": "user-42",
    "device_id": "8e1f5c2b-6f5d",
    "$insert_id": "5f0adeff-6668",
    "event_properties": '{"button": "signup"}',
    "ip_address": "73.222.1.5",
}


def _upper(row: dict[str, Any]) -> dict[str, Any]:
    return {key.upper(): value for key, value in row.items()}


@pytest.mark.parametrize(
    "columns",
    [
        {"group_id": "team-42", "role": "admin"},
        {"previous_id": "anon-0", "product_id": "sku-1"},
        {"url": "https://ex.com/p/sku-1", "name": "Tee"},
        {"type": "page", "item_id": "it-1"},
        {"type": "screen", "item_id": "it-1"},
        {"type": "alias"},
    ],
)
def test_a_per_event_table_row_is_a_track_whatever_its_property_columns(columns: dict[str, str]) -> None:
    """QA 02: a per-event table has a column per property; `group_id` made the row a group
    call, `previous_id` an alias, `type` = page a page call, and the event was never sent."""
    message = map_one({**WAREHOUSE_ROW, **columns}, from_csv=True)
    assert (message["type"], message["event"]) == ("track", "Order Completed")
    assert message["properties"] == {"revenue": 9.99, **columns}  # as the warehouse wrote them
    assert message["messageId"] == segment_id("ajs-wh-1", message)


def test_a_jobs_type_still_wins_over_a_per_event_tables_event() -> None:
    """The job's `type` (or the file's table name) is no column: it is never taken for an
    event's `type` property, and it still says the call type."""
    message = map_one(dict(WAREHOUSE_ROW), default_type="page")
    assert message["type"] == "page"
    assert "type" not in message["properties"]
    named = map_one(dict(WAREHOUSE_ROW), file_key="imports/pages.csv")
    assert (named["type"], "type" in named["properties"]) == ("page", False)


def test_a_snowflake_unload_with_upper_case_names_maps_as_the_lower_case_table() -> None:
    """QA 06 and 09: Snowflake folds names to upper case; EVENT_TEXT, CONTEXT_* and ID were
    sent as properties (the messageId not from ID), and Amplitude's rows all rejected."""
    row = {key: str(value) for key, value in WAREHOUSE_ROW.items()}
    row["context_ip"] = "8.8.8.8"
    assert map_one(_upper(row), from_csv=True) == map_one(row, from_csv=True)
    assert map_one(_upper(row), from_csv=True)["event"] == "Order Completed"
    upper = map_one(_upper(AMPLITUDE_ROW), from_csv=True)
    assert upper == map_one(AMPLITUDE_ROW, from_csv=True)
    assert (upper["event"], upper["properties"]["button"]) == ("Clicked Button", "signup")
    # JSON unloads (OBJECT_CONSTRUCT) too.
    assert map_one(_upper(WAREHOUSE_ROW)) == map_one(dict(WAREHOUSE_ROW))


def test_names_with_a_lower_case_letter_keep_every_name_of_their_record() -> None:
    message = map_one({"userId": "u1", "event": "E", "timestamp": TS, "PLAN": "pro", "SKU": "A-1"})
    assert message["properties"] == {"PLAN": "pro", "SKU": "A-1"}


def test_a_jobs_rename_of_an_upper_case_name_still_finds_it() -> None:
    row = {"EVENT_KIND": "Signed Up", "USER_ID": "u1", "TIMESTAMP": TS, "PLAN": "pro"}
    message = map_one(row, from_csv=True, columns={"EVENT_KIND": "event"})
    assert (message["event"], message["userId"], message["properties"]) == (
        "Signed Up",
        "u1",
        {"plan": "pro"},
    )


IDENTIFIES_ROW = {
    "id": "ajs-id-1",
    "received_at": "2021-01-31 00:00:07.300000 UTC",
    "user_id": "u-9",
    "email": "p@example.com",
    "first_name": "Pat",
    "last_name": "Doe",
    "created_at": "2020-12-01 10:00:00 UTC",
    "timestamp": "2021-01-31 00:00:07.290000 UTC",
}


def test_an_identifies_rows_snake_case_reserved_traits_are_segments_camel_case() -> None:
    """QA 15: the warehouse snake_cases traits; Segment's reserved `firstName`, `lastName`,
    `createdAt` (ISO 8601) are what destinations read."""
    message = map_one(dict(IDENTIFIES_ROW), from_csv=True)
    assert message["type"] == "identify"
    assert message["traits"] == {
        "email": "p@example.com",
        "firstName": "Pat",
        "lastName": "Doe",
        "createdAt": "2020-12-01T10:00:00.000Z",
    }
    assert message["timestamp"] == "2021-01-31T00:00:07.290Z"


def test_a_groups_row_gets_only_the_group_specs_reserved_traits() -> None:
    row = {**IDENTIFIES_ROW, "group_id": "g1", "name": "Initech"}
    del row["email"]
    message = map_one(row, from_csv=True)
    assert message["type"] == "group"
    assert message["traits"] == {
        "first_name": "Pat",  # not a reserved group trait: as written
        "last_name": "Doe",
        "createdAt": "2020-12-01T10:00:00.000Z",
        "name": "Initech",
    }


def test_a_track_rows_snake_case_columns_stay_properties_as_written() -> None:
    message = map_one({**WAREHOUSE_ROW, "first_name": "Pat", "created_at": "2020-12-01 10:00:00 UTC"})
    assert message["properties"] == {
        "revenue": 9.99,
        "first_name": "Pat",
        "created_at": "2020-12-01 10:00:00 UTC",
    }


def test_a_created_at_already_iso_8601_or_not_a_time_is_kept_as_written() -> None:
    for value in ("2020-01-02T03:04:05Z", "2020-01-02", "last spring"):
        message = map_one({**IDENTIFIES_ROW, "created_at": value}, from_csv=True)
        assert message["traits"]["createdAt"] == value


def _split(key: str, data: bytes) -> ImportReport:
    report = ImportReport(bucket="b", key=key, etag="e", size_bytes=len(data))
    split_stream(io.BytesIO(data), report, JobOptions(), BatchLimits(), CountingSink(), RejectsWriter())
    return report


@pytest.mark.parametrize(
    "key", ["imports/wh/tracks.csv", "imports/heap/all_events.csv", "imports/x/prod.TRACKS_0000_part_00"]
)
def test_a_tracks_tables_report_warns_that_its_rows_shadow_the_per_event_tables(key: str) -> None:
    """QA 17: `tracks` repeats each per-event table's row (same id) without its properties."""
    data = (
        b"id,received_at,event,event_text,user_id,timestamp\n"
        b"m1,2021-01-31 00:00:05,e,E,u1,2021-01-31T00:00:05Z\n"
    )
    warnings = _split(key, data).warnings
    assert [warning for warning in warnings if "no event properties" in warning]
    assert not [
        warning
        for warning in _split("imports/wh/video_played.csv", data).warnings
        if "no event properties" in warning
    ]


def test_a_local_run_sends_the_per_event_tables_before_tracks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA 17: by name `tracks.csv` came before `video_played.csv`, so the property-less row
    took the messageId and Segment dropped the one with the properties."""
    monkeypatch.chdir(tmp_path)
    names = ["add_to_cart.csv", "all_events.csv", "tracks.csv", "video_played.csv", "zoom.csv", "job.json"]
    for name in names:
        (tmp_path / "wh" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "wh" / name).write_text("{}" if name == "job.json" else "id\n1\n")
    order = [item.relative for item in find_inputs([tmp_path / "wh"])]
    assert order == [
        "wh/add_to_cart.csv",
        "wh/job.json",
        "wh/video_played.csv",
        "wh/zoom.csv",
        "wh/all_events.csv",
        "wh/tracks.csv",
    ]


def test_a_mapper_of_a_tracks_file_gives_its_row_the_per_event_rows_message_id() -> None:
    """Both rows keep one messageId (one event): the order of sending decides which Segment keeps."""
    tracks = MessageMapper(JobOptions(), None, from_csv=True, file_key="imports/wh/tracks.csv")
    event = MessageMapper(JobOptions(), None, from_csv=True, file_key="imports/wh/order_completed.csv")
    row = {key: str(value) for key, value in WAREHOUSE_ROW.items() if key != "revenue"}
    assert tracks.map(1, dict(row))["messageId"] == event.map(1, {**row, "revenue": "9.99"})["messageId"]
