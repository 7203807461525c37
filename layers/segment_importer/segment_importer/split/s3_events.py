"""The objects an S3 event notification names: bucket, key (decoded), ETag and size.

S3 URL-encodes keys in notifications ('+' for a space, %XX for the rest), so every reader of
an S3 event (the splitter, and the split failures function reading the event back out of
Lambda's invocation record) decodes them here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event


@dataclass(frozen=True, slots=True)
class NotifiedObject:
    bucket: str
    key: str  # decoded
    etag: str  # as the notification gives it (no quotes); empty if it gives none
    size: int


def notified_objects(event: Mapping[str, Any]) -> list[NotifiedObject]:
    """Every object of an S3 event notification (one per record)."""
    return [
        NotifiedObject(
            bucket=record.s3.bucket.name,
            key=unquote_plus(record.s3.get_object.key),
            etag=(record.s3.get_object.etag or "").strip('"'),
            size=int(record.s3.get_object.get("size") or 0),
        )
        for record in S3Event(dict(event)).records
    ]


def is_s3_event(event: Any) -> bool:
    """Whether `event` is an S3 event notification (records from aws:s3)."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(record, Mapping) and record.get("eventSource") == "aws:s3" for record in records)
    )
