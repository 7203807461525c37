"""Helpers the vendor profiles share to put a vendor's fields where Segment's spec has them:
moving fields into `context` by a table of paths, dropping ingestion internals, traits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

# Segment's own `context.library` names this importer on every message (mapper); the
# library an export recorded (Mixpanel's `mp_lib`, PostHog's `$lib`, an archived message's
# `context.library`) is kept under this key, so it is not lost and not mistaken for ours.
SOURCE_LIBRARY_KEY = "sourceLibrary"

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


def internal_names(
    names: frozenset[str], prefixes: tuple[str, ...] = (), suffixes: tuple[str, ...] = ()
) -> Callable[[str], bool]:
    """A test for a vendor's ingestion and SDK bookkeeping fields (never event data): the
    mapper drops them from properties and traits unless the job keeps them."""

    def is_internal(name: str) -> bool:
        return name in names or name.startswith(prefixes) or name.endswith(suffixes)

    return is_internal


def merged_traits(*layers: Any) -> dict[str, Any]:
    """Objects merged left to right (later wins); anything that is not an object is skipped."""
    traits: dict[str, Any] = {}
    for layer in layers:
        if isinstance(layer, dict):
            traits.update(layer)
    return traits


def other_id(ids: Iterable[Any], known: str | None) -> str | None:
    """The first id in `ids` that is not `known` (a merge event's previous id)."""
    for value in ids if isinstance(ids, list) else ():
        candidate = None if value in (None, "") else str(value)
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


# Segment spec: a page call's reserved properties, which analytics.js sends in `properties`
# as well as in `context.page`, and which destinations (Amplitude, Mixpanel, GA) read there.
PAGE_PROPERTIES = ("url", "title", "referrer", "path", "search")


def with_page_properties(page: Any, properties: Any) -> None:
    """A vendor's page view as analytics.js sends a page call: `path` and `search` from the
    url (as analytics.js takes them from the browser's location) in `page`, and the reserved
    page properties copied into `properties` where the vendor did not set them."""
    if not isinstance(page, dict) or not isinstance(properties, dict):
        return
    url = page.get("url")
    if isinstance(url, str) and url:
        parts = urlsplit(url)
        if parts.path:
            page.setdefault("path", parts.path)
        if parts.query:
            page.setdefault("search", f"?{parts.query}")  # Segment's search keeps the `?`
    for name in PAGE_PROPERTIES:
        if page.get(name) not in (None, ""):
            properties.setdefault(name, page[name])
