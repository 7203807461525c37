"""Record -> Segment message: column mapping, nesting, source profiles, ids and times.

The mapper only shapes; `validation` decides whether the result may be sent. A record the
mapper cannot shape raises MappingError with a reason code from `reasons`.
"""

from __future__ import annotations

from typing import Any

from segment_importer.coercion import coerce_cell, parse_embedded_json
from segment_importer.job import CALL_TYPES, JobOptions, deep_merge
from segment_importer.message_ids import message_id_for_position, message_id_for_source_id
from segment_importer.profiles import PROFILES, SNAKE_CASE_ALIASES, detect_profile
from segment_importer.timestamps import TimestampError, normalize_timestamp

# Keys each call type carries besides the common ones; anything else in a record is data.
_TYPE_KEYS = {
    "track": ("event", "properties"),
    "identify": ("traits",),
    "page": ("name", "category", "properties"),
    "screen": ("name", "category", "properties"),
    "group": ("groupId", "traits"),
    "alias": ("previousId",),
}
_COMMON_KEYS = (
    "type", "userId", "anonymousId", "context", "integrations", "timestamp", "originalTimestamp", "channel",
    "properties", "traits",
)  # fmt: skip
_ID_KEYS = frozenset({"userId", "anonymousId", "groupId", "previousId"})
_OBJECT_KEYS = ("properties", "traits", "context", "integrations")
_TRAIT_TYPES = frozenset({"identify", "group"})
_TIMED_TYPES = frozenset({"track", "page", "screen"})
# Per call type, the record keys the mapper places itself; every other key is data.
_PLACED_KEYS = {call_type: frozenset(_COMMON_KEYS + keys) for call_type, keys in _TYPE_KEYS.items()}
_CSV_KEYS_KEPT_AS_TEXT = frozenset(_COMMON_KEYS).union(
    *_TYPE_KEYS.values(), SNAKE_CASE_ALIASES, ("event_text", "messageId", "id")
)


class MappingError(ValueError):
    """A record that cannot become a Segment message; `reason` is a code from `reasons`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class MessageMapper:
    """Maps the records of one file. `file_id` comes from message_ids.file_identity."""

    def __init__(self, job: JobOptions, file_id: str, *, from_csv: bool) -> None:
        self._job = job
        self._file_id = file_id
        self._from_csv = from_csv

    def map(self, number: int, fields: dict[str, Any]) -> dict[str, Any]:
        record = self._shape_input(fields)
        profile = self._job.source if self._job.source != "auto" else detect_profile(record)
        spec, source_id = PROFILES[profile](record)
        message = self._build(spec)
        message["messageId"] = self._message_id(number, source_id)
        return message

    def _shape_input(self, fields: dict[str, Any]) -> dict[str, Any]:
        record = fields
        if self._job.columns:
            record = dict(fields)
            for column, target in self._job.columns.items():
                if column in record:
                    value = record.pop(column)
                    if target:
                        record[target] = value
        if self._from_csv:
            record = _typed_cells(record)
        if self._from_csv or self._job.columns:
            return _nest_dotted(record)
        return dict(record)

    def _build(self, spec: dict[str, Any]) -> dict[str, Any]:
        call_type = _call_type(spec.get("type"), self._job.default_type)
        _check_objects(spec)
        message: dict[str, Any] = {"type": call_type}
        for key in ("userId", "anonymousId", *_TYPE_KEYS[call_type]):
            value = spec.get(key)
            if key in _ID_KEYS:
                value = _as_id(value, key)
            if value not in (None, ""):
                message[key] = value
        if call_type == "track" and "event" not in message and self._job.default_event:
            message["event"] = self._job.default_event
        _move_extras(spec, message, call_type)
        self._add_context(spec, message, call_type)
        self._add_integrations(spec, message)
        self._add_timestamp(spec, message, call_type)
        if "channel" in spec:
            message["channel"] = spec["channel"]
        return message

    def _add_context(self, spec: dict[str, Any], message: dict[str, Any], call_type: str) -> None:
        context = deep_merge(self._job.context, spec.get("context") or {})
        traits = spec.get("traits")
        if traits and call_type not in _TRAIT_TYPES:  # a track call's traits belong in context
            context["traits"] = {**context.get("traits", {}), **traits}
        if context:
            message["context"] = context

    def _add_integrations(self, spec: dict[str, Any], message: dict[str, Any]) -> None:
        # The job's choice of destinations replaces whatever the export recorded.
        integrations = (
            self._job.integrations if self._job.integrations is not None else spec.get("integrations")
        )
        if integrations:
            message["integrations"] = integrations

    def _add_timestamp(self, spec: dict[str, Any], message: dict[str, Any], call_type: str) -> None:
        raw = spec.get("timestamp")
        if raw in (None, ""):
            raw = spec.get("originalTimestamp")
        if raw in (None, ""):
            if self._job.require_timestamp and call_type in _TIMED_TYPES:
                raise MappingError("missing_timestamp", "no timestamp or originalTimestamp field")
            return
        try:
            message["timestamp"] = normalize_timestamp(raw)
        except TimestampError as error:
            raise MappingError("invalid_timestamp", str(error)) from error

    def _message_id(self, number: int, source_id: str | None) -> str:
        salt = self._job.message_id_salt
        if source_id:
            return message_id_for_source_id(salt, source_id)
        return message_id_for_position(salt, self._file_id, number)


def _call_type(value: Any, default: str) -> str:
    if value in (None, ""):
        return default
    call_type = str(value).strip().lower()
    if call_type not in CALL_TYPES:
        raise MappingError("unknown_type", f"type is not one of {', '.join(CALL_TYPES)}")
    return call_type


def _check_objects(spec: dict[str, Any]) -> None:
    for key in _OBJECT_KEYS:
        value = spec.get(key)
        if value is not None and not isinstance(value, dict):
            raise MappingError("invalid_field", f"{key} must be an object, not {type(value).__name__}")


def _as_id(value: Any, key: str) -> str | None:
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise MappingError("invalid_field", f"{key} must be a string or a number")
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, str | int | float):
        raise MappingError("invalid_field", f"{key} must be a string or a number")
    text = str(value).strip()
    return text or None


def _move_extras(spec: dict[str, Any], message: dict[str, Any], call_type: str) -> None:
    """Unknown top-level fields are data: properties, or traits for identify/group."""
    placed = _PLACED_KEYS[call_type]
    extras = {key: value for key, value in spec.items() if key not in placed}
    target = "traits" if call_type in _TRAIT_TYPES else "properties"
    if call_type in _TRAIT_TYPES and isinstance(spec.get("properties"), dict):
        extras = {**spec["properties"], **extras}
    if extras:
        message[target] = {**extras, **message.get(target, {})}


def _nest_dotted(record: dict[str, Any]) -> dict[str, Any]:
    """`{"properties.plan": "pro"}` -> `{"properties": {"plan": "pro"}}`, leaving `record` untouched."""
    if not any("." in key for key in record):
        return dict(record)
    nested: dict[str, Any] = {}
    owned: set[int] = set()  # dicts created here, safe to write into; the caller's are copied first
    for key, value in record.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
            elif id(child) not in owned:
                child = dict(child)
            owned.add(id(child))
            node[part] = child
            node = child
        existing = node.get(leaf)
        if isinstance(existing, dict) and isinstance(value, dict):
            value = {**value, **existing}  # a JSON-text column and dotted columns: dotted ones win
        node[leaf] = value
    return nested


def _typed_cells(record: dict[str, Any]) -> dict[str, Any]:
    """CSV cells as JSON values: see `coercion` for which cells change and why."""
    typed: dict[str, Any] = {}
    for key, cell in record.items():
        if not isinstance(cell, str):
            typed[key] = cell
        elif key in _OBJECT_KEYS:  # a whole object kept as JSON text in one column
            if cell.strip():
                typed[key] = parse_embedded_json(cell, fallback=cell)
        elif _holds_data(key):
            typed[key] = coerce_cell(cell)
        else:
            typed[key] = cell
    return typed


def _holds_data(key: str) -> bool:
    """Cells under properties/traits, and bare columns (which become properties or traits)."""
    head, dot, _ = key.partition(".")
    if dot:
        return head in ("properties", "traits")
    return key not in _CSV_KEYS_KEPT_AS_TEXT
