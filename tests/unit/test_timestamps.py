"""Event times: what real exports write, read as UTC and emitted in Segment's form."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_importer.mapping.timestamps import (
    TimestampError,
    format_timestamp,
    normalize_timestamp,
    parse_timestamp,
)

SEGMENT_FORM = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-03-04T05:06:07+02:00", "2021-03-04T03:06:07.000Z"),
        ("2021-03-04T05:06:07-05:30", "2021-03-04T10:36:07.000Z"),
        ("2021-03-04T05:06:07-0530", "2021-03-04T10:36:07.000Z"),
        ("2021-03-04T05:06:07+0530", "2021-03-03T23:36:07.000Z"),
        ("2021-03-04T05:06:07Z", "2021-03-04T05:06:07.000Z"),
        ("2021-03-04T05:06:07z", "2021-03-04T05:06:07.000Z"),
        ("2021-03-04T05:06:07.250z", "2021-03-04T05:06:07.250Z"),
        ("2021-03-04 05:06:07 UTC", "2021-03-04T05:06:07.000Z"),
        ("2021-03-04 05:06:07.123 UTC", "2021-03-04T05:06:07.123Z"),
        ("2021-03-04 05:06:07.123456 utc", "2021-03-04T05:06:07.123Z"),
        ("2021-03-04 05:06:07+01:00", "2021-03-04T04:06:07.000Z"),
        ("2021-03-04T05:06:07.1Z", "2021-03-04T05:06:07.100Z"),
        ("2021-03-04T05:06:07.12Z", "2021-03-04T05:06:07.120Z"),
        ("2021-03-04T05:06:07.123456Z", "2021-03-04T05:06:07.123Z"),
        # milliseconds are truncated, never rounded up into the next second
        ("2021-03-04T05:06:07.999999Z", "2021-03-04T05:06:07.999Z"),
        ("2021-03-04T05:06:07.123456789Z", "2021-03-04T05:06:07.123Z"),
        # an offset moving the time across midnight and the year
        ("2021-01-01T01:30:00+02:00", "2020-12-31T23:30:00.000Z"),
        ("2020-12-31T22:00:00-03:00", "2021-01-01T01:00:00.000Z"),
        ("  2021-03-04T05:06:07Z  ", "2021-03-04T05:06:07.000Z"),
    ],
)
def test_iso_with_offsets(text: str, expected: str) -> None:
    assert normalize_timestamp(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-03-04T05:06:07", "2021-03-04T05:06:07.000Z"),
        ("2021-03-04 05:06:07", "2021-03-04T05:06:07.000Z"),
        ("2021-03-04 05:06:07.123456", "2021-03-04T05:06:07.123Z"),  # Amplitude's event_time
        ("2021-03-04", "2021-03-04T00:00:00.000Z"),
    ],
)
def test_naive_times_are_utc(text: str, expected: str) -> None:
    assert normalize_timestamp(text) == expected
    assert parse_timestamp(text).utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1609459200, "2021-01-01T00:00:00.000Z"),
        (1609459200.5, "2021-01-01T00:00:00.500Z"),
        (1609459200.123, "2021-01-01T00:00:00.123Z"),
        (99_999_999_999, "5138-11-16T09:46:39.000Z"),  # the largest value read as seconds
        (1609459200123, "2021-01-01T00:00:00.123Z"),  # milliseconds
        (100_000_000_000, "1973-03-03T09:46:40.000Z"),  # the smallest value read as milliseconds
        (1609459200123.0, "2021-01-01T00:00:00.123Z"),
        (1609459200123456, "2021-01-01T00:00:00.123Z"),  # microseconds
        (100_000_000_000_000, "1973-03-03T09:46:40.000Z"),  # the smallest value read as micros
        (-1, "1969-12-31T23:59:59.000Z"),
        (-86400, "1969-12-31T00:00:00.000Z"),
        (-86400.25, "1969-12-30T23:59:59.750Z"),
        (-631152000000, "1950-01-01T00:00:00.000Z"),  # negative milliseconds
    ],
)
def test_epoch_numbers(value: float, expected: str) -> None:
    assert normalize_timestamp(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", "1970-01-01T00:00:00.000Z"),
        ("1609459200", "2021-01-01T00:00:00.000Z"),
        ("1609459200.250", "2021-01-01T00:00:00.250Z"),
        ("1609459200123", "2021-01-01T00:00:00.123Z"),
        ("1609459200123456", "2021-01-01T00:00:00.123Z"),
        ("-86400", "1969-12-31T00:00:00.000Z"),
        ("-631152000000", "1950-01-01T00:00:00.000Z"),
        (" 1609459200 ", "2021-01-01T00:00:00.000Z"),
    ],
)
def test_epoch_digit_strings(text: str, expected: str) -> None:
    assert normalize_timestamp(text) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "yesterday",
        "not a time",
        "2021-13-01T00:00:00Z",
        "2021-02-30",
        "2021-03-04T25:00:00Z",
        "2021-03-04T05:06:07+25:00",
        "1e9",
        "+1609459200",
        "1609459200.1.2",
        "12:30",
        "nan",
        "inf",
        float("nan"),
        float("inf"),
        -float("inf"),
        10**400,  # an int too large for a float
        "1" * 400,  # a digit string too large for any date
        1e300,
        None,
        [],
        {"time": 1},
        b"1609459200",
    ],
)
def test_garbage_raises(value: object) -> None:
    with pytest.raises(TimestampError):
        parse_timestamp(value)


@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_rejected(value: bool) -> None:
    # bool is an int subclass: True must not become 1970-01-01T00:00:01
    with pytest.raises(TimestampError, match="boolean"):
        parse_timestamp(value)


def test_timestamp_error_is_a_value_error() -> None:
    assert issubclass(TimestampError, ValueError)


def test_parse_returns_aware_utc() -> None:
    moment = parse_timestamp("2021-03-04T05:06:07.123+02:00")
    assert moment == datetime(2021, 3, 4, 3, 6, 7, 123000, tzinfo=UTC)
    assert moment.tzinfo is not None
    assert moment.utcoffset() == timedelta(0)


def test_format_is_utc_with_milliseconds_and_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2021, 3, 4, 5, 6, 7, 891234, tzinfo=plus_two)) == (
        "2021-03-04T03:06:07.891Z"
    )
    assert format_timestamp(datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)) == "2021-03-04T05:06:07.000Z"
    assert format_timestamp(datetime(1970, 1, 1, tzinfo=UTC)) == "1970-01-01T00:00:00.000Z"


aware_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2100, 12, 30),
    timezones=st.builds(
        lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-(23 * 60 + 59), 23 * 60 + 59)
    ),
)


def _expected(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    utc = utc.replace(microsecond=utc.microsecond // 1000 * 1000)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _offset_text(moment: datetime, *, colon: bool) -> str:
    offset = moment.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{rest:02d}" if colon else f"{sign}{hours:02d}{rest:02d}"


@settings(max_examples=200, deadline=None)
@given(moment=aware_datetimes, style=st.sampled_from(["iso", "space", "basic-offset", "utc-z", "utc-name"]))
def test_round_trip_over_offsets(moment: datetime, style: str) -> None:
    local = moment.replace(tzinfo=None).isoformat()
    if style == "iso":
        text = moment.isoformat()
    elif style == "space":
        text = moment.isoformat(sep=" ")
    elif style == "basic-offset":
        text = local + _offset_text(moment, colon=False)
    elif style == "utc-z":
        text = moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    else:
        text = moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ") + " UTC"
    result = normalize_timestamp(text)
    assert SEGMENT_FORM.fullmatch(result)
    assert result == _expected(moment)
    # the parsed instant is the original one, to the microsecond
    assert parse_timestamp(text) == moment


@settings(max_examples=200, deadline=None)
@given(millis=st.integers(100_000_000_000, 4_102_444_800_000))  # 1973 .. 2100
def test_epoch_milliseconds_round_trip(millis: int) -> None:
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    assert normalize_timestamp(millis) == format_timestamp(expected)
    assert normalize_timestamp(str(millis)) == format_timestamp(expected)


@settings(max_examples=200, deadline=None)
@given(micros=st.integers(100_000_000_000_000, 4_102_444_800_000_000))
def test_epoch_microseconds_keep_their_millisecond(micros: int) -> None:
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    assert normalize_timestamp(micros) == format_timestamp(expected)


@settings(max_examples=200, deadline=None)
@given(seconds=st.integers(-2_000_000_000, 4_102_444_800))
def test_epoch_seconds_round_trip(seconds: int) -> None:
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    assert normalize_timestamp(seconds) == format_timestamp(expected)
    assert normalize_timestamp(str(seconds)) == format_timestamp(expected)


@pytest.mark.parametrize("text", ["¹", "٣٤", "1²"])
def test_unicode_digits_are_not_epochs(text: str) -> None:
    """str.isdigit() accepts them but float() does not: a reject, never a crash."""
    with pytest.raises(TimestampError):
        parse_timestamp(text)
