"""The fast path for the common record: a Segment-spec JSON object, mapped with a plan.

Most lines of most exports are Segment calls (`{"type": "track", "userId": ...}`). For
them, everything `MessageMapper.map` decides from the record's key names alone (the source
profile, an envelope, warehouse and snake_case spellings, archive-only fields to drop, which
keys are extras that move into properties or traits) is decided once per tuple of keys
(`_plan`), and the message is built in one function from the record as read, without the
copy and the rewrites of the general path.

The fast path never rejects: whenever a value is not the common case (a call type that is
not one of Segment's six spellings, an id that is not a string, an object field that is not
an object, a missing required field, a time that does not parse), it returns None and the
caller runs the general path, which gives the reject its reason. What it returns is exactly
what the general path returns (`bench.equivalence` and tests/unit/test_mapping_fast.py
compare them), and it has already passed `validation.check_fields`.
"""

from __future__ import annotations

from typing import Any

from segment_importer.job import JobOptions, deep_merge
from segment_importer.mapping.message_ids import MessageIds, SharedIds
from segment_importer.mapping.profiles import AUTO, FALLBACK, SNAKE_CASE_ALIASES
from segment_importer.mapping.profiles.context_paths import SOURCE_LIBRARY_KEY
from segment_importer.mapping.profiles.spellings import lacks_fields
from segment_importer.mapping.profiles.warehouse import WAREHOUSE_MARKERS, WAREHOUSE_ONLY_FIELDS
from segment_importer.mapping.record_input import _ENVELOPES, _EVENT_FIELDS
from segment_importer.mapping.timestamps import TimeReader, TimestampError
from segment_importer.mapping.validation import ARCHIVE_ONLY_FIELDS, ID_FIELDS, OBJECT_FIELDS, REQUIRED_FIELDS

_TRAIT_TYPES = frozenset({"identify", "group"})
_TIMED_TYPES = frozenset({"track", "page", "screen"})
# Keys of the segment profile's `to_spec` rewrites: a record with one takes the general path.
_REWRITTEN = frozenset(SNAKE_CASE_ALIASES) | WAREHOUSE_MARKERS | {"rudderId", "request_ip", "event_text"}
_DROPPED = ARCHIVE_ONLY_FIELDS | WAREHOUSE_ONLY_FIELDS
_MAX_PLANS = 1024  # distinct key tuples planned per file; beyond, unplanned tuples go the general way


class _Plan:
    """What one tuple of record keys means, per canonical call type: the keys whose values
    move into properties/traits (`extras`), and whether the record has `channel`."""

    __slots__ = ("channel", "extras")

    def __init__(self, extras: dict[str, tuple[str, ...]], channel: bool) -> None:
        self.extras = extras
        self.channel = channel


class SegmentFastPath:
    """Built by `MessageMapper` when the job allows it (`applies`); see the module doc."""

    __slots__ = (
        "_build_keys",
        "_context",
        "_default_event",
        "_ids",
        "_library",
        "_placed",
        "_plans",
        "_require_timestamp",
        "_shared_ids",
        "_times",
    )

    def __init__(
        self,
        job: JobOptions,
        ids: MessageIds,
        times: TimeReader,
        *,
        shared_ids: SharedIds,
        build_keys: dict[str, tuple[str, ...]],
        placed: dict[str, frozenset[str]],
        library: dict[str, str],
    ) -> None:
        self._ids, self._times, self._library = ids, times, library
        self._shared_ids = shared_ids
        self._build_keys, self._placed = build_keys, placed
        self._context = job.context
        self._default_event = job.default_event
        self._require_timestamp = job.require_timestamp
        self._plans: dict[tuple[str, ...], _Plan | None] = {}

    @staticmethod
    def applies(job: JobOptions, *, from_csv: bool) -> bool:
        """Jobs whose records the fast path can map: JSON records as they are (no renames,
        no record path, no time format, no chosen destinations), Segment's profile."""
        return (
            not from_csv
            and not job.columns
            and not job.record_path
            and not job.timestamp_format
            and job.integrations is None
            and job.source in (AUTO, FALLBACK.name)
        )

    def map(self, number: int, fields: dict[str, Any]) -> dict[str, Any] | None:
        """The message for `fields` (valid per check_fields), or None: take the general path."""
        keys = tuple(fields)
        plan = self._plans.get(keys, False)
        if plan is False:
            plan = self._plan(keys)
        call_type = fields.get("type")
        if plan is None or type(call_type) is not str:
            return None
        extras_keys = plan.extras.get(call_type)
        if extras_keys is None:
            return None
        get = fields.get
        for key in OBJECT_FIELDS:  # the general path rejects any other type
            value = get(key)
            if value is not None and type(value) is not dict:
                return None
        message = self._fields(call_type, get)
        if message is None:
            return None
        self._add_extras(message, call_type, fields, extras_keys)
        self._add_context(message, call_type, get)
        integrations = get("integrations")
        if integrations:
            if not all(type(setting) is bool or type(setting) is dict for setting in integrations.values()):
                return None  # the general path rejects a setting that is not true, false or an object
            message["integrations"] = integrations
        if not self._add_timestamp(message, call_type, get):
            return None
        if plan.channel:
            message["channel"] = fields["channel"]
        source_id = get("messageId")  # the segment profile's tag, as `tagged` writes it
        if source_id:
            distinct = self._shared_ids.distinct(f"segment:{source_id}", message)
            message["messageId"] = self._ids.for_source(distinct)
        elif self._ids.by_content:
            message["messageId"] = self._ids.for_content(number, fields)
        else:
            message["messageId"] = self._ids.for_position(number)
        return message

    def _plan(self, keys: tuple[str, ...]) -> _Plan | None:
        """None when a key calls for the general path: another profile, an envelope, a
        spelling to rewrite, or a missing field that the profile would look for elsewhere."""
        present = frozenset(keys)
        bare = present.isdisjoint(_ENVELOPES) or not _EVENT_FIELDS.isdisjoint(present)
        segment = "type" in present and "event_id" not in present  # detect_profile's first test
        plan = None
        if (
            bare
            and segment
            and present.isdisjoint(_REWRITTEN)
            and not lacks_fields(dict.fromkeys(present))
            and not ("id" in present and "receivedAt" in present)
        ):
            spec_keys = [key for key in keys if key not in _DROPPED]
            extras = {
                call_type: tuple(key for key in spec_keys if key not in placed)
                for call_type, placed in self._placed.items()
            }
            plan = _Plan(extras, "channel" in present)
        if len(self._plans) < _MAX_PLANS:
            self._plans[keys] = plan
        return plan

    def _fields(self, call_type: str, get: Any) -> dict[str, Any] | None:
        """type, ids and the call type's own fields (`MessageMapper._build`'s loop), checked
        as `check_fields` checks them; None when the general path must decide."""
        message: dict[str, Any] = {"type": call_type}
        for key in self._build_keys[call_type]:
            value = get(key)
            if value is None:
                continue
            if key in ID_FIELDS:
                if type(value) is not str:
                    return None  # numbers become text there; booleans are rejected
                value = value.strip()
                if not value:
                    continue
            elif value == "":
                continue
            message[key] = value
        if call_type == "track" and "event" not in message and self._default_event:
            message["event"] = self._default_event
        if not (message.get("userId") or message.get("anonymousId")):
            return None
        for field, _ in REQUIRED_FIELDS.get(call_type, ()):
            value = message.get(field)
            if not isinstance(value, str) or not value.strip():
                return None
        return message

    @staticmethod
    def _add_extras(
        message: dict[str, Any], call_type: str, fields: dict[str, Any], extras_keys: tuple[str, ...]
    ) -> None:
        """`mapper._move_extras`: unknown top-level fields are properties (traits for
        identify/group, which also take a record's properties)."""
        extras = {key: fields[key] for key in extras_keys} if extras_keys else {}
        if call_type in _TRAIT_TYPES:
            target = "traits"
            properties = fields.get("properties")
            if type(properties) is dict:
                extras = {**properties, **extras}
        else:
            target = "properties"
        if extras:
            message[target] = {**extras, **message.get(target, {})}

    def _add_context(self, message: dict[str, Any], call_type: str, get: Any) -> None:
        """`MessageMapper._add_context`, for a record whose context is an object or absent."""
        recorded = get("context")
        context = deep_merge(self._context, recorded) if recorded else dict(self._context)
        traits = get("traits")
        if traits and call_type not in _TRAIT_TYPES:
            earlier = context.get("traits")
            context["traits"] = {**(earlier if isinstance(earlier, dict) else {}), **traits}
        original = context.get("library")
        if original and original != self._library and SOURCE_LIBRARY_KEY not in context:
            context[SOURCE_LIBRARY_KEY] = original
        context["library"] = dict(self._library)
        message["context"] = context

    def _add_timestamp(self, message: dict[str, Any], call_type: str, get: Any) -> bool:
        """False when the general path must decide (a reject: missing or unreadable time)."""
        raw = get("timestamp")
        if raw is None or raw == "":
            if get("sentAt") is not None and get("receivedAt") is not None:
                return False  # the general path corrects the device's clock (profiles/segment.py)
            raw = get("originalTimestamp")
        if raw is None or raw == "":
            return not (self._require_timestamp and call_type in _TIMED_TYPES)
        try:
            message["timestamp"] = self._times.normalize(raw)
        except TimestampError:
            return False
        return True
