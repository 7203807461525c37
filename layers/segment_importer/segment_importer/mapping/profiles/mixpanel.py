"""Mixpanel: raw export lines, tables landed by connectors, and people (engage) exports.

Shapes (see tests/fixtures/vendors/mixpanel/README.md for where each comes from):
- raw export NDJSON: `{"event": "Signed Up", "properties": {"time": 1614834367,
  "distinct_id": "u1", "$insert_id": "...", "$browser": "Chrome", "mp_lib": "web", ...}}`;
- connector tables (Airbyte, Fivetran, Stitch) with `properties` as JSON text;
- engage export: `{"$distinct_id": "u1", "$properties": {"$email": "...", "$last_seen": ...}}`.

Default properties go to `context` where Segment's Mixpanel destination reads them back
from (segmentio/action-destinations, mixpanel/trackEvent/functions.ts maps context.os.name
to `$os`, context.screen.width to `$screen_width`, context.location.country to
`mp_country_code`, ...). Ingestion internals are dropped unless the job keeps them.
"""

from __future__ import annotations

from typing import Any

import orjson

from segment_importer.mapping.profiles.common import (
    Profile,
    SpecRecord,
    as_source_id,
    tagged,
    text,
    without_none,
)
from segment_importer.mapping.profiles.context_paths import (
    SOURCE_LIBRARY_KEY,
    UTM_CONTEXT,
    internal_names,
    move_to_context,
    other_id,
)

NAME = "mixpanel"
_ID_MARKERS = ("distinct_id", "$insert_id", "time", "mp_lib", "$mp_api_endpoint")
# A line with one of these is a Segment message (or PostHog's, with its top-level time).
_SEGMENT_FIELDS = frozenset({"type", "userId", "anonymousId", "timestamp"})

# Mixpanel default property -> Segment context path; the first name listed for a path wins.
CONTEXT_FIELDS = {
    "ip": ("ip",),
    "$ip": ("ip",),
    "$current_url": ("page", "url"),
    "$referrer": ("page", "referrer"),
    "$browser": ("browser", "name"),
    "$browser_version": ("browser", "version"),
    "$os": ("os", "name"),
    "$os_version": ("os", "version"),
    "$device": ("device", "name"),
    "$device_name": ("device", "name"),
    "$device_type": ("device", "type"),
    "$model": ("device", "model"),
    "$ios_device_model": ("device", "model"),
    "$manufacturer": ("device", "manufacturer"),
    "$brand": ("device", "brand"),
    "$ios_ifa": ("device", "advertisingId"),
    "$android_advertising_id": ("device", "advertisingId"),
    "$screen_height": ("screen", "height"),
    "$screen_width": ("screen", "width"),
    "$screen_density": ("screen", "density"),
    "$screen_dpi": ("screen", "density"),
    "$city": ("location", "city"),
    "$region": ("location", "region"),
    "mp_country_code": ("location", "country"),
    "$country_code": ("location", "country"),
    "$carrier": ("network", "carrier"),
    "$wifi": ("network", "wifi"),
    "$wifi_enabled": ("network", "wifi"),
    "$bluetooth_enabled": ("network", "bluetooth"),
    "$cellular_enabled": ("network", "cellular"),
    "$app_version_string": ("app", "version"),
    "$app_version": ("app", "version"),
    "$app_build_number": ("app", "build"),
    "$app_release": ("app", "build"),
    "$app_namespace": ("app", "namespace"),
    "$app_name": ("app", "name"),
    "$locale": ("locale",),
    "$timezone": ("timezone",),
    "mp_lib": (SOURCE_LIBRARY_KEY, "name"),
    "$lib_version": (SOURCE_LIBRARY_KEY, "version"),
    **UTM_CONTEXT,
}
# Written by Mixpanel's ingestion and SDKs, not by the tracked product: dropped.
INTERNALS = frozenset(
    {
        "$mp_api_endpoint",
        "$mp_api_timestamp_ms",
        "mp_processing_time_ms",
        "mp_sent_by_lib_version",
        "$lib",
        "token",
        "$import",
        "$had_persisted_distinct_id",
        "$distinct_id_before_identity",
        "$source",
    }
)
IS_INTERNAL = internal_names(INTERNALS, prefixes=("$mp_",))
# People profile reserved properties -> Segment traits (the Mixpanel destination's
# identify mapping, read backwards).
PROFILE_TRAITS = {
    "$email": "email",
    "$name": "name",
    "$first_name": "firstName",
    "$last_name": "lastName",
    "$phone": "phone",
    "$created": "createdAt",
    "$username": "username",
    "$avatar": "avatar",
}


def matches(record: dict[str, Any]) -> bool:
    if "$distinct_id" in record and isinstance(record.get("$properties"), dict | str):
        return True  # an engage (people) export line
    if "event" not in record or not record.keys().isdisjoint(_SEGMENT_FIELDS):
        return False
    properties = _properties(record)
    if properties is None:
        return False
    return "$lib" not in properties and any(marker in properties for marker in _ID_MARKERS)


def to_spec(record: dict[str, Any]) -> SpecRecord:
    if "$distinct_id" in record:
        return _from_profile(record)
    properties = _properties(record) or {}
    for name in ("distinct_id", "time"):  # connector tables may hold them as columns of their own
        if name not in properties and name in record:
            properties[name] = record[name]
    event = record.get("event")
    raw_distinct_id = properties.get("distinct_id")
    spec: dict[str, Any] = {"timestamp": properties.pop("time", None)}
    spec.update(_identities(properties))
    spec.update(_call(event, properties, spec, text(raw_distinct_id)))
    insert_id = as_source_id(properties.pop("$insert_id", None))
    # Mixpanel dedupes on (event, distinct_id, time, $insert_id): so does the derived id.
    source_id = insert_id and f"{event}|{raw_distinct_id}|{spec.get('timestamp')}|{insert_id}"
    context: dict[str, Any] = {}
    move_to_context(properties, CONTEXT_FIELDS, context)
    spec.update(context=context, properties=properties)
    if spec["type"] != "track":  # what identify and alias events carry besides ids is traits
        remaining = spec.pop("properties")
        if remaining:
            spec["traits" if spec["type"] == "identify" else "properties"] = remaining
    return without_none(spec), tagged(NAME, source_id)


def _call(
    event: Any, properties: dict[str, Any], ids: dict[str, Any], distinct_id: str | None
) -> dict[str, Any]:
    """The call an event is: Mixpanel's identity events are identify and alias calls."""
    if event == "$identify":
        user_id = text(properties.pop("$identified_id", None)) or ids.get("userId")
        anonymous_id = text(properties.pop("$anon_distinct_id", None)) or ids.get("anonymousId")
        return {"type": "identify", "userId": user_id, "anonymousId": anonymous_id}
    if event == "$create_alias":  # mixpanel.alias(alias, original): the original is distinct_id
        alias = text(properties.pop("alias", None))
        return {"type": "alias", "previousId": distinct_id, "userId": alias, "anonymousId": None}
    if event == "$merge":
        user_id = ids.get("userId") or distinct_id
        previous_id = other_id(properties.pop("$distinct_ids", None) or [], user_id)
        return {"type": "alias", "userId": user_id, "previousId": previous_id}
    return {"type": "track", "event": event}


def _identities(properties: dict[str, Any]) -> dict[str, Any]:
    """userId = `$user_id`, else `distinct_id` unless that is the device (an anonymous event
    of a project without ID merge); anonymousId = `$device_id`, or a `$device:` distinct_id."""
    distinct_id = text(properties.pop("distinct_id", None))
    user_id = text(properties.pop("$user_id", None))
    device_id = text(properties.pop("$device_id", None))
    if distinct_id and distinct_id.startswith("$device:"):
        device_id = device_id or distinct_id.removeprefix("$device:")
        distinct_id = None
    elif distinct_id == device_id and not user_id:
        distinct_id = None
    return {"userId": user_id or distinct_id, "anonymousId": device_id}


def _from_profile(record: dict[str, Any]) -> SpecRecord:
    """An engage export line: an identify call, `$properties` as traits."""
    properties = _parsed(record.get("$properties")) or {}
    traits = {PROFILE_TRAITS.get(name, name): value for name, value in properties.items()}
    context: dict[str, Any] = {}
    move_to_context(traits, CONTEXT_FIELDS, context)
    last_seen = traits.pop("$last_seen", None)  # when Mixpanel last updated the profile
    spec = {
        "type": "identify",
        "userId": text(record.get("$distinct_id")),
        "traits": traits,
        "context": context,
        "timestamp": last_seen,
    }
    return without_none(spec), None


def _properties(record: dict[str, Any]) -> dict[str, Any] | None:
    properties = _parsed(record.get("properties"))
    if properties is not None:
        record["properties"] = properties
    return dict(properties) if properties is not None else None


def _parsed(value: Any) -> dict[str, Any] | None:
    """An object, or an object held as JSON text (connector tables land `properties` so)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


MIXPANEL = Profile(NAME, matches, to_spec, IS_INTERNAL)
