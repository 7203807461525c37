"""Column names as people write them ("User ID", "Event Name", "created_at") map to Segment's fields."""

from __future__ import annotations

from segment_importer.job import JobOptions

from .test_mapping import map_one


def test_spreadsheet_headers_with_spaces_and_capitals() -> None:
    row = {
        "User ID": "007",
        "Event Name": "Signed Up",
        "Timestamp": "2021-01-01T10:00:00+01:00",
        "Plan": "pro",
    }
    message = map_one(row, from_csv=True)
    assert message["userId"] == "007"  # an id is kept as written, not coerced to 7
    assert message["event"] == "Signed Up"
    assert message["timestamp"] == "2021-01-01T09:00:00.000Z"
    assert message["properties"] == {"Plan": "pro"}


def test_a_created_at_column_is_the_event_time_when_there_is_no_timestamp() -> None:
    message = map_one({"user_id": 5, "event": "Ordered", "created_at": "2020-02-03 04:05:06"})
    assert message["userId"] == "5"
    assert message["timestamp"] == "2020-02-03T04:05:06.000Z"
    assert "created_at" not in message.get("properties", {})


def test_a_time_like_column_stays_data_when_the_record_has_a_timestamp() -> None:
    record = {"userId": "u", "event": "E", "timestamp": "2020-01-01T00:00:00Z", "Time": "2019-01-01"}
    message = map_one(record)
    assert message["timestamp"] == "2020-01-01T00:00:00.000Z"
    assert message["properties"] == {"Time": "2019-01-01"}


def test_a_time_named_field_that_is_not_a_time_stays_a_trait() -> None:
    message = map_one({"type": "identify", "userId": "u", "time": "mornings"})
    assert message["traits"] == {"time": "mornings"}
    assert "timestamp" not in message


def test_canonical_fields_win_over_their_spellings() -> None:
    record = {"userId": "real", "User ID": "other", "event": "E", "timestamp": 1_600_000_000}
    message = map_one(record)
    assert message["userId"] == "real"
    assert message["properties"] == {"User ID": "other"}


def test_posthog_and_ga4_shaped_rows() -> None:
    posthog = map_one({"event": "$pageview", "distinct_id": "ph-1", "timestamp": "2023-05-01T00:00:00Z"})
    assert posthog["userId"] == "ph-1"
    ga4 = map_one(
        {"event_name": "purchase", "user_pseudo_id": "123.456", "event_timestamp": 1_682_899_200_000_000}
    )
    assert (ga4["event"], ga4["anonymousId"]) == ("purchase", "123.456")
    assert ga4["timestamp"] == "2023-05-01T00:00:00.000Z"  # microseconds since the epoch


def test_a_windows_1252_spreadsheet_reads_with_the_encoding_option() -> None:
    import io

    from segment_importer.batch.packing import BatchLimits
    from segment_importer.split.splitter import CountingSink, split_stream
    from segment_importer.track.rejects import RejectsWriter
    from segment_importer.track.report import ImportReport

    data = "User ID,Event,Timestamp,City\r\nu1,Viewed,2021-01-01T00:00:00Z,Zürich €\r\n".encode("cp1252")

    def split(job: JobOptions) -> tuple[ImportReport, RejectsWriter]:
        report = ImportReport(bucket="b", key="imports/excel.csv", etag="e", size_bytes=len(data))
        rejects = RejectsWriter()
        split_stream(io.BytesIO(data), report, job, BatchLimits(), CountingSink(), rejects)
        return report, rejects

    as_utf8, _ = split(JobOptions())
    assert as_utf8.rejected_by_reason == {"invalid_utf8": 1}  # a clear reject, not mojibake
    as_cp1252, _ = split(JobOptions(encoding="cp1252"))
    assert (as_cp1252.messages_queued, as_cp1252.rejected) == (1, 0)


def test_a_timestamp_column_wins_over_a_created_at_column_before_it_or_after_it() -> None:
    for row in (
        {"userId": "u1", "event": "E", "Timestamp": "2022-01-01 00:00:00", "created_at": "2023-01-01"},
        {"userId": "u1", "event": "E", "created_at": "2023-01-01", "Timestamp": "2022-01-01 00:00:00"},
    ):
        message = map_one(row, from_csv=True)
        assert message["timestamp"] == "2022-01-01T00:00:00.000Z"
        assert message["properties"] == {"created_at": "2023-01-01"}


def test_an_event_type_column_next_to_an_event_column_is_data_not_amplitude() -> None:
    row = {"user_id": "u1", "event": "Order Completed", "event_time": "2021-03-04 10:00:00"}
    message = map_one({**row, "event_type": "ecommerce", "plan": "pro"}, from_csv=True)
    assert message["event"] == "Order Completed"
    assert message["timestamp"] == "2021-03-04T10:00:00.000Z"
    assert message["properties"] == {"event_type": "ecommerce", "plan": "pro"}


def test_a_posthog_line_is_not_taken_for_mixpanel() -> None:
    line = {
        "event": "$pageview",
        "distinct_id": "ph-1",
        "timestamp": "2023-05-01T00:00:00Z",
        "properties": {"distinct_id": "ph-1", "$current_url": "https://example.com"},
    }
    message = map_one(line)
    assert (message["userId"], message["timestamp"]) == ("ph-1", "2023-05-01T00:00:00.000Z")
