"""What every profile shares: the `Profile` type and small helpers for building spec records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# (a record keyed like a Segment message, the record's own unique id tagged with its source)
SpecRecord = tuple[dict[str, Any], str | None]


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


def first(record: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = record.get(name)
        if value not in (None, ""):
            return value
    return None


def text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def as_source_id(value: Any) -> str | None:
    value_text = text(value)
    return value_text if value_text and value_text.strip() else None


def tagged(source: str, source_id: str | None) -> str | None:
    return f"{source}:{source_id}" if source_id else None


def without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None and value != ""}
