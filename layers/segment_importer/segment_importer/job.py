"""Job options: how the records of one drop become Segment messages.

One JSON format, used three ways: a `job.json` file in the drop's folder or a parent folder
under `imports/` (the nearest one wins), the stack parameter `DefaultJobOptions` (the
fallback), and the CLI's `--config`. Keys are documented in README.md ("The job file").
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field, replace
from typing import Any

CALL_TYPES = ("track", "identify", "page", "screen", "group", "alias")
JOB_FILE_NAME = "job.json"

_KEYS = {
    "type": "default_type",
    "event": "default_event",
    "source": "source",
    "columns": "columns",
    "integrations": "integrations",
    "context": "context",
    "requireTimestamp": "require_timestamp",
    "messageIdSalt": "message_id_salt",
    "encoding": "encoding",
}


class JobOptionsError(ValueError):
    """The job file is not valid; the message says which key and why."""


@dataclass(frozen=True, slots=True)
class JobOptions:
    default_type: str = "track"
    default_event: str | None = None
    source: str = "auto"
    # Record key -> target path (dot notation) or None to drop the column.
    columns: dict[str, str | None] = field(default_factory=dict)
    integrations: dict[str, Any] | None = None
    context: dict[str, Any] = field(default_factory=dict)
    require_timestamp: bool = True
    message_id_salt: str = ""
    encoding: str = "utf-8"  # of CSV files (JSON is always UTF-8)

    def merged_with(self, overrides: dict[str, Any]) -> JobOptions:
        """These options with the keys of a job document applied on top (`context` deep-merged)."""
        parsed = _parse_document(overrides)
        if "context" in parsed:
            parsed["context"] = deep_merge(self.context, parsed["context"])
        return replace(self, **parsed)

    def to_document(self) -> dict[str, Any]:
        """The JSON form, for reports."""
        return {key: getattr(self, attr) for key, attr in _KEYS.items()}


def source_choices() -> tuple[str, ...]:
    """What a job's `source` may be: "auto" or a profile's name (mapping.profiles.PROFILES)."""
    # Imported here: the profiles import this module (CALL_TYPES), and job options are
    # parsed long after every module is loaded.
    from segment_importer.mapping.profiles import AUTO, profile_names

    return (AUTO, *profile_names())


def parse_job_document(text: str | bytes, origin: str) -> dict[str, Any]:
    """Parse and check a job file's JSON; errors name the origin, never record data."""
    try:
        document = json.loads(text or "{}")
    except ValueError as error:
        raise JobOptionsError(f"{origin}: not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise JobOptionsError(f"{origin}: must be a JSON object")
    try:
        _parse_document(document)
    except JobOptionsError as error:
        raise JobOptionsError(f"{origin}: {error}") from error
    return document


def job_file_candidates(key: str, imports_prefix: str) -> list[str]:
    """Job file keys to try for an object, nearest folder first, up to the imports prefix."""
    folders = key.split("/")[:-1]
    root_depth = len(imports_prefix.strip("/").split("/")) if imports_prefix.strip("/") else 0
    return ["/".join([*folders[:depth], JOB_FILE_NAME]) for depth in range(len(folders), root_depth - 1, -1)]


def is_job_file(key: str) -> bool:
    return key.rsplit("/", 1)[-1] == JOB_FILE_NAME


def _parse_document(document: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(document) - set(_KEYS))
    if unknown:
        raise JobOptionsError(f"unknown keys {unknown}; allowed: {sorted(_KEYS)}")
    parsed = {_KEYS[key]: value for key, value in document.items()}
    _check(parsed)
    return parsed


def _check(parsed: dict[str, Any]) -> None:
    checks = {
        "default_type": lambda v: v in CALL_TYPES,
        "default_event": lambda v: v is None or (isinstance(v, str) and v.strip() != ""),
        "source": lambda v: v in source_choices(),
        "columns": lambda v: (
            isinstance(v, dict) and all((isinstance(t, str) and t) or t is None for t in v.values())
        ),
        "integrations": lambda v: v is None or _is_integrations(v),
        "context": lambda v: isinstance(v, dict),
        "require_timestamp": lambda v: isinstance(v, bool),
        "message_id_salt": lambda v: isinstance(v, str) and _encodable(v),
        "encoding": lambda v: isinstance(v, str) and _known_codec(v),
    }
    expected = {
        "default_type": f"one of {list(CALL_TYPES)}",
        "default_event": "a non-empty string",
        "source": f"one of {list(source_choices())}",
        "columns": "an object mapping column names to target paths (or null)",
        "integrations": 'an object of destination names to true/false/settings, e.g. {"All": false}',
        "context": "an object",
        "require_timestamp": "true or false",
        "message_id_salt": "a string of valid Unicode text",
        "encoding": 'a text encoding Python knows, e.g. "utf-8" or "cp1252"',
    }
    attr_to_key = {attr: key for key, attr in _KEYS.items()}
    for attr, value in parsed.items():
        if not checks[attr](value):
            raise JobOptionsError(f"{attr_to_key[attr]!r} must be {expected[attr]}")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base`, merging nested objects instead of replacing them."""
    if not base:
        return dict(override)
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _known_codec(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _encodable(text: str) -> bool:
    """Lone surrogates (valid in JSON escapes) cannot be hashed into message ids."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_integrations(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(name, str) for name in value)
