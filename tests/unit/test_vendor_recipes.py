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
from segment_importer.read.formats import open_records
from segment_importer.track.reasons import Reject

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
            message["messageId"] = message_id_for_source_id("", derived["source"])
        else:
            message["messageId"] = message_id_for_position("", FILE_ID, derived["position"])
    return expected


def imported(sample: Path, job: JobOptions | None = None) -> list[dict[str, Any]]:
    with sample.open("rb") as stream:
        records = open_records(stream, sample.name)
        mapper = MessageMapper(job or JobOptions(), FILE_ID, from_csv=records.format == "csv")
        messages = []
        for record in records:
            assert record.reason is None, record.detail
            messages.append(mapper.map(record.number, record.fields))
    return messages


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: f"{path.parent.name}/{path.name}")
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
    assert message["messageId"] == message_id_for_source_id("", "segment:ajs-1")


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
        else:
            outcomes["mapped"] += 1
    assert sum(outcomes.values()) == 3000
    assert outcomes["mapped"] > 0
