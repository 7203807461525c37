"""Required fields per call type, and message size as segment-analytics-python sends it."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_importer.batch.encoding import (
    MAX_MESSAGE_BYTES,
    EncodedMessage,
    encode_message,
    wire_size_bound,
)
from segment_importer.mapping.validation import check_fields, check_size
from segment_importer.track.reasons import Reject


def exact_wire_size(message: dict[str, Any]) -> int:
    """What segment-analytics-python measures and sends for one message."""
    return len(json.dumps(message).encode())


def reason_of(message: dict[str, Any]) -> str:
    with pytest.raises(Reject) as caught:
        check_fields(message)
    return caught.value.reason


# --- check_fields ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        {"type": "track", "userId": "u1", "event": "E"},
        {"type": "track", "anonymousId": "a1", "event": "E"},
        {"type": "identify", "userId": "u1"},
        {"type": "identify", "anonymousId": "a1", "traits": {}},
        {"type": "page", "anonymousId": "a1"},
        {"type": "screen", "userId": "u1"},
        {"type": "group", "userId": "u1", "groupId": "g1"},
        {"type": "alias", "userId": "u2", "previousId": "a1"},
    ],
)
def test_valid_messages_pass(message: dict[str, Any]) -> None:
    check_fields(message)


@pytest.mark.parametrize("call_type", ["track", "identify", "page", "screen", "group", "alias"])
@pytest.mark.parametrize("ids", [{}, {"userId": ""}, {"anonymousId": ""}, {"userId": None}])
def test_missing_user(call_type: str, ids: dict[str, Any]) -> None:
    message = {"type": call_type, "event": "E", "groupId": "g1", "previousId": "p1", **ids}
    assert reason_of(message) == "missing_user"


@pytest.mark.parametrize("event", [None, "", "   ", 5, ["E"]])
def test_track_missing_event(event: Any) -> None:
    message: dict[str, Any] = {"type": "track", "userId": "u1"}
    if event is not None:
        message["event"] = event
    assert reason_of(message) == "missing_event"


@pytest.mark.parametrize("group_id", [None, "", " "])
def test_group_missing_group_id(group_id: Any) -> None:
    message: dict[str, Any] = {"type": "group", "userId": "u1"}
    if group_id is not None:
        message["groupId"] = group_id
    assert reason_of(message) == "missing_group_id"


@pytest.mark.parametrize("previous_id", [None, "", "\t"])
def test_alias_missing_previous_id(previous_id: Any) -> None:
    message: dict[str, Any] = {"type": "alias", "userId": "u2"}
    if previous_id is not None:
        message["previousId"] = previous_id
    assert reason_of(message) == "missing_previous_id"


def test_alias_needs_user_id_not_just_anonymous_id() -> None:
    message = {"type": "alias", "anonymousId": "a1", "previousId": "p1"}
    assert reason_of(message) == "missing_user"


def test_validation_error_has_reason_and_detail() -> None:
    with pytest.raises(Reject) as caught:
        check_fields({"type": "group", "userId": "u1"})
    assert caught.value.reason == "missing_group_id"
    assert "groupId" in caught.value.detail
    assert isinstance(caught.value, ValueError)


# --- encode_message and the wire size -------------------------------------------------------

# Text with what changes size on the wire: astral and BMP non-ASCII, U+FFFE/U+FFFF, commas and
# colons inside strings, control characters and DEL (escaped by json.dumps, not by orjson).
text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from([",", ":", '"', "\\", "\x7f", "\x00", "\n", "\ufffe", "\uffff", "😀", "é", "€"]),
    ),
    max_size=30,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e-7, 2.5e-6, 1.5e-9, 1e-5, 1e16, 1e-100]),
    text,
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(text, children, max_size=5)),
    max_leaves=30,
)
messages = st.dictionaries(text, values, min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(message=messages)
def test_wire_bound_is_never_below_the_exact_size(message: dict[str, Any]) -> None:
    encoded = encode_message(message)
    exact = exact_wire_size(message)
    assert encoded.wire_bytes >= exact
    assert wire_size_bound(encoded.body) >= exact
    # the body is the message, exactly, for orjson and for the json module
    assert orjson.loads(encoded.body) == message
    assert json.loads(encoded.body) == message
    assert b"\xef\xbf\xbe" not in encoded.body
    assert b"\xef\xbf\xbf" not in encoded.body


@pytest.mark.parametrize(
    "message",
    [
        {"a": "\x7f" * 100},
        {"a": 1e-7},
        {"p": [1e-9, 2.5e-6, 1.5e-8]},
        {"a": "😀" * 50},
        {"a": "é€" * 50},
        {"a": "\ufffe\uffff" * 10},
        {"a,b": "c:d", "e": [",", ":"]},
    ],
)
def test_wire_bound_examples(message: dict[str, Any]) -> None:
    assert encode_message(message).wire_bytes >= exact_wire_size(message)


def test_ascii_body_is_compact_orjson() -> None:
    message = {"type": "track", "userId": "u1", "event": "E", "properties": {"a": [1, 2]}}
    encoded = encode_message(message)
    assert encoded.body == b'{"type":"track","userId":"u1","event":"E","properties":{"a":[1,2]}}'
    # every , and : gains a space on the wire, nothing else changes
    assert encoded.wire_bytes == exact_wire_size(message) == len(encoded.body) + 9


def test_non_ascii_body_stays_utf8() -> None:
    encoded = encode_message({"name": "Zoë 😀"})
    assert encoded.body == '{"name":"Zoë 😀"}'.encode()
    # ë: 2 bytes -> 6; 😀: 4 bytes -> 12; bound: 3 bytes per non-ASCII byte
    assert exact_wire_size({"name": "Zoë 😀"}) == len(encoded.body) + 1 + 4 + 8
    assert encoded.wire_bytes == len(encoded.body) + 1 + 2 * 6


def test_sqs_unsafe_characters_are_escaped() -> None:
    message = {"a": "x\ufffey\uffffz", "\ufffe": ["\uffff"], "é": 1}
    encoded = encode_message(message)
    assert b"\xef\xbf\xbe" not in encoded.body
    assert b"\xef\xbf\xbf" not in encoded.body
    assert b"\\ufffe" in encoded.body
    assert b"\\uffff" in encoded.body
    assert orjson.loads(encoded.body) == message
    assert json.loads(encoded.body.decode()) == message
    assert encoded.body.decode("utf-8")  # still valid UTF-8 text


@pytest.mark.parametrize(
    "message",
    [
        {"a": "\ud800"},
        {"a": "x\udfffy"},
        {"\udc00": 1},
        {"a": {"b": ["ok", "\ud83d"]}},
    ],
)
def test_lone_surrogates_are_rejected_as_invalid_field(message: dict[str, Any]) -> None:
    with pytest.raises(Reject) as caught:
        encode_message(message)
    assert caught.value.reason == "invalid_field"


# --- check_size -----------------------------------------------------------------------------


def padded(size: int, filler: str = "x") -> dict[str, Any]:
    """A track message whose exact wire size is `size` bytes (ASCII filler)."""
    message = {"type": "track", "userId": "u1", "event": "E", "properties": {"pad": ""}}
    base = exact_wire_size(message)
    message["properties"]["pad"] = filler * (size - base)
    assert exact_wire_size(message) == size
    return message


def test_33_kb_ascii_message_is_rejected() -> None:
    message = padded(33 * 1024)
    encoded = encode_message(message)
    assert encoded.wire_bytes == 33 * 1024  # the exact path was taken
    with pytest.raises(Reject) as caught:
        check_size(encoded)
    assert caught.value.reason == "message_too_large"
    assert "x" * 100 not in caught.value.detail  # no record data in the text


def test_exactly_32_kb_is_accepted_and_one_more_byte_is_not() -> None:
    check_size(encode_message(padded(MAX_MESSAGE_BYTES)))
    with pytest.raises(Reject):
        check_size(encode_message(padded(MAX_MESSAGE_BYTES + 1)))


def test_bound_over_limit_but_exact_under_is_accepted() -> None:
    # commas and colons inside strings count in the bound but do not grow on the wire
    message = padded(30_000, filler=",")
    encoded = encode_message(message)
    assert wire_size_bound(encoded.body) > MAX_MESSAGE_BYTES
    assert encoded.wire_bytes == 30_000
    check_size(encoded)


def test_non_ascii_message_measured_exactly_above_the_bound() -> None:
    # 12,000 "é": 24,000 UTF-8 bytes, bound 72,000+, exact 72,000+ (\u00e9 each): rejected
    message = {"type": "identify", "userId": "u1", "traits": {"name": "é" * 12_000}}
    encoded = encode_message(message)
    assert encoded.wire_bytes == exact_wire_size(message) > MAX_MESSAGE_BYTES
    with pytest.raises(Reject):
        check_size(encoded)
    # 4,000 "é": 8,000 body bytes, 24,000+ on the wire: accepted
    small = {"type": "identify", "userId": "u1", "traits": {"name": "é" * 4_000}}
    check_size(encode_message(small))


def test_check_size_uses_wire_bytes_not_body_length() -> None:
    check_size(EncodedMessage(b"{}", MAX_MESSAGE_BYTES))
    with pytest.raises(Reject):
        check_size(EncodedMessage(b"{}", MAX_MESSAGE_BYTES + 1))


def test_a_reject_reason_must_be_a_known_code() -> None:
    from segment_importer.track import reasons

    assert Reject(reasons.MISSING_USER, "no ids").detail == "no ids"
    with pytest.raises(ValueError, match="unknown reject reason"):
        Reject("missing_usr", "a typo")
    codes = [value for name, value in vars(reasons).items() if name.isupper() and isinstance(value, str)]
    assert sorted(codes) == sorted(reasons.REASONS)  # one constant per code, nothing else
