"""The rejects file: every record that is not sent, with its number, reason and content.

It holds personal data (the records themselves), so it lives under its own prefix with a
lifecycle rule, and nothing from it is logged. Lines are NDJSON:
`{"number": 12, "reason": "missing_user", "message": "...", "record": {...} or "raw text"}`.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from typing import Any

import orjson

from segment_importer.reasons import REASONS

# Rejects stay in memory up to this size, then spill to local disk (Lambda's /tmp).
_SPOOL_BYTES = 8 * 1024 * 1024


class RejectsWriter:
    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - closed in upload/close
        self.by_reason: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def add(self, number: int | None, reason: str, detail: str | None, record: Any) -> None:
        self.by_reason[reason] += 1
        line = {
            "number": number,
            "reason": reason,
            "message": detail or REASONS.get(reason, reason),
            "record": record,
        }
        self._file.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS))

    def upload(self, s3: Any, bucket: str, key: str) -> bool:
        """Write the rejects object if there is anything in it; returns whether it wrote."""
        if not self.total:
            return False
        self._file.seek(0)
        s3.upload_fileobj(self._file, bucket, key, ExtraArgs={"ContentType": "application/x-ndjson"})
        return True

    def close(self) -> None:
        self._file.close()
