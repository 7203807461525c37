"""The messageId a test expects for a record with a source id (the export's own event id)."""

from __future__ import annotations

from typing import Any

from segment_importer.mapping.message_ids import message_id_for_source_id, told_apart


def shared_id(source: str, message: dict[str, Any], salt: str = "") -> str:
    """A source id is taken with the message's event, user and time (`SharedIds`), so
    distinct events sharing an export id never merge into one Segment message."""
    return message_id_for_source_id(salt, f"{source}|{told_apart(message)}")
