"""Snowplow enriched TSV (headerless, 131 fields) is read as the Analytics SDKs read it: the
Scala SDK's own test event (tests/fixtures/vendors/snowplow/sdk) gives the SDK's own JSON,
and that JSON and the TSV give the same Segment messages."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest

from segment_importer.job import JobOptions
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.mapping.message_ids import file_identity
from segment_importer.mapping.profiles.snowplow import PAGE_PING_RULE
from segment_importer.mapping.shaping import LeftOut
from segment_importer.read.detect import plain_shape
from segment_importer.read.formats import ResumePoint, open_records
from segment_importer.read.records import SourceRecord
from segment_importer.read.snowplow_tsv import FIELD_COUNT, FIELDS, shredded_name
from segment_importer.track import reasons

SDK = Path(__file__).resolve().parents[1] / "fixtures" / "vendors" / "snowplow" / "sdk"
LINE = (SDK / "page-view.tsv").read_bytes().rstrip(b"\n")
NAMES = [name for name, _ in FIELDS]


def fields_of(line: bytes) -> dict[str, str]:
    return dict(zip(NAMES, line.decode().split("\t"), strict=True))


def line_with(**changes: str) -> bytes:
    """The SDK's event line with some fields changed."""
    fields = fields_of(LINE)
    fields.update(changes)
    return "\t".join(fields[name] for name in NAMES).encode()


def read(data: bytes, key: str = "part-00000", **options: Any) -> tuple[str, list[SourceRecord]]:
    stream = open_records(io.BytesIO(data), key, **options)
    return stream.format, list(stream)


def test_the_field_list_is_the_sdks_131_fields_in_order() -> None:
    assert FIELD_COUNT == 131
    assert NAMES[:7] == [
        "app_id",
        "platform",
        "etl_tstamp",
        "collector_tstamp",
        "dvce_created_tstamp",
        "event",
        "event_id",
    ]
    assert NAMES[-8:] == [
        "domain_sessionid",
        "derived_tstamp",
        "event_vendor",
        "event_name",
        "event_format",
        "event_version",
        "event_fingerprint",
        "true_tstamp",
    ]
    assert (NAMES[52], NAMES[58], NAMES[122]) == ("contexts", "unstruct_event", "derived_contexts")


def test_the_sdks_event_line_reads_as_the_sdks_json() -> None:
    """EventSpec's page view (snowplow-scala-analytics-sdk) against its expected `toJson`:
    nulls are absent fields here, everything else is equal."""
    expected = {k: v for k, v in json.loads((SDK / "page-view.json").read_text()).items() if v is not None}
    fmt, records = read(LINE + b"\n")
    assert fmt == "snowplow_tsv"
    assert [r.fields for r in records] == [expected]
    event = records[0].fields or {}
    assert event["collector_tstamp"] == "2013-11-26T00:02:05Z"
    assert (event["txn_id"], event["geo_latitude"]) == (41828, 37.443604)
    assert (event["br_features_pdf"], event["br_features_flash"]) == (True, False)
    assert event["contexts_org_w3_performance_timing_1"][0]["navigationStart"] == 1415358089861


def test_schemas_are_named_as_the_sdk_names_them() -> None:
    """The Scala SDK's transformSchema cases (EventSpec)."""
    assert shredded_name("contexts", "iglu:org.w3/PerformanceTiming/jsonschema/1-0-0")[0] == (
        "contexts_org_w3_performance_timing_1"
    )
    assert shredded_name(
        "unstruct_event", "iglu:com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0"
    ) == (
        "unstruct_event_com_snowplowanalytics_self_desc_schema_1",
        "1-0-0",
    )


@pytest.mark.parametrize("key", ["part-00000", "run=2021-03-04/part-00000.tsv", "enriched.csv", "events"])
def test_a_headerless_enriched_file_is_detected_whatever_its_name(key: str) -> None:
    assert read(LINE + b"\n" + LINE + b"\n", key)[0] == "snowplow_tsv"
    assert read(gzip.compress(LINE + b"\n"), key + ".gz")[0] == "snowplow_tsv"
    assert plain_shape(LINE + b"\n", key) is not None
    assert plain_shape(LINE + b"\n", key).format.value == "snowplow_tsv"  # type: ignore[union-attr]


def test_an_event_with_no_app_id_starts_with_a_tab_and_is_still_detected() -> None:
    fmt, records = read(b"\r\n" + line_with(app_id="") + b"\r\n")
    assert fmt == "snowplow_tsv"
    assert [r.number for r in records] == [2]  # the blank first line counts
    assert "app_id" not in (records[0].fields or {})


def test_a_tab_separated_csv_with_a_header_is_still_csv() -> None:
    header = "\t".join(NAMES).encode()
    assert read(header + b"\n" + LINE + b"\n", "unload.tsv")[0] == "csv"
    assert read(b"userId\tevent\nu1\tA\n", "x.tsv")[0] == "csv"


def test_a_line_with_another_field_count_is_a_reject_saying_so() -> None:
    short = b"\t".join(LINE.split(b"\t")[:108])  # an older, shorter enriched layout
    longer = LINE + b"\textra"
    fmt, records = read(b"\n".join([LINE, short, longer, LINE]) + b"\n")
    assert fmt == "snowplow_tsv"
    assert [(r.number, r.reason) for r in records] == [
        (1, None),
        (2, reasons.SNOWPLOW_FIELD_COUNT),
        (3, reasons.SNOWPLOW_FIELD_COUNT),
        (4, None),
    ]
    assert records[1].detail == "line 2: expected 131 tab-separated fields (Snowplow enriched event), got 108"
    assert records[2].detail == "line 3: expected 131 tab-separated fields (Snowplow enriched event), got 132"


def test_an_older_layout_is_recognised_and_every_line_rejected_with_its_count() -> None:
    short = b"\t".join(LINE.split(b"\t")[:108])
    fmt, records = read(short + b"\n" + short + b"\n")
    assert fmt == "snowplow_tsv"
    assert {r.reason for r in records} == {reasons.SNOWPLOW_FIELD_COUNT}
    assert all(r.detail and r.detail.endswith("got 108") for r in records)


def test_a_value_the_sdk_cannot_parse_is_a_reject_naming_the_field_not_the_value() -> None:
    bad = line_with(
        txn_id="forty-two", br_cookies="yes", contexts='{"data": [{"schema": "not-iglu", "data": {}}]}'
    )
    _, records = read(LINE + b"\n" + bad + b"\n")
    assert [r.reason for r in records] == [None, reasons.SNOWPLOW_INVALID_VALUE]
    detail = records[1].detail or ""
    assert detail == "line 2: txn_id, contexts, br_cookies cannot be read as the SDK types them"
    assert "forty-two" not in detail
    assert "yes" not in detail


def test_an_event_without_the_sdks_required_fields_is_a_reject() -> None:
    _, records = read(line_with(v_etl="", v_collector="") + b"\n")
    assert records[0].reason == reasons.SNOWPLOW_INVALID_VALUE
    assert records[0].detail == "line 1: v_collector, v_etl missing"


def test_an_oversized_line_is_skipped_and_the_next_read() -> None:
    big = line_with(page_title="x" * 5000)
    _, records = read(LINE + b"\n" + big + b"\n" + LINE + b"\n", max_record_bytes=4000)
    assert [(r.number, r.reason) for r in records] == [(1, None), (2, reasons.RECORD_TOO_LARGE), (3, None)]


def test_a_resumed_read_goes_on_as_snowplow_tsv_from_a_line_that_does_not_look_like_one() -> None:
    """A later part starts mid-file: the format it was told (the first part's) is used, even
    when the line there would not be detected as Snowplow TSV."""
    broken = b"shop\tweb\t2021"
    data = LINE + b"\n" + broken + b"\n" + LINE + b"\n"
    point = ResumePoint(len(LINE) + 1, 2)
    stream = open_records(io.BytesIO(data), "part-00000", resume=point, known_format="snowplow_tsv")
    records = list(stream)
    assert stream.format == "snowplow_tsv"
    assert [(r.number, r.reason) for r in records] == [(2, reasons.SNOWPLOW_FIELD_COUNT), (3, None)]
    after = stream.resume_point_after(2)
    assert after == ResumePoint(len(LINE) + 1 + len(broken) + 1, 3)


def _messages(data: bytes, key: str) -> list[dict[str, Any]]:
    stream = open_records(io.BytesIO(data), key)
    mapper = MessageMapper(JobOptions(), file_identity('"x"', 1), from_csv=False)
    return [mapper.map(record.number, record.fields or {}) for record in stream]


def test_the_tsv_and_the_sdks_json_of_an_event_give_the_same_message() -> None:
    sdk_json = (SDK / "page-view.json").read_bytes().replace(b"\n", b"") + b"\n"
    from_tsv = _messages(LINE + b"\n", "part-00000")
    assert from_tsv == _messages(sdk_json, "event.ndjson")
    page = from_tsv[0]
    assert (page["type"], page["name"], page["userId"], page["anonymousId"]) == (
        "page",
        "On Analytics",
        "jon.doe@email.com",
        "bc2e92ec6c204a14",
    )
    assert page["timestamp"] == "2013-11-26T00:03:57.886Z"  # derived_tstamp
    assert page["properties"]["url"] == page["context"]["page"]["url"] == "http://www.snowplowanalytics.com"
    assert page["properties"]["search"] == page["context"]["page"]["search"] == "?id=GTM-DLRG"
    assert page["context"]["ip"] == "92.231.54.234"


def test_a_page_ping_is_left_out_and_counted_not_sent_nor_rejected() -> None:
    record = open_records(io.BytesIO(line_with(event="page_ping", pp_yoffset_max="900") + b"\n"), "p")
    mapper = MessageMapper(JobOptions(), file_identity('"x"', 1), from_csv=False)
    fields = next(iter(record)).fields or {}
    with pytest.raises(LeftOut) as raised:
        mapper.map(1, fields)
    assert raised.value.rule == PAGE_PING_RULE
