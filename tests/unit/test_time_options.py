"""The job's time options: a zone for times without an offset, a format for dates that are
not ISO 8601, and implausible times rejected unless the job allows their range."""

from __future__ import annotations

import io
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


@pytest.mark.parametrize("value", ["44261,3958", " 44261,3958333 "])
def test_an_excel_day_number_with_a_decimal_comma_is_named_as_one(value: str) -> None:
    """QA2 O10: `44261,3958` (a `;` spreadsheet's unformatted date) was only "not an ISO 8601 time"."""
    fields = {"userId": "u1", "event": "E", "timestamp": value}
    with pytest.raises(Reject) as rejected:
        MessageMapper(JobOptions(), "f:1", from_csv=True, decimal_comma=True).map(1, fields)
    assert rejected.value.reason == "invalid_timestamp"
    assert "looks like an Excel day number (44261.4 is 2021-03-06T09:" in str(rejected.value)


def test_other_times_with_a_comma_are_still_not_iso() -> None:
    for value in ("4426,3958", "2021,03", "44261,3958,1"):
        with pytest.raises(Reject) as rejected:
            time_of(value, from_csv=True)
        assert rejected.value.detail == "not an ISO 8601 time"


def test_an_excel_day_number_a_widened_range_takes_is_warned_of() -> None:
    """QA2 O11: with timestampRange from 1970, 44261.3958 went out as 1970-01-01T12:17 without a word."""
    from segment_importer.batch.packing import BatchLimits
    from segment_importer.split.splitter import CountingSink, split_stream
    from segment_importer.track.rejects import RejectsWriter
    from segment_importer.track.report import ImportReport

    def warnings(rows: str, **options: Any) -> list[str]:
        data = ("userId,event,timestamp\n" + rows).encode()
        report = ImportReport(bucket="b", key="imports/x.csv", etag="e", size_bytes=len(data))
        split_stream(
            io.BytesIO(data), report, JobOptions(**options), BatchLimits(), CountingSink(), RejectsWriter()
        )
        return report.warnings

    wide = {"timestamp_range": ["1970-01-01", "2100-01-01"]}
    rows = "u1,E,44261.3958\nu2,E,44262\nu3,E,2021-03-04T05:06:07Z\nu4,E,1614834367\n"
    [warning] = warnings(rows, **wide)
    assert warning.startswith("2 records have a time that looks like an Excel day number")
    assert "taken only because timestampRange allows 1970" in warning
    assert (
        warnings("u1,E,1970-01-01T12:00:00Z\nu4,E,1614834367\n", **wide) == []
    )  # ISO text, epoch: as written
