"""Shaping (job keys filter, limit, sample, drop, hash, set) through the splitter's own core:
records in, SQS bodies out, counts in the report."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from typing import Any

import orjson
import pytest

from segment_importer.batch.packing import Batch, BatchLimits
from segment_importer.job import JobOptions, JobOptionsError, parse_job_document
from segment_importer.mapping.shaping import REDACTED
from segment_importer.mapping.validation import check_kinds
from segment_importer.split.splitter import split_stream
from segment_importer.track.reasons import Reject
from segment_importer.track.rejects import RejectsWriter
from segment_importer.track.report import ImportReport


class BodySink:
    """Keeps what the splitter would queue, decoded."""

    def __init__(self) -> None:
        self.batches_queued = 0
        self.messages_queued = 0
        self.messages: list[dict[str, Any]] = []

    def put(self, batch: Batch) -> None:
        self.batches_queued += 1
        self.messages_queued += batch.size
        self.messages += [orjson.loads(body) for body in batch.bodies]

    def flush(self) -> None:
        pass


def events(count: int) -> list[dict[str, Any]]:
    """Track events over four months of 2023, a page every fifth, an identify every seventh."""
    records = []
    for number in range(1, count + 1):
        record: dict[str, Any] = {
            "userId": f"user-{number}",
            "timestamp": f"2023-{1 + number % 4:02d}-15T12:00:00.000Z",
            "properties": {"plan": "pro" if number % 2 else "free", "email": f"u{number}@example.com"},
        }
        if number % 7 == 0:
            record.update(type="identify", traits={"email": f"u{number}@example.com"})
        elif number % 5 == 0:
            record.update(type="page", name="Home")
        else:
            record.update(type="track", event="Signed Up" if number % 3 == 0 else "Order Completed")
        records.append(record)
    return records


def shape(records: list[Any], job: dict[str, Any]) -> tuple[ImportReport, list[dict[str, Any]]]:
    parse_job_document(json.dumps(job), "job.json")  # what check-job accepts, the splitter runs
    text = b"".join(orjson.dumps(record) + b"\n" for record in records)
    report = ImportReport(bucket="b", key="imports/shaped.ndjson", etag="e1", size_bytes=len(text))
    sink = BodySink()
    options = JobOptions().merged_with(job)
    report.job = options.to_document()  # as the splitter does: checkpoints carry it on
    split_stream(io.BytesIO(text), report, options, BatchLimits(), sink, RejectsWriter())
    assert report.messages_queued == len(sink.messages)
    assert report.records_read == report.messages_queued + report.rejected + report.filtered
    assert report.filtered == sum(report.filtered_by.values())
    return report, sink.messages


def test_no_shaping_sends_every_valid_message() -> None:
    report, messages = shape(events(50), {})
    assert len(messages) == 50
    assert report.filtered == 0
    assert report.filtered_by == {}


def test_types_events_and_exclusions() -> None:
    records = events(105)
    report, messages = shape(records, {"filter": {"types": ["track", "page"]}})
    assert {m["type"] for m in messages} == {"track", "page"}
    assert report.filtered_by == {"types": 15}  # identify: every 7th of 105
    report, messages = shape(records, {"filter": {"events": ["Signed Up"]}})
    assert {m.get("event") for m in messages} == {"Signed Up"}
    signed_up = sum(1 for r in records if r.get("event") == "Signed Up")
    assert len(messages) == signed_up
    assert report.filtered_by == {"events": 105 - signed_up}  # pages and identifies too: not track
    report, messages = shape(records, {"filter": {"exclude_events": ["Signed Up"]}})
    assert len(messages) == 105 - signed_up
    assert report.filtered_by == {"exclude_events": signed_up}


def test_since_is_inclusive_and_until_exclusive() -> None:
    records = [
        {"type": "track", "event": "E", "userId": "u", "timestamp": moment}
        for moment in (
            "2023-01-31T23:59:59.999Z",
            "2023-02-01T00:00:00Z",
            "2023-02-28T23:59:59Z",
            "2023-03-01",
        )
    ]
    report, messages = shape(records, {"filter": {"since": "2023-02-01", "until": "2023-03-01T00:00:00Z"}})
    assert [m["timestamp"] for m in messages] == ["2023-02-01T00:00:00.000Z", "2023-02-28T23:59:59.000Z"]
    assert report.filtered_by == {"since": 1, "until": 1}
    # An offset counts: 01:00+02:00 is 23:00 UTC the day before.
    report, messages = shape(records[:1], {"filter": {"since": "2023-02-01T00:59:59.999+01:00"}})
    assert len(messages) == 1


def test_a_message_without_a_time_is_outside_any_time_range() -> None:
    records = [{"type": "track", "event": "E", "userId": "u"}]
    job = {"requireTimestamp": False, "filter": {"since": "2000-01-01T00:00:00Z"}}
    report, messages = shape(records, job)
    assert messages == []
    assert report.filtered_by == {"since": 1}


def test_where_is_jmespath_over_the_mapped_message() -> None:
    records = events(40)
    report, messages = shape(records, {"filter": {"where": "properties.plan == 'pro'"}})
    # Odd numbers are "pro", but an identify (7, 21, 35) carries traits, not properties.
    assert len(messages) == 17
    assert all(m["properties"]["plan"] == "pro" for m in messages)
    assert report.filtered_by == {"where": 23}
    # A column mapped to properties by the job is visible to `where`: the mapped message.
    csv_like = [{"type": "track", "event": "E", "userId": "u", "timestamp": "2023-01-01", "tier": "gold"}]
    _, messages = shape(csv_like, {"filter": {"where": "properties.tier == 'gold'"}})
    assert len(messages) == 1


def test_validation_comes_first() -> None:
    """An invalid record is rejected whatever the filters say; filters see valid ones only."""
    records = [
        {"type": "identify", "traits": {}},  # no user: invalid, and not a kept type
        {"type": "track", "userId": "u", "timestamp": "2023-01-01"},  # no event
        {"type": "track", "event": "E", "userId": "u", "timestamp": "2023-01-01"},
    ]
    report, messages = shape(records, {"filter": {"types": ["page"]}, "limit": 0})
    assert report.rejected_by_reason == {"missing_user": 1, "missing_event": 1}
    assert report.filtered_by == {"types": 1}
    assert messages == []


def test_limit_sends_the_first_n_of_the_messages_left_after_the_filters() -> None:
    records = events(100)
    report, messages = shape(records, {"filter": {"types": ["track"]}, "limit": 10})
    tracks = [r for r in records if r.get("event")]
    assert [m["userId"] for m in messages] == [r["userId"] for r in tracks[:10]]
    assert report.filtered_by == {"types": 100 - len(tracks), "limit": len(tracks) - 10}


def test_sample_is_a_deterministic_fraction_by_message_id() -> None:
    records = events(4000)
    report, first = shape(records, {"sample": 0.25})
    _, again = shape(records, {"sample": 0.25})
    assert first == again, "the same file sampled twice must give the same messages"
    assert 0.22 * 4000 < len(first) < 0.28 * 4000
    assert report.filtered_by == {"sample": 4000 - len(first)}
    _, larger = shape(records, {"sample": 0.5})  # a larger fraction keeps every message of a smaller one
    assert {m["messageId"] for m in first} < {m["messageId"] for m in larger}
    _, everything = shape(records, {"sample": 1})
    assert len(everything) == 4000


def test_drop_hash_and_set() -> None:
    records = events(30)
    job = {
        "drop": ["properties.email", "traits.email", "context.absent.path"],
        "hash": {"paths": ["userId", "properties.plan"], "key": "s3cret"},
        "set": {"context.source": "crm-2023", "integrations": {"All": False, "Amplitude": True}},
    }
    report, messages = shape(records, job)
    assert len(messages) == 30
    for record, message in zip(records, messages, strict=True):
        assert "email" not in message.get("properties", {})
        assert "email" not in message.get("traits", {})
        expected = hmac.new(b"s3cret", record["userId"].encode(), hashlib.sha256).hexdigest()
        assert message["userId"] == expected
        assert message["context"]["source"] == "crm-2023"
        assert message["integrations"] == {"All": False, "Amplitude": True}
    plans = {m["properties"]["plan"] for m in messages if "properties" in m}
    assert len(plans) == 2, "same input -> same output: two plans, two hashes"
    assert report.to_dict()["job"]["hash"]["key"] == REDACTED
    assert report.split_counts()["job"]["hash"]["key"] == REDACTED
    assert report.job["hash"]["key"] == "s3cret"  # the checkpoint (not the report) carries it on


def test_a_set_that_makes_a_message_too_large_rejects_it() -> None:
    records = events(3)
    report, messages = shape(records, {"set": {"properties.padding": "x" * 40_000}})
    assert messages == []
    assert report.rejected_by_reason == {"message_too_large": 3}


@pytest.mark.parametrize(
    ("job", "says"),
    [
        ({"filter": []}, "'filter' must be an object"),
        ({"filter": {"from": "2023"}}, "unknown keys ['from']"),
        ({"filter": {"since": "last tuesday"}}, "'filter.since' must be an ISO 8601 time"),
        ({"filter": {"since": "2024-01-01", "until": "2023-01-01"}}, "must be before 'filter.until'"),
        ({"filter": {"types": ["tracks"]}}, "'filter.types' must be a non-empty list of call types"),
        ({"filter": {"events": "Signed Up"}}, "'filter.events' must be a list of event names"),
        ({"filter": {"where": "properties.plan =="}}, "'filter.where' is not a valid JMESPath"),
        ({"limit": -1}, "'limit' must be a whole number"),
        ({"limit": 1.5}, "'limit' must be a whole number"),
        ({"sample": 0}, "'sample' must be a fraction"),
        ({"sample": True}, "'sample' must be a fraction"),
        ({"drop": "context.ip"}, "'drop' must be a list of dot paths"),
        ({"drop": ["userId"]}, "'userId' is required by Segment"),
        ({"drop": ["messageId"]}, "the importer's own field"),
        ({"drop": ["context..ip"]}, "is not a dot path"),
        ({"hash": ["userId"]}, "'hash' must be an object"),
        ({"hash": {"paths": ["userId"]}}, "exactly one of 'key'"),
        ({"hash": {"paths": ["userId"], "key": "k", "keyParameter": "/p"}}, "exactly one of 'key'"),
        ({"set": {"type": "page"}}, "the importer's own field"),
        ({"set": ["context.source"]}, "'set' must be an object"),
    ],
)
def test_check_job_names_the_key_and_what_it_must_be(job: dict[str, Any], says: str) -> None:
    with pytest.raises(JobOptionsError) as caught:
        parse_job_document(json.dumps(job), "s3://drops/imports/job.json")
    assert says in str(caught.value)
    assert str(caught.value).startswith("s3://drops/imports/job.json: ")


def test_a_full_shaping_document_is_accepted_and_kept_as_written() -> None:
    job = {
        "filter": {
            "since": "2023-01-01T00:00:00Z",
            "until": "2024-01-01T00:00:00Z",
            "types": ["track"],
            "events": ["A"],
            "exclude_events": ["B"],
            "where": "properties.plan == 'pro'",
        },
        "limit": 100,
        "sample": 0.5,
        "drop": ["context.ip"],
        "hash": {"paths": ["userId"], "keyParameter": "/segment-importer/hash-key"},
        "set": {"context.source": "crm"},
    }
    assert parse_job_document(json.dumps(job), "job.json") == job
    assert {k: v for k, v in JobOptions().merged_with(job).to_document().items() if k in job} == job
    assert "limit" not in JobOptions().to_document(), "a job without shaping reads as before"


# --- what a job's set, drop and hash may not undo (QA: they were sent, and Segment drops them) ---


@pytest.mark.parametrize(
    ("shaping", "named"),
    [
        ({"set": {"timestamp": "not a time"}}, "ISO 8601 time"),
        ({"set": {"properties": "x"}}, "object"),
        ({"set": {"context": "x"}}, "holds the importer's own field"),
        ({"set": {"context": {"library": {"name": "x"}}}}, "holds the importer's own field"),  # QA2 F1
        ({"drop": ["context"]}, "holds the importer's own field"),
        ({"set": {"integrations": {"all": False, "Mixpanel": "yes"}}}, "true, false or an object"),  # QA2 F5
        ({"set": {"integrations.All": "yes"}}, "true, false or an object"),
        ({"hash": {"paths": ["integrations.All"], "key": "k"}}, "an object or a setting"),
        ({"set": {"name": 5}}, "non-empty text"),  # QA2 F3
        ({"set": {"context.traits": "str"}}, "object"),
        ({"set": {"context.page": "str"}}, "object"),
        ({"hash": {"paths": ["context.traits"], "key": "k"}}, "an object or a setting"),
        ({"set": {"integrations": []}}, "object"),
        ({"set": {"userId": {"a": 1}}}, "non-empty text"),
        ({"set": {"userId": 42}}, "non-empty text"),
        ({"hash": {"paths": ["userId", "timestamp"], "key": "k"}}, "the event's time"),
        ({"hash": {"paths": ["properties"], "key": "k"}}, "an object"),
        ({"drop": ["timestamp"]}, "the event's time"),
        ({"set": {"sentAt": "2021-01-01T00:00:00Z"}}, "importer's own field"),
        ({"set": {"receivedAt": "2021-01-01T00:00:00Z"}}, "importer's own field"),
        ({"drop": ["context.library"]}, "importer's own field"),
        ({"set": {"context.library.name": "x"}}, "importer's own field"),
    ],
)
def test_shaping_that_would_make_messages_segment_drops_is_refused(
    shaping: dict[str, Any], named: str
) -> None:
    with pytest.raises(JobOptionsError, match=named):
        parse_job_document(json.dumps(shaping), "job.json")


@pytest.mark.parametrize(
    ("shaping", "named"),
    [  # QA2 O1, O2: sent with OK (1970, 9999), or taken and ignored (an epoch number)
        (
            {"set": {"timestamp": "1970-01-01T00:00:00Z"}},
            "outside the plausible range 1990-01-01 to 2100-01-01",
        ),
        ({"set": {"timestamp": "9999-12-31T23:59:59Z"}}, "outside the plausible range"),
        ({"set": {"timestamp": 1614834367}}, r"ISO 8601 time .*an epoch number is not taken"),
        ({"set": {"timestamp": "1614834367"}}, "an epoch number is not taken"),
        ({"set": {"originalTimestamp": "garbage"}}, "'originalTimestamp' must be set to an ISO 8601 time"),
        ({"set": {"originalTimestamp": "1970-01-01T00:00:00Z"}}, "outside the plausible range"),
        (
            {"set": {"timestamp": "1980-01-01T00:00:00Z"}, "timestampRange": ["1985-01-01", "2100-01-01"]},
            "outside the plausible range 1985-01-01 to 2100-01-01",
        ),
    ],
)
def test_a_set_time_must_be_iso_8601_within_the_jobs_range(shaping: dict[str, Any], named: str) -> None:
    with pytest.raises(JobOptionsError, match=named):
        parse_job_document(json.dumps(shaping), "job.json")
    with pytest.raises(JobOptionsError, match=named):  # a job compiled without the document check too
        JobOptions(timestamp_range=shaping.get("timestampRange"), set=shaping["set"]).shaping_rules()


def test_a_set_time_inside_a_widened_range_is_taken() -> None:
    job = {"set": {"timestamp": "1975-01-01T00:00:00Z"}, "timestampRange": ["1971-01-01", "2100-01-01"]}
    parse_job_document(json.dumps(job), "job.json")
    _, (message,) = shape([{"type": "identify", "userId": "u1"}], job)
    assert message["timestamp"] == "1975-01-01T00:00:00.000Z"


def test_a_set_time_is_written_in_segments_form() -> None:
    _, (message,) = shape(
        [{"type": "identify", "userId": "u1"}], {"set": {"timestamp": "2021-03-04 05:06:07+02:00"}}
    )
    assert message["timestamp"] == "2021-03-04T03:06:07.000Z"


def test_a_shaped_message_of_the_wrong_kind_is_rejected_not_sent() -> None:
    """The job-time checks name the fields; the shaped message is checked again all the same."""
    for message in (
        {"event": 5},
        {"anonymousId": ["a"]},
        {"traits": "x"},
        {"timestamp": "yesterday"},
        {"name": 5},
        {"context": {"traits": "x"}},
        {"integrations": {"All": "yes"}},
    ):
        with pytest.raises(Reject):
            check_kinds({"type": "track", "userId": "u1", **message})
    check_kinds({"type": "track", "userId": "u1", "event": "E", "timestamp": "2021-03-04T05:06:07.000Z"})


ALL_CALLS = [
    {"type": "track", "userId": "u1", "event": "E", "timestamp": "2021-03-04T05:06:07Z"},
    {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
    {"type": "page", "userId": "u1", "name": "Home", "timestamp": "2021-03-04T05:06:07Z"},
    {"type": "screen", "userId": "u1", "name": "Home", "timestamp": "2021-03-04T05:06:07Z"},
    {"type": "group", "userId": "u1", "groupId": "g1"},
    {"type": "alias", "userId": "u1", "previousId": "p1"},
]


@pytest.mark.parametrize(
    ("field", "belongs"),
    [
        ("event", {"track"}),  # QA2 O12: identify, page, group, alias and screen got `event` too
        ("name", {"page", "screen"}),
        ("category", {"page", "screen"}),
        ("groupId", {"group"}),
        ("previousId", {"alias"}),
    ],
)
def test_a_set_of_a_call_types_own_field_changes_only_those_calls(field: str, belongs: set[str]) -> None:
    _, messages = shape(ALL_CALLS, {"set": {field: "X", "context.source": "crm"}})
    assert len(messages) == len(ALL_CALLS)
    with_field = {message["type"] for message in messages if message.get(field) == "X"}
    assert with_field == belongs
    assert all(message["context"]["source"] == "crm" for message in messages)  # the rest: every call
    originals = {record["type"]: record.get(field) for record in ALL_CALLS}
    others = [message for message in messages if message["type"] not in belongs]
    assert all(message.get(field) == originals[message["type"]] for message in others)  # untouched
