"""The stable list of reject reason codes. Add codes; never rename or reuse one."""

from __future__ import annotations

REASONS: dict[str, str] = {
    # reading
    "invalid_json": "the record is not valid JSON",
    "not_an_object": "the record is JSON but not an object",
    "invalid_utf8": "the record is not valid UTF-8 text",
    "csv_field_count": "the CSV row has a different number of fields than the header",
    "record_too_large": "the raw record is larger than the reader accepts",
    "csv_unclosed_quote": "a quoted CSV cell spans lines that look like rows: a quote never closed",
    "file_unreadable": "the rest of the file could not be read (truncated or corrupt)",
    # mapping and validation
    "unknown_type": "the call type is not one of track, identify, page, screen, group, alias",
    "missing_user": "neither userId nor anonymousId is present",
    "missing_event": "a track call has no event name",
    "missing_group_id": "a group call has no groupId",
    "missing_previous_id": "an alias call has no previousId",
    "missing_timestamp": "the record has no event time and the job requires one",
    "invalid_timestamp": "the event time cannot be parsed",
    "implausible_timestamp": "the event time is before 1990 or after 2099 (a misread value) and the job's "
    "timestampRange does not allow it",
    "invalid_field": "a field has the wrong shape (e.g. properties is not an object)",
    "message_too_large": "the Segment message is larger than 32 KB",
    # sending
    "rejected_by_segment": "Segment answered 400 for the message",
    # the rejects file itself
    "rejects_omitted": "more rejects than the rejects file holds: counted in the report, not listed",
}
