"""Record -> Segment message: column mapping, nesting, source profiles, ids and times.

The mapper only shapes; `validation` decides whether the result may be sent. A record the
mapper cannot shape raises `reasons.Reject` with a reason code.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from segment_importer import __version__
from segment_importer.job import CALL_TYPES, JobOptions, deep_merge
from segment_importer.mapping.coercion import coerce_cell, parse_embedded_json
from segment_importer.mapping.message_ids import DeclaredIds, MessageIds
from segment_importer.mapping.profiles import (
    AUTO,
    SNAKE_CASE_ALIASES,
    canonical_field,
    detect_profile,
    profile_named,
)
from segment_importer.mapping.profiles.context_paths import SOURCE_LIBRARY_KEY
from segment_importer.mapping.record_input import (
    RecordPathError,
    cleaned_cells,
    missing_time_detail,
    record_at,
    renamed,
    with_formatted_times,
)
from segment_importer.mapping.segment_fast import SegmentFastPath
from segment_importer.mapping.timestamps import ImplausibleTimestampError, TimeReader, TimestampError
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
_ID_KEYS = frozenset({"userId", "anonymousId", "groupId", "previousId"})
_OBJECT_KEYS = ("properties", "traits", "context", "integrations")
_TRAIT_TYPES = frozenset({"identify", "group"})
_TIMED_TYPES = frozenset({"track", "page", "screen"})
# Per call type, the record keys the mapper places itself; every other key is data.
_PLACED_KEYS = {call_type: frozenset(_COMMON_KEYS + keys) for call_type, keys in _TYPE_KEYS.items()}
_CSV_KEYS_KEPT_AS_TEXT = frozenset(_COMMON_KEYS).union(
    *_TYPE_KEYS.values(), SNAKE_CASE_ALIASES, ("event_text", "messageId", "id")
)
# Per call type, the keys _build takes from the spec, in order.
_BUILD_KEYS = {call_type: ("userId", "anonymousId", *keys) for call_type, keys in _TYPE_KEYS.items()}
# Call types as written in most exports; anything else goes through _call_type's full path.
_CANONICAL_TYPES = {call_type: call_type for call_type in CALL_TYPES}
# What a CSV cell (or a renamed column) turns into, decided once per column name.
_TEXT, _DATA, _OBJECT = 0, 1, 2
_MAX_COLUMN_PLANS = 4096  # keys of JSON records renamed by `columns` are unbounded: stop caching
_MAX_ROW_SHAPES = 1024  # distinct sets of non-empty columns planned per file


class MessageMapper:
    """Maps the records of one file. `file_id` comes from message_ids.file_identity; None
    derives the ids of records without a source id from their content (what the splitter uses)."""

    def __init__(self, job: JobOptions, file_id: str | None, *, from_csv: bool) -> None:
        self._job = job
        self._from_csv = from_csv
        self._ids = MessageIds(job.message_id_salt, file_id)
        # Per column name: (kind, parent path, leaf), so a cell's fate is decided once per file.
        self._plans: dict[str, tuple[int, tuple[str, ...], str]] = {}
        self._shapes: dict[tuple[str, ...], _RowShape] = {}
        self._profile = None if job.source == AUTO else profile_named(job.source)  # else per record
        self._times = TimeReader(job.timezone, job.timestamp_format, job.timestamp_range)
        # The reader already drops empty cells and `\N`: only other null spellings cost a pass.
        self._nulls = frozenset(job.null_values) - {"", "\\N"}
        declared = "messageId" in job.columns.values()
        self._declared_ids = DeclaredIds() if declared else None
        # Segment-shaped JSON records, planned once per tuple of keys; None: every record
        # takes `map`. The caller tries `fast.map` first, then `map` when it returns None.
        self.fast: SegmentFastPath | None = None
        if SegmentFastPath.applies(job, from_csv=from_csv):
            self.fast = SegmentFastPath(
                job, self._ids, self._times, build_keys=_BUILD_KEYS, placed=_PLACED_KEYS,
                library=IMPORTER_LIBRARY,
            )  # fmt: skip

    def map(self, number: int, fields: dict[str, Any]) -> dict[str, Any]:
        record = self._shape_input(fields)
        if self._job.timestamp_format:
            record = with_formatted_times(record, self._times)
        profile = self._profile or detect_profile(record)
        spec, source_id = profile.to_spec(record)
        if profile.is_internal is not None and not self._job.keep_vendor_internals:
            _drop_internals(spec, profile.is_internal)
        message = self._build(spec)
        if source_id is not None and self._declared_ids is not None:
            source_id = self._declared_ids.distinct(source_id, message)
        if source_id:
            message["messageId"] = self._ids.for_source(source_id)
        elif self._ids.by_content:
            message["messageId"] = self._ids.for_content(number, fields)
        else:
            message["messageId"] = self._ids.for_position(number)
        return message

    @property
    def id_collisions(self) -> int:
        """Records whose declared id (a column the job maps to messageId) an earlier record
        of this part already had with another event, user or time."""
        return self._declared_ids.collisions if self._declared_ids is not None else 0

    def _shape_input(self, fields: dict[str, Any]) -> dict[str, Any]:
        if not self._from_csv:
            try:
                fields = record_at(fields, self._job.record_path)
            except RecordPathError as error:
                raise Reject(reasons.INVALID_FIELD, str(error)) from error
        if not self._from_csv and not self._job.columns:
            return dict(fields)
        if self._from_csv and (self._nulls or self._job.trim_cells):
            fields = cleaned_cells(fields, self._nulls, trim=self._job.trim_cells)
        record = renamed(fields, self._job.columns) if self._job.columns else fields
        return self._typed_and_nested(record)

    def _typed_and_nested(self, record: dict[str, Any]) -> dict[str, Any]:
        """CSV cells as JSON values (see `coercion` for which cells change and why), then
        `{"properties.plan": "pro"}` -> `{"properties": {"plan": "pro"}}`, leaving `record`
        untouched. Rows of a file mostly share their columns: the work that depends only on
        the column names is planned once per set of names (`_RowShape`)."""
        names = tuple(record)
        shape = self._shapes.get(names)
        if shape is None:
            shape = _RowShape.plan(names, [self._column(name) for name in names], typed=self._from_csv)
            if len(self._shapes) < _MAX_ROW_SHAPES:
                self._shapes[names] = shape
        if shape.builds is not None:
            return shape.build(list(record.values()))
        return self._typed_and_nested_by_cell(record)

    def _column(self, key: str) -> tuple[int, tuple[str, ...], str]:
        plan = self._plans.get(key)
        if plan is None:
            plan = _column_plan(key)
            if len(self._plans) < _MAX_COLUMN_PLANS:
                self._plans[key] = plan
        return plan

    def _typed_and_nested_by_cell(self, record: dict[str, Any]) -> dict[str, Any]:
        """The general case, one cell at a time: columns whose paths overlap (`properties`
        holding JSON text and `properties.plan`), JSON-text object columns."""
        typed = self._from_csv
        nested: dict[str, Any] = {}
        owned: set[int] = set()  # dicts created here, safe to write into; the caller's are copied first
        for key, cell in record.items():
            kind, parents, leaf = self._column(key)
            value = cell
            if typed and kind != _TEXT and isinstance(cell, str):
                if kind == _DATA:
                    value = coerce_cell(cell)
                elif cell.strip():
                    value = parse_embedded_json(cell, fallback=cell)
                else:
                    continue  # a blank object cell is absent
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

    def _build(self, spec: dict[str, Any]) -> dict[str, Any]:
        call_type = spec.get("type")
        if type(call_type) is not str or call_type not in _CANONICAL_TYPES:
            call_type = _call_type(call_type, self._job.default_type)
        _check_objects(spec)
        message: dict[str, Any] = {"type": call_type}
        for key in _BUILD_KEYS[call_type]:
            value = spec.get(key)
            if key in _ID_KEYS:
                value = value.strip() or None if type(value) is str else _as_id(value, key)
            if value is not None and value != "":
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


class _RowShape:
    """How to type and nest every row with one particular tuple of column names.

    Planned only when no column's path lies inside another's (`a.b` with `a` or `a.b.c`)
    and no column holds a whole object as JSON text: then every cell lands in a fresh dict
    of its own and nothing merges, so building the nested dicts node by node gives exactly
    what the cell-by-cell walk gives, keys in the same order. Otherwise `builds` is None.
    """

    __slots__ = ("builds", "coerced")

    def __init__(self, coerced: tuple[int, ...], builds: list[tuple[tuple[str, ...], Any]] | None) -> None:
        self.coerced = coerced  # indexes of the cells to coerce
        self.builds = builds  # per node, innermost first: (its keys, getter of its values)

    @classmethod
    def plan(
        cls, names: tuple[str, ...], columns: list[tuple[int, tuple[str, ...], str]], *, typed: bool
    ) -> _RowShape:
        paths = [(*parents, leaf) for _, parents, leaf in columns]
        leaves = set(paths)
        if (typed and any(kind == _OBJECT for kind, _, _ in columns)) or any(
            path[:depth] in leaves for path in paths for depth in range(1, len(path))
        ):
            return cls((), None)
        coerced = tuple(i for i, (kind, _, _) in enumerate(columns) if typed and kind == _DATA)
        # Each node's entries in first-appearance order: a cell index, or a child node's path.
        nodes: dict[tuple[str, ...], dict[str, int | tuple[str, ...]]] = {(): {}}
        for index, path in enumerate(paths):
            for depth in range(len(path) - 1):
                parent, child = path[:depth], path[: depth + 1]
                if child not in nodes:
                    nodes[child] = {}
                    nodes[parent][path[depth]] = child
            nodes[path[:-1]][path[-1]] = index
        # Children are built before their parents; each built node is appended to the values.
        slots, builds = {}, []
        for node_path in sorted(nodes, key=len, reverse=True):
            entries = nodes[node_path]
            indexes = [entry if isinstance(entry, int) else slots[entry] for entry in entries.values()]
            getter = itemgetter(*indexes) if len(indexes) > 1 else _getter_of_few(indexes)
            slots[node_path] = len(names) + len(builds)
            builds.append((tuple(entries), getter))
        return cls(coerced, builds)

    def build(self, values: list[Any]) -> dict[str, Any]:
        for index in self.coerced:
            cell = values[index]
            if isinstance(cell, str):
                values[index] = coerce_cell(cell)
        node: dict[str, Any] = {}
        for keys, getter in self.builds:  # type: ignore[union-attr]
            node = dict(zip(keys, getter(values), strict=True))
            values.append(node)
        return node


def _getter_of_few(indexes: list[int]) -> Any:
    """A getter of no value or one value as a tuple (itemgetter wants 1+ indexes, and with
    one index returns the bare value)."""
    if not indexes:
        return lambda values: ()
    index = indexes[0]
    return lambda values: (values[index],)


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


def _check_objects(spec: dict[str, Any]) -> None:
    for key in _OBJECT_KEYS:
        value = spec.get(key)
        if value is not None and not isinstance(value, dict):
            raise Reject(reasons.INVALID_FIELD, f"{key} must be an object, not {type(value).__name__}")


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


def _column_plan(key: str) -> tuple[int, tuple[str, ...], str]:
    """How a CSV cell of this column is typed (objects kept as JSON text are parsed, data
    cells coerced, the rest left as text), and where its dotted name puts it."""
    if key in _OBJECT_KEYS:
        kind = _OBJECT
    elif _holds_data(key):
        kind = _DATA
    else:
        kind = _TEXT
    *parents, leaf = key.split(".")
    return kind, tuple(parents), leaf


def _holds_data(key: str) -> bool:
    """Cells under properties/traits, and bare columns (which become properties or traits)."""
    head, dot, _ = key.partition(".")
    if dot:
        return head in ("properties", "traits")
    # A column spelling a Segment field ("User ID") is an id or a time, kept as written.
    return key not in _CSV_KEYS_KEPT_AS_TEXT and canonical_field(key) is None
