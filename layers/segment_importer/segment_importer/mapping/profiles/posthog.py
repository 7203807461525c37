"""PostHog: event exports and capture batches.

Shapes (see tests/fixtures/vendors/posthog/README.md):
- an exported event (the events table, batch exports, the events API):
  `{"uuid": "0195...", "event": "$pageview", "distinct_id": "...", "timestamp": "...",
  "properties": {"$current_url": ..., "$lib": "web", "$set": {...}, ...}, "elements_chain": ...}`;
- a capture batch `{"api_key": ..., "batch": [{"event": ..., "properties": {"distinct_id": ...,
  "$lib": ..., "$time": 1741912549.921}, "timestamp": ...}]}` (read as its array by `formats`).

`distinct_id` is the userId unless the event is anonymous (it equals `$device_id`, or
`$is_identified` is false); `$device_id` is the anonymousId. `uuid` (else `$insert_id`) is the
source id. `$set`/`$set_once` are traits, never properties. SDK internals are dropped.
"""

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
from segment_importer.mapping.profiles.context_paths import (
    SOURCE_LIBRARY_KEY,
    UTM_CONTEXT,
    internal_names,
    merged_traits,
    move_to_context,
)

NAME = "posthog"
CONTEXT_FIELDS = {
    "$ip": ("ip",),
    "$raw_user_agent": ("userAgent",),
    "$current_url": ("page", "url"),
    "$pathname": ("page", "path"),
    "$title": ("page", "title"),
    "$referrer": ("page", "referrer"),
    "$browser": ("browser", "name"),
    "$browser_version": ("browser", "version"),
    "$os": ("os", "name"),
    "$os_name": ("os", "name"),
    "$os_version": ("os", "version"),
    "$device_type": ("device", "type"),
    "$device_manufacturer": ("device", "manufacturer"),
    "$device_model": ("device", "model"),
    "$device": ("device", "model"),
    "$device_name": ("device", "name"),
    "$screen_height": ("screen", "height"),
    "$screen_width": ("screen", "width"),
    "$screen_density": ("screen", "density"),
    "$app_name": ("app", "name"),
    "$app_version": ("app", "version"),
    "$app_build": ("app", "build"),
    "$app_namespace": ("app", "namespace"),
    "$network_carrier": ("network", "carrier"),
    "$network_wifi": ("network", "wifi"),
    "$network_cellular": ("network", "cellular"),
    "$browser_language": ("locale",),
    "$locale": ("locale",),
    "$timezone": ("timezone",),
    "$geoip_time_zone": ("timezone",),
    "$geoip_city_name": ("location", "city"),
    "$geoip_subdivision_1_name": ("location", "region"),
    "$geoip_country_code": ("location", "country"),
    "$geoip_latitude": ("location", "latitude"),
    "$geoip_longitude": ("location", "longitude"),
    "$lib": (SOURCE_LIBRARY_KEY, "name"),
    "$lib_version": (SOURCE_LIBRARY_KEY, "version"),
    **UTM_CONTEXT,
}
# SDK and pipeline bookkeeping: never event data.
INTERNALS = frozenset(
    {
        "token",
        "$time",
        "$sent_at",
        "$is_identified",
        "$process_person_profile",
        "$configured_session_timeout_ms",
        "$ce_version",
        "$recording_status",
        "$initial_person_info",
        "$transformations_succeeded",
        "$transformations_failed",
        "$feature_flag_request_id",
        "$window_id",
        "$pageview_id",
        "$web_vitals_allowed_metrics",
        "$referring_domain",
        "$browser_language_prefix",
        "$host",
        "$el_text",
        "$event_type",
        "$anon_distinct_id",
    }
)
IS_INTERNAL = internal_names(
    INTERNALS,
    prefixes=("$sdk_debug_", "$lib", "$session_recording_", "$replay_", "$geoip_"),
    suffixes=("_server_side",),
)
# Top-level columns of an exported event that are PostHog's storage, not the event.
_PAGE_EVENTS = {"$pageview": "page", "$screen": "screen"}
_NO_REFERRER = "$direct"


def matches(record: dict[str, Any]) -> bool:
    if "event" not in record or "type" in record or "userId" in record or "anonymousId" in record:
        return False
    properties = record.get("properties")
    if not isinstance(properties, dict):
        return False
    if "$lib" in properties or "$set" in properties or "$set_once" in properties:
        return True  # PostHog's SDKs write `$lib`; Mixpanel's write `mp_lib`
    # An exported event: top-level uuid, or distinct_id with a top-level timestamp.
    return "uuid" in record or ("distinct_id" in record and "timestamp" in record)


def to_spec(record: dict[str, Any]) -> SpecRecord:
    recorded = record.get("properties") or {}
    if not isinstance(recorded, dict):  # (a forced source) left to validation: invalid_field
        return {"type": "track", "event": record.get("event"), "properties": recorded}, None
    properties = dict(recorded)
    event = record.get("event")
    spec = _identities(record, properties)
    spec["timestamp"] = first(record, "timestamp") or properties.get("$time")
    traits = merged_traits(
        properties.pop("$set_once", None), record.get("person_properties"), properties.pop("$set", None)
    )
    call_type = _PAGE_EVENTS.get(event, "track") if isinstance(event, str) else "track"
    if event == "$identify":
        call_type = "identify"
        spec["anonymousId"] = spec.get("anonymousId") or text(properties.get("$anon_distinct_id"))
    elif event == "$create_alias":
        call_type = "alias"
        spec.update(previousId=spec.pop("userId", None), userId=text(properties.pop("alias", None)))
    elif event == "$groupidentify":
        call_type = "group"
        spec["groupId"] = text(properties.pop("$group_key", None))
        group_set = properties.pop("$group_set", None)
        group_set = group_set if isinstance(group_set, dict) else {}
        traits = {"groupType": properties.pop("$group_type", None), **group_set}
    spec["type"] = call_type
    if call_type == "track":
        spec["event"] = event
    elif call_type == "screen":
        spec["name"] = properties.pop("$screen_name", None)
    elif call_type == "page":
        spec["name"] = properties.get("$title")
    if properties.get("$referrer") == _NO_REFERRER:  # PostHog's word for "no referrer"
        del properties["$referrer"]
    source_id = as_source_id(record.get("uuid")) or as_source_id(properties.pop("$insert_id", None))
    properties.pop("$insert_id", None)
    context: dict[str, Any] = {}
    move_to_context(properties, CONTEXT_FIELDS, context)
    _place(spec, call_type, properties, traits, context)
    return without_none(spec), tagged(NAME, source_id)


def _identities(record: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    distinct_id = text(record.get("distinct_id")) or text(properties.get("distinct_id"))
    properties.pop("distinct_id", None)
    device_id = text(properties.pop("$device_id", None))
    anonymous = distinct_id == device_id or properties.get("$is_identified") is False
    if anonymous:
        return {"anonymousId": device_id or distinct_id}
    return {"userId": distinct_id, "anonymousId": device_id}


def _place(
    spec: dict[str, Any],
    call_type: str,
    properties: dict[str, Any],
    traits: dict[str, Any],
    context: dict[str, Any],
) -> None:
    """Traits are the identify/group call's own; on other calls they describe the user, in
    `context.traits`. Event properties belong to track, page and screen calls only."""
    if call_type in ("identify", "group"):
        spec["traits"] = traits
    elif traits:
        context["traits"] = traits
    if call_type in ("track", "page", "screen"):
        spec["properties"] = properties
    spec["context"] = context


POSTHOG = Profile(NAME, matches, to_spec, IS_INTERNAL)
