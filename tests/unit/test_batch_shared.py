"""A Segment HTTP API /batch body's top-level `context` and `integrations` are merged into
every message of its `batch`, as Segment does: key by key, the message's own keys win."""

from __future__ import annotations

import gzip
import io

import orjson
import pytest

from segment_importer.job import JobOptions
from segment_importer.read import batch_shared
from segment_importer.read.formats import open_records
from segment_importer.split.continuation import PartBudget
from segment_importer.split.stream_split import split_records
from segment_importer.track.rejects import RejectsWriter
from segment_importer.track.report import ImportReport
from tests.unit.test_part_boundaries import LIMITS, Batches

SHARED = {
    "context": {"device": {"type": "phone"}, "ip": "9.9.9.9"},
    "integrations": {"All": False, "Amplitude": True},
}
MESSAGES = [
    {"type": "track", "userId": "u1", "event": "A"},
    {"type": "track", "userId": "u2", "event": "B", "context": {"ip": "1.2.3.4"}},
    {"type": "track", "userId": "u3", "event": "C", "integrations": {"Mixpanel": True, "All": True}},
    {"type": "track", "userId": "u4", "event": "D", "context": "not an object"},
]
MERGED = [
    {**MESSAGES[0], **SHARED},
    {
        **MESSAGES[1],
        "context": {"device": {"type": "phone"}, "ip": "1.2.3.4"},
        "integrations": SHARED["integrations"],
    },
    {
        **MESSAGES[2],
        "context": SHARED["context"],
        "integrations": {"All": True, "Amplitude": True, "Mixpanel": True},
    },
    {**MESSAGES[3], "integrations": SHARED["integrations"]},
]


def body(*, shared_first: bool, messages: list[dict] = MESSAGES, pretty: bool = False) -> bytes:
    document = {**SHARED, "batch": messages} if shared_first else {"batch": messages, **SHARED}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 if pretty else 0)


def read(data: bytes, key: str = "batch.json") -> tuple[list[dict], list[str]]:
    stream = open_records(io.BytesIO(data), key)
    fields = [record.fields for record in stream]
    return fields, stream.warnings


@pytest.mark.parametrize("shared_first", [True, False])
@pytest.mark.parametrize("pretty", [True, False])
def test_shared_keys_before_or_after_the_batch_are_merged_message_wins(
    shared_first: bool, pretty: bool
) -> None:
    fields, warnings = read(body(shared_first=shared_first, pretty=pretty))
    assert fields == MERGED
    assert warnings == []


def test_shared_keys_of_a_gzipped_body_are_merged() -> None:
    fields, _ = read(gzip.compress(body(shared_first=False)), "batch.json.gz")
    assert fields == MERGED


def test_a_body_without_shared_keys_is_unchanged() -> None:
    fields, warnings = read(orjson.dumps({"batch": MESSAGES}))
    assert fields == MESSAGES
    assert warnings == []


def test_a_body_too_large_to_read_ahead_warns_and_its_records_still_come(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch_shared, "SHARED_READ_LIMIT", 100)
    data = body(shared_first=False)
    assert len(data) > 100
    fields, warnings = read(data)
    assert fields == MESSAGES
    (warning,) = warnings
    assert "'context'/'integrations'" in warning
    assert "larger than 100 bytes" in warning


def test_a_broken_body_warns_that_its_shared_keys_were_not_read() -> None:
    stream = open_records(io.BytesIO(body(shared_first=True)[:-40]), "batch.json")
    records = list(stream)
    assert [record.fields for record in records[:3]] == MESSAGES[:3]
    assert records[-1].reason == "file_unreadable"
    assert any("not valid JSON" in warning for warning in stream.warnings)


def test_a_shared_key_that_is_not_an_object_is_reported_not_merged() -> None:
    fields, warnings = read(orjson.dumps({"batch": MESSAGES[:1], "context": ["x"]}))
    assert fields == MESSAGES[:1]
    assert any("'context' is not an object" in warning for warning in warnings)


def test_continued_parts_reopening_the_body_still_merge() -> None:
    """A JSON array is not resumable: a continued part re-reads the file from its start and
    skips the records an earlier part took. Those parts still merge the shared keys."""
    messages = [
        {
            "type": "track",
            "userId": f"u{n}",
            "event": "E",
            "timestamp": "2021-01-01T00:00:00Z",
            "properties": {"pad": "x" * 300},
        }
        for n in range(600)
    ]
    data = body(shared_first=False, messages=messages)
    report, stop, kept, parts = ImportReport("b", "batch.json"), None, {}, 0
    while True:
        budget = PartBudget(remaining_seconds=lambda: 900.0, max_records=200)
        sink = Batches()
        records = open_records(io.BytesIO(data), "batch.json")
        after = stop.after_record if stop else 0
        stop = split_records(
            records, report, JobOptions(), LIMITS, sink, RejectsWriter(), after_record=after, budget=budget
        )
        kept.update(sink.kept)
        parts += 1
        if stop is None:
            break
    assert parts >= 3
    sent = [orjson.loads(message) for bodies in kept.values() for message in bodies]
    assert len(sent) == 600, report.rejected_by_reason
    for message in sent:
        assert message["context"]["device"] == {"type": "phone"}
        assert message["integrations"] == {"All": False, "Amplitude": True}
