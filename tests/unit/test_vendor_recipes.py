"""Vendor exports come out right: every sample under tests/fixtures/vendors (shapes as the
vendor publishes them, sources in its README) is read by the real reader and mapped, and
the messages must equal the expected ones written out from Segment's spec."""

from __future__ import annotations

import importlib
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from segment_importer.job import JobOptions
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.mapping.message_ids import (
    file_identity,
    message_id_for_position,
    message_id_for_source_id,
)
from segment_importer.mapping.profiles import profile_named
from segment_importer.mapping.shaping import LeftOut
from segment_importer.read.formats import open_records
from segment_importer.track.reasons import Reject
from tests.expected_ids import shared_id

VENDORS = Path(__file__).resolve().parents[1] / "fixtures" / "vendors"
SAMPLES = sorted(
    path
    for path in VENDORS.glob("*/*")
    if path.is_file() and not path.name.endswith((".expected.json", ".md"))
)
FILE_ID = file_identity('"vendor-sample"', 1)


def expected_messages(sample: Path) -> list[dict[str, Any]]:
    expected = json.loads(sample.with_name(sample.name.rsplit(".", 1)[0] + ".expected.json").read_text())
    for message in expected:
        derived = message.pop("messageIdFrom")
        if "source" in derived:
            source = derived["source"]
            if profile_named(source.split(":", 1)[0]).ids_tell_apart:
                message["messageId"] = message_id_for_source_id("", source)
            else:
                message["messageId"] = shared_id(source, message)
        else:
            message["messageId"] = message_id_for_position("", FILE_ID, derived["position"])
    return expected


def imported(sample: Path, job: JobOptions | None = None) -> list[dict[str, Any]]:
    with sample.open("rb") as stream:
        records = open_records(stream, sample.name)
        # The file's name, as the splitter passes its key: it names a table (Heap's pageviews).
        csv = records.format == "csv"
        mapper = MessageMapper(job or JobOptions(), FILE_ID, from_csv=csv, file_key=sample.name)
        messages = []
        for record in records:
            assert record.reason is None, record.detail
            messages.append(mapper.map(record.number, record.fields))
    return messages


def _sample_param(path: Path) -> Any:
    return pytest.param(path, id=f"{path.parent.name}/{path.name}")


@pytest.mark.parametrize("sample", [_sample_param(path) for path in SAMPLES])
def test_a_vendor_sample_maps_to_the_spec_messages(sample: Path) -> None:
    assert imported(sample) == expected_messages(sample)


def test_every_vendor_has_samples() -> None:
    assert {path.parent.name for path in SAMPLES} == {
        "mixpanel",
        "amplitude",
        "posthog",
        "ga4",
        "heap",
        "snowplow",
        "rudderstack",
        "segment",
    }


def test_mixpanel_internals_are_kept_when_the_job_says_so() -> None:
    sample = VENDORS / "mixpanel" / "raw-export.json"
    kept = imported(sample, JobOptions(keep_vendor_internals=True))[0]["properties"]
    assert kept["$mp_api_endpoint"] == "api-js.mixpanel.com"
    assert kept["mp_processing_time_ms"] == 1523241143105
    assert "$mp_api_endpoint" not in imported(sample)[0]["properties"]


def test_posthog_sdk_internals_are_kept_when_the_job_says_so() -> None:
    sample = VENDORS / "posthog" / "capture-batch.json"
    kept = imported(sample, JobOptions(keep_vendor_internals=True))[0]["properties"]
    assert kept["$sdk_debug_replay_internal_buffer_length"] == 9
    assert kept["$session_recording_start_reason"] == "recording_initialized"


def test_amplitude_session_id_survives_a_job_that_chooses_destinations() -> None:
    sample = VENDORS / "amplitude" / "export-api.json"
    job = JobOptions(integrations={"All": False, "Amplitude": True})
    message = imported(sample, job)[0]
    assert message["integrations"] == {"All": False, "Amplitude": {"session_id": 1614834300000}}
    off = imported(sample, JobOptions(integrations={"All": False, "Mixpanel": True}))[0]
    assert off["integrations"] == {"All": False, "Mixpanel": True}


def test_ga4_event_campaign_is_collected_traffic_source_not_first_touch() -> None:
    """GA4's `traffic_source` is the user's first-touch acquisition; the event's own campaign
    is `collected_traffic_source` (GA4 BigQuery export schema)."""
    row = {
        "event_name": "page_view",
        "event_timestamp": "1612069510766593",
        "user_pseudo_id": "1026454.4271112504",
        "traffic_source": {"medium": "organic", "name": "(organic)", "source": "google"},
        "collected_traffic_source": {
            "manual_campaign_name": "spring_sale",
            "manual_source": "newsletter",
            "manual_medium": "email",
            "manual_term": "shoes",
            "manual_content": "hero",
            "gclid": "Cj0KCQ",
            "manual_marketing_tactic": None,
        },
    }
    message = MessageMapper(JobOptions(), FILE_ID, from_csv=False).map(1, row)
    assert message["context"]["campaign"] == {
        "name": "spring_sale",
        "source": "newsletter",
        "medium": "email",
        "term": "shoes",
        "content": "hero",
        "gclid": "Cj0KCQ",
    }
    first_touch = {"name": "(organic)", "medium": "organic", "source": "google"}
    assert message["context"]["firstTouchCampaign"] == first_touch


# Segment warehouse tables have no `type` column: the table is the call type. Rows as the
# warehouse schemas put them (segment.com/docs/connections/storage/warehouses/schema).
WAREHOUSE_COMMON = {"id": "ajs-1", "received_at": "2021-03-04T05:06:08Z", "uuid_ts": "2021-03-04T05:07:00Z"}


@pytest.mark.parametrize(
    ("table", "row", "call_type"),
    [
        ("identifies", {"user_id": "u1", "email": "ada@example.com"}, "identify"),
        ("tracks", {"user_id": "u1", "event": "signed_up", "event_text": "Signed Up"}, "track"),
        (
            "pages",
            {"anonymous_id": "a1", "name": "Pricing", "url": "https://x.example/p", "path": "/p"},
            "page",
        ),
        ("screens", {"user_id": "u1", "name": "Settings"}, "screen"),
        ("groups", {"user_id": "u1", "group_id": "g1", "name": "Acme"}, "group"),
    ],
)
def test_a_warehouse_row_without_a_type_column_has_its_tables_call_type(
    table: str, row: dict[str, Any], call_type: str
) -> None:
    record = {**WAREHOUSE_COMMON, "timestamp": "2021-03-04T05:06:07Z", **row}
    message = MessageMapper(JobOptions(), FILE_ID, from_csv=False).map(1, record)
    assert message["type"] == call_type, table
    assert message["messageId"] == shared_id("segment:ajs-1", message)


@pytest.mark.parametrize("module", ["mixpanel", "amplitude", "posthog", "snowplow", "heap"])
def test_docs_mapping_lists_every_context_field_of_a_profile(module: str) -> None:
    """docs/mapping.md is the table users read: it must say where each field goes."""
    fields = importlib.import_module(f"segment_importer.mapping.profiles.{module}").CONTEXT_FIELDS
    doc = (Path(__file__).resolve().parents[2] / "docs" / "mapping.md").read_text()
    missing = [
        name for name, path in fields.items() if f"| `{name}` | `context.{'.'.join(path)}` |" not in doc
    ]
    assert missing == []


ODD_VALUES = [None, "", "x", 0, -1, 1.5, True, [], [1], ["a"], {}, {"a": 1}, [{"a": 1}], {"data": "x"}]


def _json_samples() -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    for sample in SAMPLES:
        if sample.suffix == ".csv":
            continue
        with sample.open("rb") as stream:
            samples.extend(record.fields for record in open_records(stream, sample.name) if record.fields)
    return samples


def _mutated(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        odd = rng.random
        return {
            key: rng.choice(ODD_VALUES) if odd() < 0.3 else _mutated(item, rng) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mutated(item, rng) for item in value]
    return value


def _odd_or_mutated(value: Any, rng: random.Random) -> Any:
    return rng.choice(ODD_VALUES) if rng.random() < 0.3 else _mutated(value, rng)


def test_vendor_records_with_fields_of_the_wrong_type_map_or_are_rejected_with_a_reason() -> None:
    # A TypeError in a profile would fail the whole split (and retry it) instead of one record.
    rng = random.Random(7)
    samples = _json_samples()
    sources = ("auto", "segment", "posthog", "mixpanel", "amplitude", "ga4", "snowplow", "heap")
    mappers = [MessageMapper(JobOptions(source=source), FILE_ID, from_csv=False) for source in sources]
    outcomes: Counter[str] = Counter()
    for number in range(1, 3001):  # any profile, also one a job forces on records of another shape
        try:
            rng.choice(mappers).map(number, _mutated(rng.choice(samples), rng))
        except Reject as error:
            outcomes[error.reason] += 1
        except LeftOut as left_out:  # a record with no call that is no mistake (a deleted person)
            outcomes[left_out.rule] += 1
        else:
            outcomes["mapped"] += 1
    assert sum(outcomes.values()) == 3000
    assert outcomes["mapped"] > 0


# --- the same events in another of the vendor's export forms --------------------------------


def _differences(left: Any, right: Any, path: str = "") -> list[str]:
    if isinstance(left, dict) and isinstance(right, dict):
        found = []
        for key in left.keys() | right.keys():
            found += _differences(left.get(key), right.get(key), f"{path}.{key}")
        return found
    return [] if left == right and type(left) is type(right) else [f"{path}: {left!r} != {right!r}"]


def test_mixpanel_utils_csv_maps_as_the_raw_export_of_the_same_events() -> None:
    """mixpanel-utils' export_events(format='csv') of raw-export.json (its _write_items_to_csv
    layout) maps to the raw export's messages, messageIds included: importing both dedupes.
    The only differences are CSV typing's (QA item 22), pinned here."""
    from_csv = imported(VENDORS / "mixpanel" / "mixpanel-utils-events.csv")
    from_json = imported(VENDORS / "mixpanel" / "raw-export.json")
    assert [m["messageId"] for m in from_csv] == [m["messageId"] for m in from_json]
    differences = [sorted(_differences(csv, raw)) for csv, raw in zip(from_csv, from_json, strict=True)]
    # Versions stay text in CSV (the raw export has `$browser_version` as a number).
    viewed_pricing = [".context.browser.version: '11.1' != 11.1"]
    assert differences == [viewed_pricing, [], [], [], []]  # the build number is text, as in JSON


def test_mixpanel_utils_people_csv_maps_as_the_engage_export() -> None:
    """export_people(format='csv'): `$distinct_id`, then one column per profile property."""
    from_csv = imported(VENDORS / "mixpanel" / "mixpanel-utils-people.csv")
    assert from_csv == imported(VENDORS / "mixpanel" / "engage-export.json")
    assert from_csv[0]["traits"]["email"] == "ada@example.com"


def test_a_fivetran_mixpanel_row_has_the_raw_exports_message_id() -> None:
    """Fivetran's EVENT table holds `time` as a timestamp and `insert_id` without its `$`:
    the id is derived from what Mixpanel dedupes on, as the raw export line gives it."""
    rows = imported(VENDORS / "mixpanel" / "fivetran-event.csv")
    raw_line = {
        "event": "Viewed Pricing",
        "properties": {"time": 1614834367, "distinct_id": "u-1001", "$insert_id": "ft-a9f3c0e1"},
    }
    raw = MessageMapper(JobOptions(), FILE_ID, from_csv=False).map(7, raw_line)
    assert rows[0]["messageId"] == raw["messageId"]
    assert rows[0]["timestamp"] == raw["timestamp"]


def test_fivetran_bookkeeping_is_kept_only_when_the_job_keeps_vendor_internals() -> None:
    sample = VENDORS / "mixpanel" / "fivetran-event.csv"
    kept = imported(sample, JobOptions(keep_vendor_internals=True))[0]["properties"]
    assert {name: kept[name] for name in ("_file", "_line", "_fivetran_id", "_fivetran_event_id")} == {
        "_file": "sample_events.csv",
        "_line": 20001,
        "_fivetran_id": "q3Zk8mV1rT0aLwY2pXc9sNbE4hU=",
        "_fivetran_event_id": 8812000,
    }
    assert kept["_fivetran_synced"] == "2021-03-05 01:00:00"
    assert kept["mp_processing_time_ms"] == 1614834368105
    assert not any(name.startswith("_") for name in imported(sample)[0]["properties"])


POSTHOG_EVENT = {
    "distinct_id": "2",
    "properties": {"$browser": "Safari"},
    "event": "event_name",
    "timestamp": "2022-07-06T19:37:43.095295+00:00",
}
POSTHOG_UUID = "e9ca132e-400f-4854-a83c-16c151b2f145"


def _csv_messages(text: str, tmp_path: Path, name: str) -> list[dict[str, Any]]:
    path = tmp_path / name
    path.write_text(text)
    return imported(path)


def test_a_posthog_events_uuid_is_its_source_id_in_every_form(tmp_path: Path) -> None:
    """The events API's `id`, the events table's `uuid`, an EventsQuery export's `*.uuid`, at
    any row of any file: one messageId, so overlapping exports dedupe."""
    header = "distinct_id,elements_chain,event,id,person,properties.$browser,timestamp\n"
    row = f"2,,event_name,{POSTHOG_UUID},,Safari,2022-07-06T19:37:43.095295+00:00\n"
    other = "9,,other,aaaaaaaa-400f-4854-a83c-16c151b2f145,,Safari,2022-07-06T19:37:43.095295+00:00\n"
    first_row = _csv_messages(header + row, tmp_path, "a.csv")[0]
    second_row = _csv_messages(header + other + row, tmp_path, "b.csv")[1]
    star = _csv_messages(
        "*.uuid,*.event,*.properties.$browser,*.timestamp,*.distinct_id,*.person_mode\n"
        f"{POSTHOG_UUID},event_name,Safari,2022-07-06T19:37:43.095295+00:00,2,full\n",
        tmp_path,
        "hogql.csv",
    )[0]
    mapper = MessageMapper(JobOptions(), FILE_ID, from_csv=False)
    api = {**POSTHOG_EVENT, "id": POSTHOG_UUID, "person": None, "elements": [], "elements_chain": ""}
    table = {**POSTHOG_EVENT, "uuid": POSTHOG_UUID}
    messages = [first_row, second_row, star, mapper.map(1, api), mapper.map(2, table)]
    assert {message["messageId"] for message in messages} == {shared_id(f"posthog:{POSTHOG_UUID}", first_row)}
    assert all(message["properties"] == {} for message in messages)  # `id` is the id, not data


def test_a_posthog_id_that_is_not_a_uuid_is_event_data() -> None:
    message = MessageMapper(JobOptions(), FILE_ID, from_csv=False).map(3, {**POSTHOG_EVENT, "id": 42})
    assert message["properties"] == {"id": 42}
    assert message["messageId"] == message_id_for_position("", FILE_ID, 3)


def test_posthog_batch_export_text_columns_are_parsed_and_set_is_traits() -> None:
    """BigQuery/Postgres/Redshift batch exports: `properties`, `set`, `set_once` as JSON text;
    Snowflake's `people_set`/`people_set_once`. Person properties are `context.traits` (the
    event's own `$set`), the identify call's traits on `$identify`."""
    row = {
        "uuid": "018c9f1e-7a10-7b3c-a1d2-3e4f5a6b7c8d",
        "distinct_id": "user-42",
        "event": "signed up",
        "team_id": 1,
        "people_set": '{"email": "ana@example.com"}',
        "people_set_once": '{"$initial_os": "Mac OS X", "email": "first@example.com"}',
        "ip": "203.0.113.9",
        "elements": "",
        "site_url": "",
        "timestamp": "2023-12-28 10:15:02.123000 UTC",
        "created_at": "2023-12-28 10:15:03.001000 UTC",
        "properties": '{"plan": "pro", "$lib": "posthog-node"}',
    }
    message = MessageMapper(JobOptions(), FILE_ID, from_csv=False).map(1, row)
    assert message["properties"] == {"plan": "pro"}
    assert message["context"]["traits"] == {"$initial_os": "Mac OS X", "email": "ana@example.com"}
    assert message["context"]["ip"] == "203.0.113.9"
    assert message["messageId"] == shared_id("posthog:018c9f1e-7a10-7b3c-a1d2-3e4f5a6b7c8d", message)


def test_posthog_person_object_and_unknown_columns() -> None:
    """The events API's `person` gives its properties as traits; a top-level column the profile
    does not know is an event property (never dropped); storage columns are not sent."""
    record = {
        **POSTHOG_EVENT,
        "uuid": POSTHOG_UUID,
        "person": {"is_identified": True, "distinct_ids": ["2"], "properties": {"email": "a@example.com"}},
        "$group_0": "acme",
        "elements_chain": "a:nth-child(1)",
        "team_id": 2,
    }
    message = MessageMapper(JobOptions(), FILE_ID, from_csv=False).map(1, record)
    assert message["context"]["traits"] == {"email": "a@example.com"}
    assert message["properties"] == {"$group_0": "acme"}


def test_a_posthog_set_event_is_an_identify_call() -> None:
    """posthog.capture("$set", {"$set": ..., "$set_once": ...}) only sets person properties."""
    record = {
        "uuid": POSTHOG_UUID,
        "event": "$set",
        "distinct_id": "user-42",
        "timestamp": "2024-01-02T03:04:05Z",
        "properties": {"$set": {"name": "Max"}, "$set_once": {"initial_url": "/blog"}, "$lib": "web"},
    }
    message = MessageMapper(JobOptions(), FILE_ID, from_csv=False).map(1, record)
    assert (message["type"], message["userId"]) == ("identify", "user-42")
    assert message["traits"] == {"initial_url": "/blog", "name": "Max"}
    assert message["messageId"] == shared_id(f"posthog:{POSTHOG_UUID}", message)
