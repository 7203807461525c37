"""The stable list of reject reason codes, and `Reject`, the one error a record that cannot be
sent raises. Add codes; never rename or reuse one.

Readers yield unreadable records with one of these codes; mapping, validation and encoding
raise `Reject(reason, detail)`; the rejects file and the report count by code.
"""

from __future__ import annotations

# reading
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
INVALID_UTF8 = "invalid_utf8"
CSV_FIELD_COUNT = "csv_field_count"
RECORD_TOO_LARGE = "record_too_large"
CSV_UNCLOSED_QUOTE = "csv_unclosed_quote"
FILE_UNREADABLE = "file_unreadable"
SNOWPLOW_FIELD_COUNT = "snowplow_field_count"
SNOWPLOW_INVALID_VALUE = "snowplow_invalid_value"
# mapping and validation
UNKNOWN_TYPE = "unknown_type"
MISSING_USER = "missing_user"
MISSING_EVENT = "missing_event"
MISSING_GROUP_ID = "missing_group_id"
MISSING_PREVIOUS_ID = "missing_previous_id"
MISSING_TIMESTAMP = "missing_timestamp"
INVALID_TIMESTAMP = "invalid_timestamp"
IMPLAUSIBLE_TIMESTAMP = "implausible_timestamp"
INVALID_FIELD = "invalid_field"
MESSAGE_TOO_LARGE = "message_too_large"
# sending
REJECTED_BY_SEGMENT = "rejected_by_segment"
REFUSED_WITH_OTHERS = "refused_with_others"
# the rejects file itself
REJECTS_OMITTED = "rejects_omitted"

REASONS: dict[str, str] = {
    INVALID_JSON: "the record is not valid JSON",
    NOT_AN_OBJECT: "the record is JSON but not an object",
    INVALID_UTF8: "the record is not valid UTF-8 text",
    CSV_FIELD_COUNT: "the CSV row has a different number of fields than the header",
    RECORD_TOO_LARGE: "the raw record is larger than the reader accepts",
    CSV_UNCLOSED_QUOTE: "a quoted CSV cell spans lines that look like rows: a quote never closed",
    FILE_UNREADABLE: "the rest of the file could not be read (truncated or corrupt)",
    SNOWPLOW_FIELD_COUNT: "the Snowplow enriched TSV line does not have the enriched event's 131 fields",
    SNOWPLOW_INVALID_VALUE: "a field of the Snowplow enriched event cannot be read as its type "
    "(a timestamp, number, boolean, UUID or self-describing JSON)",
    UNKNOWN_TYPE: "the call type is not one of track, identify, page, screen, group, alias",
    MISSING_USER: "neither userId nor anonymousId is present",
    MISSING_EVENT: "a track call has no event name",
    MISSING_GROUP_ID: "a group call has no groupId",
    MISSING_PREVIOUS_ID: "an alias call has no previousId",
    MISSING_TIMESTAMP: "the record has no event time and the job requires one",
    INVALID_TIMESTAMP: "the event time cannot be parsed",
    IMPLAUSIBLE_TIMESTAMP: "the event time is before 1990 or after 2099 (a misread value) and the job's "
    "timestampRange does not allow it",
    INVALID_FIELD: "a field has the wrong shape (e.g. properties is not an object), or a job's rename "
    "and a key of the record would fill one field",
    MESSAGE_TOO_LARGE: "the Segment message is larger than 32 KB",
    REJECTED_BY_SEGMENT: "Segment answered 400 for the message (or a proxy in front of it 413: the "
    "detail names the status)",
    REFUSED_WITH_OTHERS: (
        "Segment answered 400 (or a proxy 413) for a group holding the message; too many were refused to "
        "isolate each"
    ),
    REJECTS_OMITTED: "more rejects than the rejects file holds: counted in the report, not listed",
}


class Reject(ValueError):
    """A record that cannot become a message Segment keeps: `reason` is a code of REASONS,
    `detail` says why in words that never contain record content. A ValueError, as the
    MappingError, ValidationError and EncodingError it replaces were."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:  # a typo would start a reason no report explains
            raise ValueError(f"unknown reject reason {reason!r}")
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
