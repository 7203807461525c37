"""Job options: how the records of one drop become Segment messages.

One JSON format, used three ways: a `job.json` file in the drop's folder or a parent folder
under `imports/` (the nearest one wins), the stack parameter `DefaultJobOptions` (the
fallback), and the CLI's `--config`. Keys are documented in docs/job-file.md.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from segment_importer.deliver.targets import JobTarget
    from segment_importer.mapping.shaping import ShapingRules

# The key layout lives in track.keys; these stay importable from here.
from segment_importer.track.keys import JOB_FILE_NAME, is_job_file, job_file_candidates  # noqa: F401

CALL_TYPES = ("track", "identify", "page", "screen", "group", "alias")

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
    # Another workspace than the stack's (deliver/targets.py decides what the stack allows).
    "writeKeyParameter": "write_key_parameter",
    "host": "host",
    # Shaping (mapping/shaping.py): which valid messages are sent, and what they carry.
    "filter": "filter",
    "limit": "limit",
    "sample": "sample",
    "drop": "drop",
    "hash": "hash",
    "set": "set",
}
_SHAPING_ATTRS = ("filter", "limit", "sample", "drop", "hash", "set")
_TARGET_ATTRS = ("write_key_parameter", "host")


class JobOptionsError(ValueError):
    """The job file is not valid; the message says which key and why (every problem found)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


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
    timestamp_format: str | None = None  # strptime syntax, for times neither ISO 8601 nor epoch
    # Shaping, as written in the job (checked by mapping/shaping.py, compiled by `shaping_rules`).
    filter: dict[str, Any] | None = None
    limit: int | None = None
    sample: float | None = None
    drop: list[str] = field(default_factory=list)
    hash: dict[str, Any] | None = None
    set: dict[str, Any] = field(default_factory=dict)
    # Dot path to the record inside each line (`data`, `EventPayload.event`); "" = the line.
    record_path: str = ""
    keep_vendor_internals: bool = False  # keep e.g. Mixpanel's `$mp_api_endpoint` in properties
    timezone: str = "UTC"  # for times without an offset (IANA name, e.g. "Europe/Berlin")
    # [earliest, latest] plausible event times (ISO 8601); None = the default range.
    timestamp_range: list[str] | None = None
    # CSV cells that mean "no value", like an empty cell (`\\N` always does: MySQL/Snowflake).
    null_values: list[str] = field(default_factory=lambda: ["\\N"])
    trim_cells: bool = False  # strip spaces around CSV cells (off: it costs every row a pass)
    # The workspace: an SSM parameter holding the write key, and the host; None: the stack's.
    write_key_parameter: str | None = None
    host: str | None = None

    def merged_with(self, overrides: dict[str, Any]) -> JobOptions:
        """These options with the keys of a job document applied on top (`context` deep-merged)."""
        parsed = _parse_document(overrides)
        if "context" in parsed:
            parsed["context"] = deep_merge(self.context, parsed["context"])
        return replace(self, **parsed)

    def dropped_columns(self) -> frozenset[str]:
        """The columns mapped to null: a columnar reader (Parquet) does not read them at all."""
        return frozenset(name for name, target in self.columns.items() if target is None)

    def to_document(self) -> dict[str, Any]:
        """The JSON form, carried by checkpoints (reports show it through `shaping.redacted`)."""
        document = {key: getattr(self, attr) for key, attr in _KEYS.items()}
        optional = (*_SHAPING_ATTRS, "writeKeyParameter", "host")
        for key in optional:  # only those set: a job without them reads as before
            if document[key] in (None, [], {}):
                del document[key]
        return document

    @property
    def target(self) -> JobTarget | None:
        """The workspace the job names, or None for the stack's own."""
        from segment_importer.deliver.targets import JobTarget

        if self.write_key_parameter is None and self.host is None:
            return None
        return JobTarget(self.write_key_parameter, self.host)

    def shaping_rules(self) -> ShapingRules:
        from segment_importer.mapping.shaping import rules_from_job

        return rules_from_job({attr: getattr(self, attr) for attr in _SHAPING_ATTRS}, self.timestamp_range)


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
        problems = [f"{origin}: {problem}" for problem in error.problems]
        raise JobOptionsError("; ".join(problems), problems) from error
    return document


def _parse_document(document: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(document) - set(_KEYS))
    problems = [f"unknown keys {unknown}; allowed: {sorted(_KEYS)}"] if unknown else []
    parsed = {_KEYS[key]: value for key, value in document.items() if key in _KEYS}
    problems += _problems(parsed)
    if problems:
        raise JobOptionsError("; ".join(problems), problems)
    return parsed


def _problems(parsed: dict[str, Any]) -> list[str]:
    """Every problem of the parsed keys, not only the first: a user fixes them in one go."""
    from segment_importer.deliver.targets import host_form_problem, parameter_form_problem

    checks = {
        "default_type": lambda v: v in CALL_TYPES,
        "default_event": lambda v: v is None or (isinstance(v, str) and v.strip() != ""),
        "source": lambda v: v in source_choices(),
        "columns": lambda v: isinstance(v, dict) and all(_is_column_target(t) for t in v.values()),
        "integrations": lambda v: v is None or _is_integrations(v),
        "context": lambda v: isinstance(v, dict),
        "require_timestamp": lambda v: isinstance(v, bool),
        "message_id_salt": lambda v: isinstance(v, str) and _encodable(v),
        "encoding": lambda v: isinstance(v, str) and _known_codec(v),
        "timestamp_format": lambda v: v is None or (isinstance(v, str) and "%" in v),
        "record_path": lambda v: isinstance(v, str) and (v == "" or all(v.split("."))),
        "keep_vendor_internals": lambda v: isinstance(v, bool),
        "timezone": lambda v: isinstance(v, str) and _known_zone(v),
        "timestamp_range": lambda v: v is None or _is_time_range(v),
        "null_values": lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v),
        "trim_cells": lambda v: isinstance(v, bool),
        "write_key_parameter": lambda v: parameter_form_problem(v) is None,
        "host": lambda v: host_form_problem(v) is None,
    }
    expected = _expected()
    attr_to_key = {attr: key for key, attr in _KEYS.items()}
    problems = [
        f"{attr_to_key[attr]!r} must be {expected[attr]}{_which(attr, value)}"
        for attr, value in parsed.items()
        if attr not in _SHAPING_ATTRS and not checks[attr](value)
    ]
    time_range = parsed.get("timestamp_range")
    time_range = time_range if _is_time_range(time_range) else None  # else said above
    for attr in (name for name in _SHAPING_ATTRS if name in parsed):  # in a fixed order
        problems += _shaping_problems(attr, parsed[attr], time_range)
    return problems


def _expected() -> dict[str, str]:
    """What each key must be, as the problem says it."""
    return {
        "default_type": f"one of {list(CALL_TYPES)}",
        "default_event": "a non-empty string",
        "source": f"one of {list(source_choices())}",
        "columns": "an object mapping column names (or #N, a CSV column's position from 1) to dot paths "
        '(e.g. "properties.plan") or null; a path has no empty part',
        "integrations": "an object of destination names to true, false or an object of settings, "
        'e.g. {"All": false, "Mixpanel": true}',
        "context": "an object",
        "require_timestamp": "true or false",
        "message_id_salt": "a string of valid Unicode text",
        "encoding": 'a text encoding Python knows, e.g. "utf-8" or "cp1252"',
        "timestamp_format": 'a strptime format, e.g. "%m/%d/%Y %H:%M"',
        "record_path": 'a dot path such as "data" or "EventPayload.event"',
        "keep_vendor_internals": "true or false",
        "timezone": 'an IANA time zone, e.g. "Europe/Berlin"',
        "timestamp_range": 'two ISO 8601 times, e.g. ["1971-01-01", "2100-01-01"]',
        "null_values": 'a list of strings, e.g. ["NULL", "\\\\N"]',
        "trim_cells": "true or false",
        "write_key_parameter": 'an SSM parameter name, e.g. "/segment-importer/write-keys/test-source" '
        "(no '..' or wildcards; a job's key is always in SSM)",
        "host": 'an https URL of the host only, e.g. "https://events.eu1.segmentapis.com"',
    }


def _which(attr: str, value: Any) -> str:
    """The entries at fault, for the two keys that hold many; what is wrong, for a target's."""
    from segment_importer.deliver.targets import host_form_problem, parameter_form_problem

    if attr in _TARGET_ATTRS:
        problem = parameter_form_problem(value) if attr == "write_key_parameter" else host_form_problem(value)
        return f": {problem}" if problem else ""
    if attr == "columns" and isinstance(value, dict):
        bad = [f"{name!r}: {target!r}" for name, target in value.items() if not _is_column_target(target)]
    elif attr == "integrations" and isinstance(value, dict):
        bad = [
            f"{name!r}: {setting!r}"
            for name, setting in value.items()
            if not isinstance(setting, bool | dict)
        ]
    else:
        return ""
    return f" (not: {', '.join(bad)})" if bad else ""


def _is_dot_path(target: Any) -> bool:
    return isinstance(target, str) and all(part.strip() for part in target.split("."))


def _is_column_target(target: Any) -> bool:
    return target is None or _is_dot_path(target)


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return False
    return True


def _is_time_range(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_iso(text) for text in value)


def _is_iso(text: Any) -> bool:
    try:
        datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return False
    return True


def _shaping_problems(attr: str, value: Any, timestamp_range: list[str] | None) -> list[str]:
    # Imported here: shaping imports CALL_TYPES from this module.
    from segment_importer.mapping.shaping import ShapingError, check_option

    try:
        check_option(attr, value, timestamp_range)
    except ShapingError as error:
        return [str(error)]
    return []


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
    return isinstance(value, dict) and all(isinstance(setting, bool | dict) for setting in value.values())
