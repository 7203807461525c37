"""Mixpanel raw export lines: `{"event": ..., "properties": {"time", "distinct_id",
"$insert_id", ...}}`. Mixpanel dedupes on (event, distinct_id, time, $insert_id)."""

from __future__ import annotations

from typing import Any

from segment_importer.mapping.profiles.common import (
    Profile,
    SpecRecord,
    as_source_id,
    tagged,
    text,
    without_none,
)


def matches(record: dict[str, Any]) -> bool:
    properties = record.get("properties")
    return (
        "event" in record
        and isinstance(properties, dict)
        and "type" not in record
        and "userId" not in record
        and "anonymousId" not in record
        and "timestamp" not in record  # Mixpanel lines keep the time and ids in properties;
        and "distinct_id" not in record  # PostHog's put them at the top as well
        and ("distinct_id" in properties or "$insert_id" in properties or "time" in properties)
    )


def to_spec(record: dict[str, Any]) -> SpecRecord:
    properties = dict(record.get("properties") or {})
    raw_distinct_id = properties.get("distinct_id")
    distinct_id = text(properties.pop("distinct_id", None))
    user_id = text(properties.pop("$user_id", None))
    device_id = text(properties.pop("$device_id", None))
    if distinct_id and distinct_id.startswith("$device:"):
        device_id = device_id or distinct_id.removeprefix("$device:")
        distinct_id = None
    elif distinct_id == device_id and not user_id:  # before ID merge: an anonymous event's id
        distinct_id = None
    spec: dict[str, Any] = {
        "type": "track",
        "event": record.get("event"),
        "userId": user_id or distinct_id,
        "anonymousId": device_id,
        "timestamp": properties.pop("time", None),
    }
    context = _mixpanel_context(properties)
    if context:
        spec["context"] = context
    insert_id = as_source_id(properties.pop("$insert_id", None))
    source_id = insert_id and f"{record.get('event')}|{raw_distinct_id}|{spec.get('timestamp')}|{insert_id}"
    spec["properties"] = properties
    return without_none(spec), tagged("mixpanel", source_id)


def _mixpanel_context(properties: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    ip = properties.pop("ip", None)
    if ip:
        context["ip"] = ip
    url = properties.get("$current_url")
    if url:
        context["page"] = {"url": url}
    return context


MIXPANEL = Profile("mixpanel", matches, to_spec)
