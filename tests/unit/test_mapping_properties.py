"""Property tests: any record shape yields a message or a reasoned reject, never a crash."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from segment_importer.batch.encoding import encode_message
from segment_importer.job import JobOptions
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.mapping.validation import check_fields, check_size
from segment_importer.track.reasons import REASONS, Reject

KEYS = st.sampled_from(
    [
        "type", "userId", "anonymousId", "event", "name", "groupId", "previousId", "timestamp",
        "originalTimestamp", "properties", "traits", "context", "integrations", "messageId", "sentAt",
        "user_id", "event_type", "event_time", "distinct_id", "time", "$insert_id", "insert_id",
        "properties.plan", "traits.email", "context.ip", "plan", "id", "receivedAt", "event_text",
    ]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        ["track", "identify", "page", "screen", "group", "alias", "2021-01-01T00:00:00Z", "1600000000"]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8) | KEYS, inner, max_size=4)
    ),
    max_leaves=12,
)
RECORDS = st.dictionaries(KEYS | st.text(max_size=10), VALUES, max_size=10)


def outcome(record: dict[str, Any], *, from_csv: bool) -> str:
    try:
        message = MessageMapper(JobOptions(), "etag:1", from_csv=from_csv).map(7, record)
        check_fields(message)
        check_size(encode_message(message))
    except Reject as error:
        return error.reason
    assert message["type"] in ("track", "identify", "page", "screen", "group", "alias")
    assert message["userId"] or message["anonymousId"]
    assert 0 < len(message["messageId"]) < 100
    return "ok"


@settings(max_examples=300, deadline=None)
@given(RECORDS)
def test_any_json_record_maps_or_is_rejected_with_a_reason(record: dict[str, Any]) -> None:
    assert outcome(record, from_csv=False) in {"ok", *REASONS}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS | st.text(max_size=10), st.text(max_size=20), max_size=10))
def test_any_csv_row_maps_or_is_rejected_with_a_reason(row: dict[str, str]) -> None:
    assert outcome(row, from_csv=True) in {"ok", *REASONS}
