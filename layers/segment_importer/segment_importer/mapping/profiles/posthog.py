"""PostHog: event exports and capture batches.

Shapes (see tests/fixtures/vendors/posthog/README.md):
- an exported event (the events table, batch exports, the events API):
  `{"uuid": "0195...", "event": "$pageview", "distinct_id": "...", "timestamp": "...",
  "properties": {"$current_url": ..., "$lib": "web", "$set": {...}, ...}, "elements_chain": ...}`;
  the events API and its CSV export call the uuid `id`; batch exports to BigQuery, Postgres,
  Redshift and Snowflake hold `properties`, `set` and `set_once` (Snowflake: `people_set`,
  `people_set_once`) as JSON text, with `ip`, `elements`, `site_url` beside them;
- an EventsQuery (HogQL) CSV export: the selected `*` is the event, flattened to `*.uuid`,
  `*.event`, `*.properties.<name>`, ... (read as a `*` object beside the other columns);
- a capture batch `{"api_key": ..., "batch": [{"event": ..., "properties": {"distinct_id": ...,
  "$lib": ..., "$time": 1741912549.921}, "timestamp": ...}]}` (read as its array by `formats`).

`distinct_id` is the userId unless the event is anonymous (it equals `$device_id`, or
`$is_identified` is false); `$device_id` is the anonymousId. The event's uuid (`uuid`, else
`id`, else `$insert_id`) is the source id, in every form. `$set`/`$set_once` (and the person's
properties) are traits, never properties. SDK internals are dropped; the export's storage
columns (`_NOT_SENT`) are not sent, and any other top-level column is a property.
"""

from __future__ import annotations

import uuid
from typing import Any

from segment_importer.mapping.coercion import coerce_text
from segment_importer.mapping.profiles.common import (
    Profile,
    SpecRecord,
    as_source_id,
    first,
    json_object,
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
    with_page_properties,
)
from segment_importer.mapping.shaping import LeftOut

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
# Top-level columns of an exported event that are PostHog's storage or the export's
# bookkeeping, not the event: the autocapture DOM chain (`elements` is the batch exports'
# JSON text of `elements_chain`), the project, the person's internal id and mode, ingestion
# times, a batch export's constant `site_url` and BigQuery's load time, and the library
# posthog-php repeats beside `$lib`.
_NOT_SENT = frozenset(
    {
        "elements_chain",
        "elements",
        "team_id",
        "person_id",
        "person_mode",
        "created_at",
        "site_url",
        "bq_ingested_timestamp",
        "library",
        "library_version",
        "library_consumer",
    }
)
# Top-level columns `to_spec` reads; every other one is an event property.
_READ = frozenset(
    {
        "event",
        "distinct_id",
        "timestamp",
        "properties",
        "uuid",
        "id",
        "ip",
        "person",
        "person_properties",
        "$set",
        "$set_once",
        "set",
        "set_once",
        "people_set",
        "people_set_once",
    }
)
_KNOWN_COLUMNS = _NOT_SENT | _READ
# An EventsQuery export's `*` column: the event itself, flattened as `*.uuid`, `*.event`, ...
_STAR = "*"
_PAGE_EVENTS = {"$pageview": "page", "$screen": "screen"}
# `$set` events (posthog.capture("$set", {"$set": ...})) exist only to set person properties.
_IDENTIFY_EVENTS = frozenset({"$identify", "$set"})
_NO_REFERRER = "$direct"
# The persons batch export (PostHog/posthog posthog/batch_exports/sql.py, persons_batch_export:
# team_id, distinct_id, person_id, properties, person_distinct_id_version, person_version,
# created_at, _inserted_at; is_deleted in later versions; the first view had one `version`):
# the versions mark a persons row.
_PERSON_VERSIONS = frozenset({"person_version", "person_distinct_id_version", "version"})
# Person properties that are PostHog's bookkeeping (the event that created the person).
_PERSON_INTERNALS = frozenset({"$creator_event_uuid", "$device_id"})
_INITIAL_REFERRERS = ("$initial_referrer", "$initial_referring_domain")
PERSON_DELETED_RULE = "posthog_deleted_person"  # what the report's filtered_by counts them under


def matches(record: dict[str, Any]) -> bool:
    if "type" in record or "userId" in record or "anonymousId" in record:
        return False
    star = record.get(_STAR)
    if isinstance(star, dict) and "event" in star and ("uuid" in star or "distinct_id" in star):
        return True  # an EventsQuery export's `*` column
    if "event" not in record:
        return _is_person(record)
    properties = record.get("properties")
    exported = "uuid" in record or ("distinct_id" in record and "timestamp" in record)
    if isinstance(properties, str):  # a batch export's JSON text
        return exported and properties.lstrip().startswith("{")
    if not isinstance(properties, dict):
        return False
    if "$lib" in properties or "$set" in properties or "$set_once" in properties:
        return True  # PostHog's SDKs write `$lib`; Mixpanel's write `mp_lib`
    # An exported event: top-level uuid, or distinct_id with a top-level timestamp.
    return exported


def _is_person(record: dict[str, Any]) -> bool:
    """A row of the persons batch export: a distinct id, its person and the person's version."""
    return (
        "distinct_id" in record
        and "person_id" in record
        and "properties" in record
        and not record.keys().isdisjoint(_PERSON_VERSIONS)
    )


def to_spec(record: dict[str, Any]) -> SpecRecord:
    if "event" not in record and _is_person(record):
        return _from_person(record)
    if isinstance(record.get(_STAR), dict):
        record = _unstarred(record)
    recorded = _object(record.get("properties")) or {}
    if not isinstance(recorded, dict):  # (a forced source) left to validation: invalid_field
        return {"type": "track", "event": record.get("event"), "properties": recorded}, None
    properties = dict(recorded)
    event = record.get("event")
    spec = _identities(record, properties)
    spec["timestamp"] = first(record, "timestamp") or properties.get("$time")
    traits = _person_traits(record, properties)
    event_uuid = _event_uuid(record)
    _add_columns(record, properties, event_uuid)
    named = isinstance(event, str)
    call_type = _PAGE_EVENTS.get(event, "track") if named else "track"
    if named and event in _IDENTIFY_EVENTS:
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
    source_id = event_uuid or as_source_id(properties.pop("$insert_id", None))
    properties.pop("$insert_id", None)
    context: dict[str, Any] = {}
    move_to_context(properties, CONTEXT_FIELDS, context)
    if call_type == "page":
        with_page_properties(context.get("page"), properties)
    _place(spec, call_type, properties, traits, context)
    return without_none(spec), tagged(NAME, source_id)


def _from_person(record: dict[str, Any]) -> SpecRecord:
    """A persons batch export row (one per distinct id of a person) as an identify: the
    person's properties the traits, where the distinct id is the user (or, posthog-js' own
    anonymous id, the device); the person's geo properties to context, as an event's. A
    deleted person or distinct id is left out (counted), not imported back."""
    if str(record.get("is_deleted", "0")).strip().lower() in ("1", "true"):
        raise LeftOut(PERSON_DELETED_RULE)
    recorded = _object(record.get("properties"))
    traits = dict(recorded) if isinstance(recorded, dict) else {}
    for name in _INITIAL_REFERRERS:
        if traits.get(name) == _NO_REFERRER:
            del traits[name]
    context: dict[str, Any] = {}
    move_to_context(traits, CONTEXT_FIELDS, context)
    distinct_id = text(record.get("distinct_id"))
    anonymous = distinct_id is not None and (
        distinct_id == text(traits.get("$device_id")) or _is_uuid7(distinct_id)
    )
    spec = {
        "type": "identify",
        "anonymousId" if anonymous else "userId": distinct_id,
        "traits": {name: value for name, value in traits.items() if name not in _PERSON_INTERNALS},
        "context": context,
        "timestamp": record.get("_inserted_at"),  # when this version of the person was written
    }
    version = (
        f"{record.get('person_version', record.get('version'))}|{record.get('person_distinct_id_version')}"
    )
    source_id = f"person|{record.get('person_id')}|{distinct_id}|{version}"
    return without_none(spec), tagged(NAME, source_id)


def _is_uuid7(value: str) -> bool:
    """posthog-js (and the mobile SDKs) give an anonymous user a UUIDv7 as distinct id and
    `$device_id` (`uuidv7()`); an id the product identifies a user with rarely is one."""
    try:
        return uuid.UUID(value).version == 7
    except ValueError:
        return False


def _person_traits(record: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """Person properties, earliest first (later wins): `$set_once`, the person's current
    properties, `$set`; from `properties`, the top level (posthog-js) and batch exports."""
    person = record.get("person")
    return merged_traits(
        properties.pop("$set_once", None),
        _object(record.get("$set_once")),
        _object(first(record, "set_once", "people_set_once")),
        person.get("properties") if isinstance(person, dict) else None,
        _object(record.get("person_properties")),
        properties.pop("$set", None),
        _object(record.get("$set")),
        _object(first(record, "set", "people_set")),
    )


def _add_columns(record: dict[str, Any], properties: dict[str, Any], event_uuid: str | None) -> None:
    """The top-level columns that are event data: a batch export's `ip` (a copy of `$ip`), an
    `id` that is not the event's uuid, and every column the profile does not know."""
    if "$ip" not in properties and record.get("ip") not in (None, ""):
        properties["$ip"] = record["ip"]
    if not _KNOWN_COLUMNS.issuperset(record):
        for name, value in record.items():
            if name not in _KNOWN_COLUMNS:
                properties.setdefault(name, value)
    if "id" in record and event_uuid != record["id"]:
        properties.setdefault("id", record["id"])


def _event_uuid(record: dict[str, Any]) -> str | None:
    """The event's uuid: `uuid`, or the events API's `id` when it is one (a uuid)."""
    recorded = as_source_id(record.get("uuid"))
    if recorded:
        return recorded
    candidate = record.get("id")
    if isinstance(candidate, str) and len(candidate) == 36:
        try:
            uuid.UUID(candidate)
        except ValueError:
            return None
        return candidate
    return None


def _object(value: Any) -> Any:
    """An object held as JSON text (batch exports) parsed; anything else as it is (an empty
    text is no object)."""
    if isinstance(value, str):
        if not value.strip():
            return None
        parsed = json_object(value)
        return parsed if parsed is not None else value
    return value


def _unstarred(record: dict[str, Any]) -> dict[str, Any]:
    """An EventsQuery export row: the `*` object is the event; the query's other columns
    (`event`, `timestamp`, `properties.$lib`, ...) repeat it or add to it. Its cells are CSV
    text under a name the reader does not type (`*.properties.prop`): typed here as any
    `properties.<name>` cell is."""
    star = record[_STAR]
    merged = {name: value for name, value in record.items() if name != _STAR}
    merged.update(star)
    inner = star.get("properties")
    if isinstance(inner, dict):
        outer = record.get("properties")
        typed = {name: coerce_text(value) for name, value in inner.items()}
        merged["properties"] = {**outer, **typed} if isinstance(outer, dict) else typed
    return merged


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
