"""Amplitude export lines (`event_type`, `event_time`, `user_id`, `device_id`,
`event_properties`, `user_properties`, `insert_id`, ...). Amplitude dedupes on insert_id per
user or device."""

from __future__ import annotations

from typing import Any

from segment_importer.mapping.profiles.common import (
    Profile,
    SpecRecord,
    as_source_id,
    first,
    tagged,
    text,
    without_none,
)


def matches(record: dict[str, Any]) -> bool:
    # An export with both names keeps `event_type` as data.
    return "event_type" in record and "type" not in record and "event" not in record


def to_spec(record: dict[str, Any]) -> SpecRecord:
    event_type = record.get("event_type")
    user_properties = record.get("user_properties") or {}
    spec: dict[str, Any] = {
        "userId": text(record.get("user_id")),
        "anonymousId": text(record.get("device_id")),
        "timestamp": first(record, "event_time", "client_event_time", "server_upload_time"),
    }
    if event_type == "$identify":
        spec.update(type="identify", traits=user_properties)
    else:
        spec.update(type="track", event=event_type, properties=record.get("event_properties") or {})
        if user_properties:
            spec["context"] = {"traits": user_properties}
    context = _amplitude_context(record)
    if context:
        spec["context"] = {**spec.get("context", {}), **context}
    insert_id = as_source_id(first(record, "insert_id", "$insert_id"))
    if insert_id:
        source_id = f"{record.get('user_id') or ''}|{record.get('device_id') or ''}|{insert_id}"
    else:
        source_id = as_source_id(record.get("uuid"))  # Amplitude's own id for the stored event
    return without_none(spec), tagged("amplitude", source_id)


def _amplitude_context(record: dict[str, Any]) -> dict[str, Any]:
    nested = {
        "ip": record.get("ip_address"),
        "os": without_none({"name": record.get("os_name"), "version": record.get("os_version")}),
        "device": without_none(
            {
                "id": record.get("device_id"),
                "model": record.get("device_model"),
                "manufacturer": record.get("device_manufacturer"),
                "type": record.get("device_type"),
            }
        ),
        "app": without_none({"version": first(record, "version_name", "app_version")}),
        "location": without_none(
            {"country": record.get("country"), "city": record.get("city"), "region": record.get("region")}
        ),
        "library": without_none({"name": record.get("library")}),
    }
    return {key: value for key, value in nested.items() if value}


AMPLITUDE = Profile("amplitude", matches, to_spec)
