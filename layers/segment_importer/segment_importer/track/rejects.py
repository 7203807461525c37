"""The rejects file: every record that is not sent, with its number, reason and content.

It holds personal data (the records themselves), so it lives under its own prefix with a
lifecycle rule, and nothing from it is logged. Lines are NDJSON:
`{"number": 12, "reason": "missing_user", "message": "...", "record": {...} or "raw text"}`.

The file is bounded: a bad line of two bytes makes a reject line of about a hundred, so a
small file of garbage would fill Lambda's /tmp. Past `max_bytes`, rejects are still counted
(`by_reason`, and `omitted`) but not listed, and the file ends with one line saying how many
were left out (reason `rejects_omitted`).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from typing import Any

import orjson

from segment_importer.track.reasons import REASONS, REJECTS_OMITTED

# Rejects stay in memory up to this size, then spill to local disk (Lambda's /tmp).
_SPOOL_BYTES = 8 * 1024 * 1024
# orjson writes at most 255 levels; a record nested deeper is kept cut at this depth.
_MAX_DEPTH = 200
_TOO_DEEP = f"(nested deeper than {_MAX_DEPTH} levels: cut here)"
_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
# Half of the splitter's EphemeralStorage (template.yaml): the rest of /tmp stays usable.
MAX_REJECTS_BYTES = 1 << 30


class RejectsWriter:
    def __init__(self, *, max_bytes: int = MAX_REJECTS_BYTES) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - closed in upload/close
        self.by_reason: Counter[str] = Counter()
        self.max_bytes = max_bytes
        self.written_bytes = 0
        self.omitted = 0  # rejects counted in by_reason but not listed (over max_bytes)

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    def add(self, number: int | None, reason: str, detail: str | None, record: Any) -> None:
        self.by_reason[reason] += 1
        if self.written_bytes >= self.max_bytes:
            self.omitted += 1
            return
        line = {
            "number": number,
            "reason": reason,
            "message": detail or REASONS.get(reason, reason),
            "record": record,
        }
        try:
            data = orjson.dumps(line, option=_OPTIONS)
        except orjson.JSONEncodeError:  # too deep, or a value JSON cannot hold: keep what can be kept
            data = orjson.dumps({**line, "record": _writable(record, _MAX_DEPTH)}, option=_OPTIONS)
        self._file.write(data)
        self.written_bytes += len(data)

    def upload(self, s3: Any, bucket: str, key: str) -> bool:
        """Write the rejects object if there is anything in it; returns whether it wrote."""
        if not self.total:
            return False
        if self.omitted:
            message = (
                f"{self.omitted} more rejected records are counted in the report but not listed:"
                f" the rejects file stops after {self.max_bytes} bytes"
            )
            line = {"number": None, "reason": REJECTS_OMITTED, "message": message, "record": None}
            self._file.write(orjson.dumps(line, option=_OPTIONS))
        self._file.seek(0)
        s3.upload_fileobj(self._file, bucket, key, ExtraArgs={"ContentType": "application/x-ndjson"})
        return True

    def close(self) -> None:
        self._file.close()


def _writable(value: Any, depth: int) -> Any:
    """`value` as orjson can write it: cut at `depth` levels, odd values as their repr."""
    if isinstance(value, dict):
        if depth <= 0:
            return _TOO_DEEP
        return {_writable_key(key): _writable(item, depth - 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_writable(item, depth - 1) for item in value] if depth > 0 else _TOO_DEEP
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> "?"
    if value is None or isinstance(value, bool | int | float):
        return value if not isinstance(value, int) or -(2**63) <= value < 2**64 else str(value)
    return repr(value)


def _writable_key(key: Any) -> str:
    return _writable(key, 0) if isinstance(key, str) else str(key)
