"""What every profile shares: the `Profile` type and small helpers for building spec records."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segment_importer.mapping.coercion import parse_embedded_json

# (a record keyed like a Segment message, the record's own unique id tagged with its source)
SpecRecord = tuple[dict[str, Any], str | None]
_NAME_WORDS = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Profile:
    """One export shape: its name (a job file's `source`), whether a record looks like it
    (checked per record, so cheap key tests only), and the rewrite into Segment's spec shape.

    `to_spec` takes a parsed record (a fresh dict the caller owns) and returns
    `(spec_record, source_id)`; a source id is tagged with the profile's name and includes
    what the source itself dedupes on, so ids from different tools never collide.
    """

    name: str
    matches: Callable[[dict[str, Any]], bool]
    to_spec: Callable[[dict[str, Any]], SpecRecord]
    # Names of the vendor's ingestion/SDK bookkeeping: the mapper drops them from properties
    # and traits unless the job sets `keepVendorInternals`.
    is_internal: Callable[[str], bool] | None = None
    # What the name of the file a record came from says about its spec record, where the
    # record's columns cannot (Heap's `pageviews` table has no column naming its rows):
    # `in_file(spec, file_key)` completes the spec in place; None: the name says nothing.
    in_file: Callable[[dict[str, Any], str], None] | None = None
    # True where the source id already holds the event, the user and the time as exported
    # (Mixpanel's dedupe key, GA4's row key): the mapper uses it as it is (`SharedIds` adds
    # nothing), so a job's timezone, which changes the mapped timestamp, leaves it alone.
    ids_tell_apart: bool = False


def file_name_words(key: str) -> frozenset[str]:
    """The lower-case words of a file's name, without its folders or archive (`zip!member`):
    `prod/main_production.pageviews_0000_part_00.csv` -> main, production, pageviews, ..."""
    name = key.rsplit("/", 1)[-1].rsplit("!", 1)[-1].lower()
    return frozenset(word for word in _NAME_WORDS.split(name) if word)


def first(record: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = record.get(name)
        if value not in (None, ""):
            return value
    return None


def text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():  # 7.0 from a JSON number is the id "7"
        value = int(value)
    return str(value)


def as_source_id(value: Any) -> str | None:
    value_text = text(value)
    return value_text if value_text and value_text.strip() else None


def tagged(source: str, source_id: str | None) -> str | None:
    return f"{source}:{source_id}" if source_id else None


def without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None and value != ""}


def json_object(value: Any) -> dict[str, Any] | None:
    """An object, or an object held as JSON text (connector tables and batch exports land
    `properties` so); None for anything else."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        parsed = parse_embedded_json(value, None)
        return parsed if isinstance(parsed, dict) else None
    return None
