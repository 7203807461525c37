"""Job options: how the records of one drop become Segment messages.

One JSON format, used three ways: a `job.json` file in the drop's folder or a parent folder
under `imports/` (the nearest one wins), the stack parameter `DefaultJobOptions` (the
fallback), and the CLI's `--config`. Keys are documented in README.md ("The job file").
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

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
    "recordPath": "record_path",
    "keepVendorInternals": "keep_vendor_internals",
    "timezone": "timezone",
    "timestampFormat": "timestamp_format",
    "timestampRange": "timestamp_range",
    "nullValues": "null_values",
    "trimCells": "trim_cells",
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
    # Dot path to the record inside each line (`data`, `EventPayload.event`); "" = the line.
    record_path: str = ""
    keep_vendor_internals: bool = False  # keep e.g. Mixpanel's `$mp_api_endpoint` in properties
    timezone: str = "UTC"  # for times without an offset (IANA name, e.g. "Europe/Berlin")
    timestamp_format: str | None = None  # strptime format for non-ISO dates ("%d/%m/%Y %H:%M")
    # [earliest, latest] plausible event times (ISO 8601); None = the default range.
    timestamp_range: list[str] | None = None
    # CSV cells that mean "no value", like an empty cell (`\\N` always does: MySQL/Snowflake).
    null_values: list[str] = field(default_factory=lambda: ["\\N"])
    trim_cells: bool = False  # strip spaces around CSV cells (off: it costs every row a pass)

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


_POSITION = re.compile(r"#([1-9][0-9]*)")


def columns_by_position(columns: dict[str, str | None], names: list[str]) -> dict[str, str | None]:
    """The job's `columns` with keys `#N` (a CSV column by its position, from 1) as the names
    of those columns, so a column can be mapped whatever its header says (repeated, empty).
    A position beyond the header raises JobOptionsError."""
    if not any(_POSITION.fullmatch(key) for key in columns):
        return columns
    resolved: dict[str, str | None] = {}
    for key, target in columns.items():
        position = _POSITION.fullmatch(key)
        if position is None:
            resolved[key] = target
            continue
        index = int(position.group(1))
        if index > len(names):
            raise JobOptionsError(f"'columns' maps {key} but the file has {len(names)} columns")
        resolved[names[index - 1]] = target
    return resolved


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
    attr_to_key = {attr: key for key, attr in _KEYS.items()}
    for attr, value in parsed.items():
        check, expected = _RULES[attr]
        if not check(value):
            expected = _source_expectation() if attr == "source" else expected
            raise JobOptionsError(f"{attr_to_key[attr]!r} must be {expected}")


_RULES: dict[str, tuple[Any, str]] = {
    "default_type": (lambda v: v in CALL_TYPES, f"one of {list(CALL_TYPES)}"),
    "default_event": (lambda v: v is None or (isinstance(v, str) and v.strip() != ""), "a non-empty string"),
    "source": (lambda v: v in source_choices(), "one of the profile names"),  # listed when raised
    "columns": (
        lambda v: isinstance(v, dict) and all(_is_column_target(t) for t in v.values()),
        "an object mapping column names (or #N, a CSV column's position from 1) to target paths (or null)",
    ),
    "integrations": (
        lambda v: v is None or _is_integrations(v),
        'an object of destination names to true/false/settings, e.g. {"All": false}',
    ),
    "context": (lambda v: isinstance(v, dict), "an object"),
    "require_timestamp": (lambda v: isinstance(v, bool), "true or false"),
    "message_id_salt": (lambda v: isinstance(v, str) and _encodable(v), "a string of valid Unicode text"),
    "encoding": (
        lambda v: isinstance(v, str) and _known_codec(v),
        'a text encoding Python knows, e.g. "utf-8" or "cp1252"',
    ),
    "record_path": (
        lambda v: isinstance(v, str) and all(v.split(".")) if v else v == "",
        'a dot path such as "data" or "EventPayload.event"',
    ),
    "keep_vendor_internals": (lambda v: isinstance(v, bool), "true or false"),
    "timezone": (lambda v: isinstance(v, str) and _known_zone(v), 'an IANA time zone, e.g. "Europe/Berlin"'),
    "timestamp_format": (
        lambda v: v is None or (isinstance(v, str) and "%" in v),
        'a strptime format, e.g. "%d/%m/%Y %H:%M"',
    ),
    "timestamp_range": (
        lambda v: v is None or (isinstance(v, list) and len(v) == 2 and all(_is_iso(t) for t in v)),
        'two ISO 8601 times, e.g. ["1971-01-01", "2100-01-01"]',
    ),
    "null_values": (
        lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v),
        'a list of strings, e.g. ["NULL", "\\\\N"]',
    ),
    "trim_cells": (lambda v: isinstance(v, bool), "true or false"),
}


def _source_expectation() -> str:
    return f"one of {list(source_choices())}"


def _is_column_target(target: Any) -> bool:
    return (isinstance(target, str) and target != "") or target is None


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return False
    return True


def _is_iso(text: Any) -> bool:
    try:
        datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return False
    return True


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
