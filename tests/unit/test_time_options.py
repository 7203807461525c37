"""The job's time options: a zone for times without an offset, a format for dates that are
not ISO 8601, and implausible times rejected unless the job allows their range."""

from __future__ import annotations

from typing import Any

import pytest

from segment_importer.job import JobOptions
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.track.reasons import REASONS, Reject


def time_of(value: Any, *, from_csv: bool = False, **options: Any) -> str:
    record = {"type": "track", "userId": "u1", "event": "E", "timestamp": value}
    return MessageMapper(JobOptions(**options), "f:1", from_csv=from_csv).map(1, record)["timestamp"]


def reason_of(value: Any, **options: Any) -> str:
    with pytest.raises(Reject) as caught:
        time_of(value, **options)
    return caught.value.reason


def test_times_without_an_offset_are_read_in_the_jobs_zone() -> None:
    assert time_of("2021-07-04 12:00:00") == "2021-07-04T12:00:00.000Z"  # UTC unless told
    assert time_of("2021-07-04 12:00:00", timezone="Europe/Berlin") == "2021-07-04T10:00:00.000Z"  # CEST
    assert time_of("2021-01-04 12:00:00", timezone="Europe/Berlin") == "2021-01-04T11:00:00.000Z"  # CET
    # a time with an offset, or an epoch number, is absolute: the zone does not move it
    assert time_of("2021-07-04T12:00:00+02:00", timezone="America/New_York") == "2021-07-04T10:00:00.000Z"
    assert time_of(1625400000, timezone="America/New_York") == "2021-07-04T12:00:00.000Z"


def test_timestamp_format_reads_dates_as_the_export_writes_them() -> None:
    job = {"timestamp_format": "%d/%m/%Y %H:%M", "timezone": "Europe/London"}
    assert time_of("04/03/2021 05:06", **job) == "2021-03-04T05:06:00.000Z"
    assert time_of("04/07/2021 05:06", **job) == "2021-07-04T04:06:00.000Z"  # BST
    assert time_of("2021-03-04T05:06:07Z", **job) == "2021-03-04T05:06:07.000Z"  # ISO still reads
    assert reason_of("31/02/2021 05:06", **job) == "invalid_timestamp"
    assert reason_of("04/03/2021 05:06") == "invalid_timestamp"  # without the format: not a time


@pytest.mark.parametrize(
    "value", [0, "0", 44259.4, "44259.4", "1969-12-31T23:59:59Z", "2150-01-01T00:00:00Z"]
)
def test_implausible_times_are_rejected_with_their_own_reason(value: Any) -> None:
    # An Excel serial day (44259.4 is 2021-03-04) read as epoch seconds is 1970-01-01T12:17.
    assert reason_of(value) == "implausible_timestamp"
    assert "implausible_timestamp" in REASONS


def test_a_job_allows_a_range_of_times() -> None:
    wide = {"timestamp_range": ["1970-01-01T00:00:00+00:00", "2200-01-01"]}
    assert time_of(44259.4, **wide) == "1970-01-01T12:17:39.400Z"
    assert time_of("2150-01-01T00:00:00Z", **wide) == "2150-01-01T00:00:00.000Z"
    assert reason_of("1960-01-01T00:00:00Z", **wide) == "implausible_timestamp"
    assert time_of("1990-01-01T00:00:00Z") == "1990-01-01T00:00:00.000Z"  # the default's first moment


@pytest.mark.parametrize(
    ("value", "moment"),
    [
        ("44261.3958333333", "2021-03-06T09:30"),
        (44261.3958333333, "2021-03-06T09:30"),
        ("44261", "2021-03-06T00:00"),
    ],
)
def test_an_excel_day_number_is_named_as_one_not_sent_to_a_wider_range(value: Any, moment: str) -> None:
    """QA: the advice to widen timestampRange sent a spreadsheet's date as 1970-01-01."""
    fields = {"userId": "u1", "event": "E", "timestamp": value}
    with pytest.raises(Reject) as rejected:
        MessageMapper(JobOptions(), "f:1", from_csv=True).map(1, fields)
    assert rejected.value.reason == "implausible_timestamp"
    assert "Excel day number" in str(rejected.value)
    assert moment in str(rejected.value)
    assert "timestampRange" not in str(rejected.value)
