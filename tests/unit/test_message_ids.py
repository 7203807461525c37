"""Message ids of records without a source id: from their position and content, not the ETag."""

from __future__ import annotations

import uuid

from segment_importer.job import JobOptions
from segment_importer.mapping.mapper import MessageMapper
from segment_importer.mapping.message_ids import message_id_for_content


def content_mapper(**options: object) -> MessageMapper:
    return MessageMapper(JobOptions().merged_with(dict(options)), None, from_csv=False)


def test_a_content_id_is_the_reference_derivation_and_a_uuid5() -> None:
    record = {"userId": "u1", "event": "E", "timestamp": "2021-01-01T00:00:00Z"}
    message = content_mapper().map(7, dict(record))
    assert message["messageId"] == message_id_for_content("", 7, record)
    assert uuid.UUID(message["messageId"]).version == 5


def test_the_id_follows_position_and_content_not_key_order() -> None:
    record = {"userId": "u1", "event": "E", "timestamp": "2021-01-01T00:00:00Z"}
    reordered = {"timestamp": "2021-01-01T00:00:00Z", "event": "E", "userId": "u1"}
    mapper = content_mapper()
    first = mapper.map(7, dict(record))["messageId"]
    assert mapper.map(7, reordered)["messageId"] == first  # the same record, written another way
    assert mapper.map(8, dict(record))["messageId"] != first  # an identical record further on
    corrected = {**record, "event": "F"}
    assert mapper.map(7, corrected)["messageId"] != first  # a corrected record is not deduped away
    assert content_mapper(messageIdSalt="w2").map(7, dict(record))["messageId"] != first


def test_a_source_id_still_wins_and_odd_values_still_get_an_id() -> None:
    mapper = content_mapper()
    archived = {"messageId": "abc", "userId": "u1", "event": "E", "timestamp": "2021-01-01T00:00:00Z"}
    assert mapper.map(1, dict(archived))["messageId"] == mapper.map(9, dict(archived))["messageId"]
    odd = {"userId": "u1", "event": "E", "timestamp": "2021-01-01T00:00:00Z", "n": 2**70, "s": "\ud800"}
    assert mapper.map(3, odd)["messageId"] == message_id_for_content("", 3, odd)
