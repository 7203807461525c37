"""Helpers the vendor profiles share: moving vendor fields into Segment's `context`, ids,
and the tagged source ids messageIds are derived from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Segment's own `context.library` names this importer on every message (mapper); the
# library an export recorded (Mixpanel's `mp_lib`, PostHog's `$lib`, an archived message's
# `context.library`) is kept under this key, so it is not lost and not mistaken for ours.
SOURCE_LIBRARY_KEY = "sourceLibrary"

SpecRecord = tuple[dict[str, Any], str | None]
ContextTable = Mapping[str, tuple[str, ...]]


def move_to_context(fields: dict[str, Any], table: ContextTable, context: dict[str, Any]) -> None:
    """Pop every field named in `table` out of `fields` into `context` at its path. The first
    value for a path wins (tables list a vendor's preferred name first); empty values are
    dropped, as the vendor's own SDKs leave them out."""
    if fields.keys().isdisjoint(table):
        return
    for name, path in table.items():
        if name not in fields:
            continue
        value = fields.pop(name)
        if value is None or value == "":
            continue
        nest(context, path, value)


def nest(root: dict[str, Any], path: tuple[str, ...], value: Any) -> bool:
    """Put `value` at `path` under `root`; False (nothing written) where that would overwrite."""
    node = root
    for name in path[:-1]:
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            return False
        node = child
    if path[-1] in node:
        return False
    node[path[-1]] = value
    return True


def drop_internals(fields: dict[str, Any], names: frozenset[str], prefixes: tuple[str, ...] = ()) -> None:
    """Remove a vendor's ingestion and SDK bookkeeping (never event data) from `fields`."""
    for name in [name for name in fields if name in names or (prefixes and name.startswith(prefixes))]:
        del fields[name]


def first(record: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = record.get(name)
        if value not in (None, ""):
            return value
    return None


def text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def as_source_id(value: Any) -> str | None:
    result = text(value)
    return result if result and result.strip() else None


def tagged(source: str, source_id: str | None) -> str | None:
    """A source id tagged with its tool, so ids from different tools never collide."""
    return f"{source}:{source_id}" if source_id else None


def without_empty(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None and value != ""}


def merged_traits(*layers: Any) -> dict[str, Any]:
    """Objects merged left to right (later wins); anything that is not an object is skipped."""
    traits: dict[str, Any] = {}
    for layer in layers:
        if isinstance(layer, dict):
            traits.update(layer)
    return traits


def other_id(ids: Iterable[Any], known: str | None) -> str | None:
    """The first id in `ids` that is not `known` (a merge event's previous id)."""
    for value in ids:
        candidate = text(value)
        if candidate and candidate != known:
            return candidate
    return None


# Segment spec `context.campaign` from the UTM parameters every vendor records.
UTM_CONTEXT: ContextTable = {
    "utm_source": ("campaign", "source"),
    "utm_medium": ("campaign", "medium"),
    "utm_campaign": ("campaign", "name"),
    "utm_term": ("campaign", "term"),
    "utm_content": ("campaign", "content"),
}
