"""Record -> Segment message: column mapping, nesting, source profiles, ids and times.

The mapper only shapes; `validation` decides whether the result may be sent. A record the
mapper cannot shape raises `reasons.Reject` with a reason code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from segment_importer import __version__
from segment_importer.job import CALL_TYPES, JobOptions, deep_merge
from segment_importer.mapping.csv_shapes import CellNesting
from segment_importer.mapping.message_ids import MessageIds, SharedIds
from segment_importer.mapping.profiles import (
    AUTO,
    FALLBACK,
    SNAKE_CASE_ALIASES,
    detect_profile,
    profile_named,
)
from segment_importer.mapping.profiles.context_paths import SOURCE_LIBRARY_KEY
from segment_importer.mapping.profiles.spellings import created_at_column, keep_created_at_trait
from segment_importer.mapping.profiles.warehouse import (
    TABLE_CALL_TYPES,
    USERS_TABLE,
    WAREHOUSE_MARKERS,
    GivenCallType,
    from_users_table,
    table_of_file,
)
from segment_importer.mapping.record_input import (
    RecordPathError,
    cleaned_cells,
    folded_case,
    missing_time_detail,
    record_at,
    rename_collisions,
    renamed,
    with_formatted_times,
)
from segment_importer.mapping.segment_fast import SegmentFastPath
from segment_importer.mapping.timestamps import ImplausibleTimestampError, TimeReader, TimestampError
from segment_importer.mapping.validation import ID_FIELDS, OBJECT_FIELDS, check_objects
from segment_importer.track import reasons
from segment_importer.track.reasons import Reject

# Every message names this importer as its library (Segment's `context.library`), so what
# was imported can be told from what was tracked live.
IMPORTER_LIBRARY = {"name": "segment-importer", "version": __version__}

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
_OBJECT_KEY_SET = frozenset(OBJECT_FIELDS)
_TRAIT_TYPES = frozenset({"identify", "group"})
_TIMED_TYPES = frozenset({"track", "page", "screen"})
# Per call type, the record keys the mapper places itself; every other key is data.
_PLACED_KEYS = {call_type: frozenset(_COMMON_KEYS + keys) for call_type, keys in _TYPE_KEYS.items()}
# The keys some call type places: a record key among them is no property or trait.
_MESSAGE_KEYS: frozenset[str] = frozenset().union(*_PLACED_KEYS.values())
_MAX_KEY_TUPLES = 1024  # tuples of record keys whose renames are checked once
_CSV_KEYS_KEPT_AS_TEXT = frozenset(_COMMON_KEYS).union(
    *_TYPE_KEYS.values(), SNAKE_CASE_ALIASES, ("event_text", "messageId", "id")
)
# Per call type, the keys _build takes from the spec, in order.
_BUILD_KEYS = {call_type: ("userId", "anonymousId", *keys) for call_type, keys in _TYPE_KEYS.items()}
# A record with traits and neither a type nor an event is most likely an identify: say so,
# rather than fail it as a track call for its missing time or event.
_UNTYPED_TRAITS_DETAIL = (
    "no type and no event, so it was read as a track call, which needs an event; it has traits:"
    ' if these are identify calls, set "type": "identify" in the job file'
)
# Call types as written in most exports; anything else goes through _call_type's full path.
_CANONICAL_TYPES = {call_type: call_type for call_type in CALL_TYPES}


class MessageMapper:
    """Maps the records of one file. `file_id` comes from message_ids.file_identity; None
    derives the ids of records without a source id from their content (what the splitter uses)."""

    def __init__(
        self,
        job: JobOptions,
        file_id: str | None,
        *,
        from_csv: bool,
        file_key: str = "",
        decimal_comma: bool = False,
    ) -> None:
        self._job = job
        self._from_csv = from_csv
        self._ids = MessageIds(job.message_id_salt, file_id)
        # CSV cells (and renamed columns) typed and nested, planned once per row shape.
        nesting = CellNesting(
            typed=from_csv,
            text_keys=_CSV_KEYS_KEPT_AS_TEXT,
            object_keys=_OBJECT_KEY_SET,
            decimal_comma=decimal_comma,
        )
        self._typed_and_nested = nesting.nested
        self._profile = None if job.source == AUTO else profile_named(job.source)  # else per record
        # A warehouse row has no `type` column (the table is the type): a job's `type` names
        # the table, else the file's name (`identifies.csv`), and either wins over the
        # profile's guess from the columns; `track`, the default, cannot be told from a job
        # that sets none, so it leaves the name or the guess. A job's `event` says the rows
        # are track calls where the name says nothing (a per-event table, `order_completed`,
        # exported without its `event` column: the guess made its rows identifies).
        self._file_key = file_key
        table = table_of_file(file_key)
        job_type = job.default_type if job.default_type != "track" else None
        event_type = "track" if job.default_event else None
        given = job_type or TABLE_CALL_TYPES.get(table or "") or event_type
        self._table_type = GivenCallType(given) if given else None  # never an event's `type` column
        self._users_table = table == USERS_TABLE and job_type in (None, "identify")
        self._times = TimeReader(job.timezone, job.timestamp_format, job.timestamp_range)
        # The reader already drops empty cells and `\N`: only other null spellings cost a pass.
        self._nulls = frozenset(job.null_values) - {"", "\\N"}
        self._renames_checked: dict[tuple[str, ...], list[str]] = {}  # per tuple of record keys
        # Records sharing a source id with another event, user or time keep apart (counted).
        self._shared_ids = SharedIds()
        # Segment-shaped JSON records, planned once per tuple of keys; None: every record
        # takes `map`. The caller tries `fast.map` first, then `map` when it returns None.
        self.fast: SegmentFastPath | None = None
        if SegmentFastPath.applies(job, from_csv=from_csv):
            self.fast = SegmentFastPath(
                job, self._ids, self._times, shared_ids=self._shared_ids, build_keys=_BUILD_KEYS,
                placed=_PLACED_KEYS, library=IMPORTER_LIBRARY,
            )  # fmt: skip

    def map(self, number: int, fields: dict[str, Any]) -> dict[str, Any]:
        record = self._shape_input(fields)
        if self._table_type and "type" not in record and not record.keys().isdisjoint(WAREHOUSE_MARKERS):
            record = {"type": self._table_type, **record}
            if self._users_table:
                from_users_table(record)
        if self._job.timestamp_format:
            record = with_formatted_times(record, self._times)
        profile = self._profile or detect_profile(record)
        created = created_at_column(record) if profile is FALLBACK and self._may_hold_traits(record) else None
        spec, source_id = profile.to_spec(record)
        if profile.in_file is not None:  # what the file's name says (Heap's pageviews table)
            profile.in_file(spec, self._file_key)
        if profile.is_internal is not None and not self._job.keep_vendor_internals:
            _drop_internals(spec, profile.is_internal)
        message = self._build(spec)
        if created is not None and message["type"] in _TRAIT_TYPES:
            keep_created_at_trait(message, created)
        if source_id:
            if not profile.ids_tell_apart:
                source_id = self._shared_ids.distinct(source_id, message)
            message["messageId"] = self._ids.for_source(source_id)
        elif self._ids.by_content:
            message["messageId"] = self._ids.for_content(number, fields)
        else:
            message["messageId"] = self._ids.for_position(number)
        return message

    def _may_hold_traits(self, record: dict[str, Any]) -> bool:
        """Could this record be an identify or group call (its type, the table's, the job's)?"""
        call_type = record.get("type")
        if call_type is None:
            return self._job.default_type in _TRAIT_TYPES
        return isinstance(call_type, str) and call_type.strip().lower() in _TRAIT_TYPES

    @property
    def excel_day_numbers(self) -> int:
        """Times taken that look like Excel day numbers read as epoch seconds (only a
        timestampRange widened to 1970 takes them)."""
        return self._times.excel_day_numbers

    @property
    def id_collisions(self) -> int:
        """Records whose id (the export's own, or a column the job maps to messageId) an
        earlier record of this part already had with another event, user or time."""
        return self._shared_ids.collisions

    @property
    def id_merges(self) -> int:
        """Records whose id an earlier record of this part already had with the same event,
        user and time but other content: one messageId, so Segment keeps the first."""
        return self._shared_ids.merged

    def _shape_input(self, fields: dict[str, Any]) -> dict[str, Any]:
        if not self._from_csv:
            try:
                fields = record_at(fields, self._job.record_path)
            except RecordPathError as error:
                raise Reject(reasons.INVALID_FIELD, str(error)) from error
        fields = folded_case(fields, self._job.columns)  # Snowflake's UPPER_CASE names
        if not self._from_csv and not self._job.columns:
            return dict(fields)
        if self._from_csv and (self._nulls or self._job.trim_cells):
            fields = cleaned_cells(fields, self._nulls, trim=self._job.trim_cells)
        if not self._job.columns:
            return self._typed_and_nested(fields)
        self._check_renames(fields)
        return self._typed_and_nested(renamed(fields, self._job.columns))

    def _check_renames(self, fields: dict[str, Any]) -> None:
        """A rename onto a field the record fills under its own name too is invalid_field (a
        CSV header that would do it is refused before its rows: `column_collisions`)."""
        keys = tuple(fields)
        problems = self._renames_checked.get(keys)
        if problems is None:
            problems = column_collisions(self._job.columns, keys)
            if len(self._renames_checked) < _MAX_KEY_TUPLES:
                self._renames_checked[keys] = problems
        if problems:
            raise Reject(reasons.INVALID_FIELD, problems[0])

    def _build(self, spec: dict[str, Any]) -> dict[str, Any]:
        call_type = spec.get("type")
        if type(call_type) is not str or call_type not in _CANONICAL_TYPES:
            call_type = _call_type(call_type, self._job.default_type)
        check_objects(spec)
        message: dict[str, Any] = {"type": call_type}
        for key in _BUILD_KEYS[call_type]:
            value = spec.get(key)
            if key in ID_FIELDS:
                value = value.strip() or None if type(value) is str else _as_id(value, key)
            if value is not None and value != "":
                message[key] = value
        if call_type == "track" and "event" not in message:
            if self._job.default_event:
                message["event"] = self._job.default_event
            elif spec.get("traits") and spec.get("type") in (None, ""):
                raise Reject(reasons.MISSING_EVENT, _UNTYPED_TRAITS_DETAIL)
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
            recorded = context.get("traits")
            context["traits"] = {**(recorded if isinstance(recorded, dict) else {}), **traits}
        original = context.get("library")
        if original and original != IMPORTER_LIBRARY and SOURCE_LIBRARY_KEY not in context:
            context[SOURCE_LIBRARY_KEY] = original  # what an archived message was tracked with
        context["library"] = dict(IMPORTER_LIBRARY)
        message["context"] = context

    def _add_integrations(self, spec: dict[str, Any], message: dict[str, Any]) -> None:
        integrations = spec.get("integrations")
        if self._job.integrations is not None:
            integrations = _chosen_integrations(self._job.integrations, integrations)
        if integrations:
            message["integrations"] = integrations

    def _add_timestamp(self, spec: dict[str, Any], message: dict[str, Any], call_type: str) -> None:
        raw = spec.get("timestamp")
        if raw in (None, ""):
            raw = spec.get("originalTimestamp")
        if raw in (None, ""):
            if self._job.require_timestamp and call_type in _TIMED_TYPES:
                raise Reject(
                    reasons.MISSING_TIMESTAMP, missing_time_detail(spec, message, self._job.timestamp_format)
                )
            return
        try:
            message["timestamp"] = self._times.normalize(raw)
        except ImplausibleTimestampError as error:
            raise Reject(reasons.IMPLAUSIBLE_TIMESTAMP, str(error)) from error
        except TimestampError as error:
            raise Reject(reasons.INVALID_TIMESTAMP, str(error)) from error


def column_collisions(columns: dict[str, str | None], names: Iterable[str]) -> list[str]:
    """What the job's `columns` would lose of a file or record with these keys (one problem per
    rename onto a field another key fills too; see record_input.rename_collisions)."""
    return rename_collisions(columns, names, _MESSAGE_KEYS)


def _chosen_integrations(chosen: dict[str, Any], recorded: Any) -> dict[str, Any]:
    """The job's choice of destinations replaces whatever the export recorded, except the
    per-destination settings a record carries (Amplitude's `session_id`) for a destination
    the job still sends to: `{"Amplitude": true}` + `{"Amplitude": {"session_id": 1}}`."""
    if not isinstance(recorded, dict) or not recorded:
        return chosen
    merged = dict(chosen)
    default_on = chosen.get("All", True) is not False
    for name, settings in recorded.items():
        enabled = chosen.get(name, default_on)
        if isinstance(settings, dict) and enabled is not False and not isinstance(enabled, dict):
            merged[name] = settings
    return merged


def _drop_internals(spec: dict[str, Any], is_internal: Any) -> None:
    for key in ("properties", "traits"):
        fields = spec.get(key)
        if isinstance(fields, dict) and any(map(is_internal, fields)):
            spec[key] = {name: value for name, value in fields.items() if not is_internal(name)}


def _call_type(value: Any, default: str) -> str:
    if value in (None, ""):
        return default
    call_type = str(value).strip().lower()
    if call_type not in CALL_TYPES:
        raise Reject(reasons.UNKNOWN_TYPE, f"type is not one of {', '.join(CALL_TYPES)}")
    return call_type


def _as_id(value: Any, key: str) -> str | None:
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise Reject(reasons.INVALID_FIELD, f"{key} must be a string or a number")
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, str | int | float):
        raise Reject(reasons.INVALID_FIELD, f"{key} must be a string or a number")
    text = str(value).strip()
    return text or None


def _move_extras(spec: dict[str, Any], message: dict[str, Any], call_type: str) -> None:
    """Unknown top-level fields are data: properties, or traits for identify/group."""
    placed = _PLACED_KEYS[call_type]
    extras = (
        {} if placed.issuperset(spec) else {key: value for key, value in spec.items() if key not in placed}
    )
    target = "traits" if call_type in _TRAIT_TYPES else "properties"
    if call_type in _TRAIT_TYPES and isinstance(spec.get("properties"), dict):
        extras = {**spec["properties"], **extras}
    if extras:
        message[target] = {**extras, **message.get(target, {})}
