"""Vendor QA findings (real export shapes) pinned on the GA4, Snowplow and Amplitude profiles
through the real mapper; whole files are in tests/fixtures/vendors (test_vendor_recipes)."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest

from segment_importer.job import JobOptions
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.read.detect import plain_shape
from segment_importer.read.formats import FileFormatError, open_records


def _mapped(record: dict[str, Any], *, from_csv: bool = False) -> dict[str, Any]:
    return MessageMapper(JobOptions(), None, from_csv=from_csv).map(1, copy.deepcopy(record))


def _param(key: str, kind: str, value: Any) -> dict[str, Any]:
    return {"key": key, "value": {kind: value}}


GA4_EVENT = {
    "event_date": "20210131",
    "event_timestamp": "1612069512000000",
    "event_name": "view_promotion",
    "event_bundle_sequence_id": "-1234567890",
    "user_pseudo_id": "1026454.4271112504",
    "event_params": [
        _param("ga_session_id", "int_value", "1612069510"),
        _param("promotion_name", "string_value", "Summer banner"),
    ],
}


def test_ga4_events_of_one_batch_without_batch_fields_differ_by_their_params() -> None:
    """QA 14: GA4 stamps a batch's events with one event_timestamp; exports from before the
    batch fields tell two view_promotion events of one page load apart only by params."""
    other = copy.deepcopy(GA4_EVENT)
    other["event_params"][1] = _param("promotion_name", "string_value", "Free shipping")
    assert _mapped(GA4_EVENT)["messageId"] != _mapped(other)["messageId"]


def test_ga4_batch_fields_tell_events_apart_and_stay_out_of_properties() -> None:
    first = {
        **GA4_EVENT,
        "batch_page_id": "1612069509000",
        "batch_ordering_id": "3",
        "batch_event_index": "1",
    }
    second = {**first, "batch_event_index": "2"}
    assert _mapped(first)["messageId"] != _mapped(second)["messageId"]
    assert _mapped(first)["properties"] == {"ga_session_id": 1612069510, "promotion_name": "Summer banner"}


def test_ga4_message_id_is_the_same_for_int64_as_text_and_as_number() -> None:
    """NDJSON (`bq extract`) writes INT64 as text, Parquet as numbers: one event, one id."""
    as_number = copy.deepcopy(GA4_EVENT)
    as_number["event_params"][0] = _param("ga_session_id", "int_value", 1612069510)
    assert _mapped(GA4_EVENT)["messageId"] == _mapped(as_number)["messageId"]


def test_ga4_flattened_columns_are_properties_and_page_columns_context() -> None:
    """QA 16: a flattened query result's own columns were dropped; GA4's bookkeeping is not sent."""
    row = {
        "event_date": "20210131", "event_timestamp": "1612069599123456", "event_name": "add_to_cart",
        "user_pseudo_id": "1026454.4271112504", "ga_session_id": "1612069510", "country": "United States",
        "page_location": "https://shop.example/Apparel", "page_title": "Apparel", "stream_id": "2100450278",
    }  # fmt: skip
    message = _mapped(row, from_csv=True)
    assert message["properties"] == {"ga_session_id": 1612069510, "country": "United States"}
    assert message["context"]["page"] == {"url": "https://shop.example/Apparel", "title": "Apparel"}


SNOWPLOW_EVENT = {
    "event_id": "4b5bb319-523b-467b-849b-f2ec044f0396",
    "collector_tstamp": "2022-11-15 10:00:01.000",
    "derived_tstamp": "2022-11-15 10:00:00.500",
    "event": "unstruct",
    "event_name": "consent_preferences",
    "domain_userid": "7a1f9fdd",
    "load_tstamp": "2022-11-15 10:05:00.000",
}


@pytest.mark.parametrize(
    "cell",
    [
        '[{"basis_for_processing": "consent", "consent_version": "1.0"}]',  # dbt-snowplow-web's seeds
        '{"basis_for_processing": "consent", "consent_version": "1.0"}',
        '{"schema": "iglu:com.snowplowanalytics.snowplow/consent_preferences/jsonschema/1-0-0",'
        ' "data": {"basis_for_processing": "consent", "consent_version": "1.0"}}',
    ],
)
def test_snowplow_unstruct_event_data_is_properties_in_every_shape(cell: str) -> None:
    """QA 13: `[{...}]` in an unstruct_event_* cell was dropped without a word."""
    column = "unstruct_event_com_snowplowanalytics_snowplow_consent_preferences_1_0_0"
    message = _mapped({**SNOWPLOW_EVENT, column: cell}, from_csv=True)
    assert message["event"] == "consent_preferences"
    assert message["properties"] == {"basis_for_processing": "consent", "consent_version": "1.0"}


def test_snowplow_unstruct_cell_of_another_shape_is_kept_under_its_column() -> None:
    column = "unstruct_event_com_acme_thing_1"
    message = _mapped({**SNOWPLOW_EVENT, column: '[{"a": 1}, {"a": 2}]'}, from_csv=True)
    assert message["properties"] == {column: [{"a": 1}, {"a": 2}]}


def test_snowplow_columns_outside_the_atomic_event_are_properties() -> None:
    """QA 16: a query's own columns (dbt-snowplow-web's page_view_id) were dropped; the
    atomic columns the profile does not send and the loader's load_tstamp stay out."""
    message = _mapped({**SNOWPLOW_EVENT, "page_view_id": "pv-123", "v_collector": "ssc-2.8.2"}, from_csv=True)
    assert message["properties"] == {"page_view_id": "pv-123"}


AMPLITUDE_FIVETRAN_ROW = {
    "id": "242501284", "_fivetran_synced": "2022-07-28T15:40:07.467", "_insert_id": "ins-0001",
    "uuid": "f4d527be-fe98-11e8-a527-0205484b2e0a", "event_type": "watch", "event_type_id": "10839772",
    "project_name": "218028", "schema": "12", "event_time": "2025-03-01T19:42:58.123",
    "user_id": "dev@gmail.com", "device_id": "2ff5d160", "event_properties": '{"plan": "pro"}',
}  # fmt: skip


def test_amplitude_fivetran_bookkeeping_is_not_sent_and_insert_id_dedupes() -> None:
    """QA 12: Fivetran's row key, sync time, `_insert_id` (its `$insert_id`) and Amplitude's
    event-type/project numbers landed in properties; a re-landed event got a new messageId."""
    message = _mapped(AMPLITUDE_FIVETRAN_ROW, from_csv=True)
    assert message["properties"] == {"plan": "pro"}
    relanded = {**AMPLITUDE_FIVETRAN_ROW, "id": "999999", "uuid": "0e0e0e0e-fe98-11e8-a527-0205484b2e0a"}
    assert _mapped(relanded, from_csv=True)["messageId"] == message["messageId"]


def test_amplitude_id_outside_a_fivetran_row_is_data() -> None:
    row = {key: value for key, value in AMPLITUDE_FIVETRAN_ROW.items() if key != "_fivetran_synced"}
    assert _mapped(row, from_csv=True)["properties"] == {"plan": "pro", "id": "242501284"}


def test_amplitude_page_viewed_is_a_page_call() -> None:
    """QA 10: Browser SDK 2's page-view autocapture is a Segment page call."""
    record = {
        "event_type": "[Amplitude] Page Viewed", "device_id": "d-123",
        "event_time": "2024-05-01 10:00:00.123000",
        "event_properties": {
            "[Amplitude] Page Location": "https://ex.com/pricing?utm_source=x",
            "[Amplitude] Page URL": "https://ex.com/pricing", "[Amplitude] Page Path": "/pricing",
            "[Amplitude] Page Title": "Pricing", "[Amplitude] Page Domain": "ex.com",
        },
    }  # fmt: skip
    message = _mapped(record)
    assert (message["type"], message["name"]) == ("page", "Pricing")
    page = {
        "url": "https://ex.com/pricing?utm_source=x",
        "search": "?utm_source=x",
        "path": "/pricing",
        "title": "Pricing",
    }
    assert message["context"]["page"] == page
    assert message["properties"] == {**page, "[Amplitude] Page Domain": "ex.com"}


@pytest.mark.parametrize(
    "key", ["2023-10-27T12:00:00+00:00-2023-10-27T13:00:00+00:00.jsonl.br", "events.csv.BROTLI"]
)
def test_brotli_files_are_refused_not_read_as_text(key: str) -> None:
    """QA 07: PostHog's brotli batch export was read as CSV, every "row" invalid_utf8."""
    data = b"\x1b\x8a\x01\x00\xe4\xff\x00" * 20  # brotli has no magic bytes: the extension tells
    with pytest.raises(FileFormatError, match="brotli -d"):
        open_records(io.BytesIO(data), key)
    with pytest.raises(FileFormatError, match="brotli -d"):
        plain_shape(data, key)  # the splitter's look at the head refuses it too


def test_a_ga4_page_view_carries_segments_page_properties() -> None:
    """QA3 Q4: url, title, path and search in the page call's properties (Segment spec: page's
    reserved properties, where destinations read them), as the other vendors' page calls have."""
    row = {
        "event_name": "page_view",
        "event_timestamp": "1612069510766000",
        "user_pseudo_id": "1026454.4271112504",
        "event_params": [
            {"key": "page_location", "value": {"string_value": "https://shop.example.com/Apparel?ref=nav"}},
            {"key": "page_title", "value": {"string_value": "Apparel"}},
        ],
    }
    message = _mapped(row)
    assert message["type"] == "page"
    page = {
        "url": "https://shop.example.com/Apparel?ref=nav",
        "title": "Apparel",
        "path": "/Apparel",
        "search": "?ref=nav",
    }
    assert {name: message["properties"][name] for name in page} == page
    assert {name: message["context"]["page"][name] for name in page} == page


def test_amplitude_identify_operations_set_the_traits_they_set() -> None:
    """QA3 Q7: `user_properties: {"$set": {...}}` (the Identify API's shape) was sent as a
    trait named `$set`. `$setOnce` is applied first, `$set` over it; `$add` has no Segment
    equivalent and is kept as it is, not dropped."""
    record = {
        "event_type": "$identify",
        "user_id": "u1",
        "event_time": "2021-03-04 05:06:07.123000",
        "user_properties": {
            "$setOnce": {"first_seen": "2021-01-01", "plan": "trial"},
            "$set": {"plan": "free"},
            "$add": {"logins": 1},
        },
    }
    message = _mapped(record)
    assert message["traits"] == {"first_seen": "2021-01-01", "plan": "free", "$add": {"logins": 1}}
    flat = _mapped({**record, "user_properties": {"plan": "pro"}})
    assert flat["traits"] == {"plan": "pro"}


def test_airbytes_mixpanel_export_row_is_the_raw_export_event_it_was_loaded_from() -> None:
    """QA3 Q10: Airbyte's source-mixpanel `export` stream drops Mixpanel's `$` (`insert_id`,
    `browser`, `current_url`) and adds its loader columns. The `_airbyte_*` columns were sent
    as properties and `insert_id` was not the dedupe key, so two syncs of the same events got
    different messageIds. Now a row has the id of the raw export's line it came from."""
    row = {
        "_airbyte_raw_id": "6f1e7c1e-0001",
        "_airbyte_extracted_at": "2024-05-01 10:00:00.000 +0000",
        "_airbyte_meta": '{"changes":[]}',
        "event": "Viewed Page",
        "time": "2021-06-16T16:28:00+00:00",
        "distinct_id": "d-1",
        "browser": "Chrome",
        "current_url": "https://example.com/a",
        "insert_id": "c5eed127",
        "mp_api_endpoint": "api.mixpanel.com",
        "mp_lib": "web",
        "mp_processing_time_ms": "1623886083321",
        "plan": "pro",
    }
    raw_line = {
        "event": "Viewed Page",
        "properties": {
            "time": 1623860880,
            "distinct_id": "d-1",
            "$browser": "Chrome",
            "$current_url": "https://example.com/a",
            "$insert_id": "c5eed127",
            "$mp_api_endpoint": "api.mixpanel.com",
            "mp_lib": "web",
            "mp_processing_time_ms": 1623886083321,
            "plan": "pro",
        },
    }
    message = _mapped(row, from_csv=True)
    assert message["properties"] == {"plan": "pro"}
    assert message["context"]["browser"] == {"name": "Chrome"}
    assert message["context"]["page"]["url"] == "https://example.com/a"
    resynced = _mapped({**row, "_airbyte_raw_id": "6f1e7c1e-0999"}, from_csv=True)
    assert resynced["messageId"] == message["messageId"] == _mapped(raw_line)["messageId"]
