"""The mapper's fast path (mapping/segment_fast.py) gives exactly what the general path gives,
or declines: crafted edge cases, generated records, and the splitter's output either way."""

from __future__ import annotations

import copy
import io
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_importer.batch.packing import BatchLimits
from segment_importer.job import JobOptions
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.mapping.validation import check_fields
from segment_importer.split.stream_split import CountingSink, split_stream
from segment_importer.track.reasons import Reject
from segment_importer.track.rejects import RejectsWriter
from segment_importer.track.report import ImportReport

TS = "2021-03-04T05:06:07.123Z"
BASE = {"type": "track", "userId": "u1", "event": "Signed Up", "timestamp": TS}


def general(mapper: MessageMapper, number: int, fields: dict[str, Any]) -> dict[str, Any] | str:
    """The general path's message, or its reject reason."""
    try:
        message = mapper.map(number, copy.deepcopy(fields))
        check_fields(message)
    except Reject as error:
        return error.reason
    return message


def assert_same_or_declined(fields: dict[str, Any], number: int = 7, **options: Any) -> dict[str, Any] | None:
    mapper = MessageMapper(JobOptions(**options), None, from_csv=False)
    assert mapper.fast is not None
    before = copy.deepcopy(fields)
    fast = mapper.fast.map(number, fields)
    assert fields == before  # the record is not changed: the general path may still read it
    expected = general(mapper, number, fields)
    if fast is not None:
        assert isinstance(expected, dict), f"the fast path accepted what the general path rejects: {expected}"
        assert orjson.dumps(fast) == orjson.dumps(expected)  # same keys, same order, same values
    return fast


IDENTIFY = {"type": "identify", "userId": "u1", "timestamp": TS}
CASES = [
    BASE,
    {**BASE, "messageId": "ajs-1", "sentAt": TS, "receivedAt": TS, "projectId": "p", "writeKey": "k"},
    {**BASE, "properties": {"plan": "pro"}, "plan": "extra", "extra": 1},
    {**BASE, "userId": "  u1  ", "anonymousId": "  "},
    {**BASE, "userId": "", "anonymousId": "a1"},
    {**BASE, "userId": " "},
    {**BASE, "event": ""},
    {**BASE, "event": "  "},
    {**BASE, "event": 3},
    {**IDENTIFY, "traits": {"plan": "pro"}, "properties": {"a": 1}, "x": 2},
    {"type": "identify", "userId": "u1", "timestamp": TS, "properties": {"a": 1}},
    {"type": "group", "userId": "u1", "timestamp": TS, "groupId": " g1 ", "traits": {"n": 1}},
    {"type": "group", "userId": "u1", "timestamp": TS},
    {"type": "alias", "userId": "u1", "previousId": "p1", "timestamp": TS},
    {"type": "alias", "anonymousId": "a1", "previousId": "p1", "timestamp": TS},
    {"type": "page", "userId": "u1", "name": "Home", "category": "", "timestamp": TS, "properties": {}},
    {"type": "screen", "userId": "u1", "name": None, "timestamp": TS},
    {**BASE, "type": "Track"},
    {**BASE, "type": "unknown"},
    {**BASE, "type": None},
    {**BASE, "type": ["track"]},
    {**BASE, "userId": 42},
    {**BASE, "userId": True},
    {**BASE, "properties": "text"},
    {**BASE, "context": []},
    {**BASE, "integrations": {"All": False, "Mixpanel": True}},
    {**BASE, "integrations": {}},
    {**BASE, "context": {"library": {"name": "analytics.js", "version": "1"}, "ip": "1.2.3.4"}},
    {**BASE, "context": {"library": {"name": "analytics.js"}, "sourceLibrary": "kept"}},
    {**BASE, "context": {"traits": {"a": 1}}, "traits": {"b": 2}},
    {**BASE, "context": {"traits": "text"}, "traits": {"b": 2}},
    {**BASE, "traits": {}},
    {**BASE, "channel": "server"},
    {**BASE, "timestamp": None, "originalTimestamp": TS},
    {**BASE, "timestamp": "", "originalTimestamp": "2021-03-04 05:06:07+01:00"},
    {**BASE, "timestamp": 1614834367},
    {**BASE, "timestamp": "not a time"},
    {**BASE, "timestamp": "1970-01-01T00:00:00.000Z"},
    {**BASE, "timestamp": "2021-02-30T05:06:07.123Z"},
    {"type": "track", "userId": "u1", "event": "E"},
    {**BASE, "messageId": ""},
    {**BASE, "messageId": 0},
    {**BASE, "messageId": 12},
    {**BASE, "messageId": {"nested": 1}},
    {**BASE, "id": "i1", "receivedAt": TS},
    {**BASE, "id": "i1"},
    {**BASE, "user_id": "u2"},
    {**BASE, "rudderId": "r1", "channel": "web"},
    {"type": "identify", "userId": "u1", "rudderId": "r1", "context": {"traits": {"a": 1}}, "timestamp": TS},
    {**BASE, "event_text": "Real Name"},
    {**BASE, "received_at": TS},
    {"type": "track", "event": "E", "userId": "u1", "originalTimestamp": TS, "sentAt": TS, "receivedAt": TS},
    {**BASE, "uuid_ts": TS, "loaded_at": TS, "context_library_name": "x"},
    {"data": {**BASE}, "id": "1"},
    {"event": "E", "properties": {"distinct_id": "d", "time": 1614834367}},
    {**BASE, "event_id": "e1"},
    {**BASE, "_metadata": {"bundled": []}, "version": 2},
]


@pytest.mark.parametrize("fields", CASES, ids=range(len(CASES)))
def test_fast_path_matches_the_general_path(fields: dict[str, Any]) -> None:
    assert_same_or_declined(fields)


def test_the_common_records_take_the_fast_path() -> None:
    assert assert_same_or_declined(BASE) is not None
    assert assert_same_or_declined(CASES[1]) is not None  # archive-only fields are dropped on it too
    assert assert_same_or_declined({**BASE, "properties": "text"}) is None  # the general path rejects


@pytest.mark.parametrize(
    "options",
    [
        {"default_event": "Imported"},
        {"require_timestamp": False},
        {"context": {"app": {"name": "shop"}, "library": {"name": "job"}}},
        {"message_id_salt": "workspace-2"},
        {"source": "segment"},
        {"timestamp_range": ("1960-01-01T00:00:00+00:00", "2100-01-01T00:00:00+00:00")},
    ],
)
def test_job_options_the_fast_path_honours(options: dict[str, Any]) -> None:
    for fields in CASES:
        assert_same_or_declined(fields, **options)


@pytest.mark.parametrize(
    "options",
    [{"columns": {"uid": "userId"}}, {"record_path": "data"}, {"timestamp_format": "%d/%m/%Y"},
     {"integrations": {"All": False}}, {"source": "mixpanel"}],
)  # fmt: skip
def test_jobs_the_fast_path_leaves_to_the_general_path(options: dict[str, Any]) -> None:
    assert MessageMapper(JobOptions(**options), None, from_csv=False).fast is None
    assert MessageMapper(JobOptions(), None, from_csv=True).fast is None


KEYS = ["type", "userId", "anonymousId", "event", "properties", "traits", "context", "integrations",
        "timestamp", "originalTimestamp", "channel", "messageId", "name", "groupId", "previousId",
        "sentAt", "extra", "id", "receivedAt"]  # fmt: skip
VALUES = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "track", "identify", "group", "alias", "page", "x", TS, "2021-03-04 05:06:07"]),
    st.integers(-3, 2_000_000_000),
    st.booleans(),
    st.dictionaries(
        st.sampled_from(["a", "library", "traits", "plan"]), st.integers(0, 3) | st.text(max_size=3)
    ),
    st.lists(st.integers(0, 3), max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, min_size=1, max_size=10))
def test_generated_records(fields: dict[str, Any]) -> None:
    assert_same_or_declined(fields)


def test_split_output_is_the_same_with_and_without_the_fast_path() -> None:
    lines = [orjson.dumps(fields) for fields in CASES * 3]
    blob = b"\n".join(lines) + b"\n"
    results = []
    for transforms in (None, {"types": ["track", "identify", "group", "alias", "page", "screen"]}):
        # A filter that keeps every call type turns the fast path off and changes nothing else.
        job = JobOptions() if transforms is None else JobOptions(**{"filter": transforms})
        report = ImportReport(bucket="b", key="imports/t.ndjson", etag="e", size_bytes=len(blob))
        sink, rejects = _KeepingSink(), RejectsWriter()
        split_stream(io.BytesIO(blob), report, job, BatchLimits(max_messages=10), sink, rejects)
        rejects.close()
        results.append((sink.bodies, dict(rejects.by_reason), report.records_read))
    assert results[0] == results[1]
    assert results[0][2] == len(lines)


class _KeepingSink(CountingSink):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[list[bytes]] = []

    def put(self, batch: Any) -> None:
        super().put(batch)
        self.bodies.append(list(batch.bodies))
