"""Mixpanel: raw export lines, tables landed by connectors, and people (engage) exports.

Shapes (see tests/fixtures/vendors/mixpanel/README.md for where each comes from):
- raw export NDJSON: `{"event": "Signed Up", "properties": {"time": 1614834367,
  "distinct_id": "u1", "$insert_id": "...", "$browser": "Chrome", "mp_lib": "web", ...}}`;
- connector tables (Airbyte, Fivetran, Stitch) with `properties` as JSON text;
- engage export: `{"$distinct_id": "u1", "$properties": {"$email": "...", "$last_seen": ...}}`;
- mixpanel-utils' CSV exports (`export_events` / `export_people` with `format="csv"`, its
  `_write_items_to_csv`): one row per event, the `event` column then one column per property
  (`$insert_id`, `distinct_id`, `time`, ...; lists and objects as JSON text), or for people
  `$distinct_id` then one column per `$properties` key: the same records, flattened;
- Fivetran's EVENT table (fivetran/dbt_mixpanel's seed): `name` the event, `insert_id`,
  `time` as a timestamp, custom `properties` as JSON text, default properties as columns
  without their `$` (`screen_width`, `os`, `current_url`, ...) and Fivetran's bookkeeping
  (`_fivetran_id`, `_fivetran_synced`, `_file`, `_line`, `event_id`).

Default properties go to `context` where Segment's Mixpanel destination reads them back
from (segmentio/action-destinations, mixpanel/trackEvent/functions.ts maps context.os.name
to `$os`, context.screen.width to `$screen_width`, context.location.country to
`mp_country_code`, ...). Ingestion internals are dropped unless the job keeps them.
"""

from __future__ import annotations

from typing import Any

from segment_importer.mapping.profiles.common import (
    Profile,
    SpecRecord,
    as_source_id,
    json_object,
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
from segment_importer.mapping.timestamps import TimestampError, parse_timestamp

NAME = "mixpanel"
_ID_MARKERS = ("distinct_id", "$insert_id", "time", "mp_lib", "$mp_api_endpoint")
# A line with one of these is a Segment message (or PostHog's, with its top-level time).
_SEGMENT_FIELDS = frozenset({"type", "userId", "anonymousId", "timestamp"})
# A flat event row (mixpanel-utils' CSV: the properties as columns of their own) has `event`,
# `time` and one of these, names only Mixpanel writes; never a `properties` column.
_FLAT_MARKERS = frozenset({"$insert_id", "mp_processing_time_ms", "mp_lib", "$mp_api_endpoint"})
# Fivetran's EVENT table: `name` + `time` and one of these (never an `event` column).
_FIVETRAN_MARKERS = frozenset({"_fivetran_id", "_fivetran_synced", "insert_id", "mp_processing_time_ms"})
# Fivetran's columns for Mixpanel's default properties, which drop the `$` (the others,
# `mp_lib`, `mp_country_code`, `mp_keyword`, `mp_device_model`, keep Mixpanel's own name).
_FIVETRAN_DEFAULT_PROPERTIES = frozenset(
    {
        "ae_session_length",
        "app_build_number",
        "app_release",
        "app_version",
        "app_version_string",
        "bluetooth_enabled",
        "bluetooth_version",
        "brand",
        "browser",
        "browser_version",
        "carrier",
        "city",
        "current_url",
        "device",
        "device_id",
        "distinct_id_before_identity",
        "google_play_services",
        "had_persisted_distinct_id",
        "has_nfc",
        "has_telephone",
        "initial_referrer",
        "initial_referring_domain",
        "ios_ifa",
        "lib_version",
        "manufacturer",
        "model",
        "os",
        "os_version",
        "radio",
        "referrer",
        "referring_domain",
        "region",
        "screen_dpi",
        "screen_height",
        "screen_width",
        "search_engine",
        "wifi",
    }
)
# Fivetran's `event_id` ("formerly the primary key") is its bookkeeping, kept under this name
# (an internal) so that a Mixpanel property called `event_id` is not mistaken for it.
_FIVETRAN_EVENT_ID = "_fivetran_event_id"

# A distinct_id that is a device, not a user (Simplified ID Merge, anonymous events).
_DEVICE_PREFIX = "$device:"
# mixpanel-js' page view event (docs.mixpanel.com/docs/tracking-methods/sdks/javascript
# "Track Page Views"), and its page properties -> Segment's page properties
# (segment.com/docs/connections/spec/page/#properties).
PAGE_VIEW_EVENT = "$mp_web_page_view"
_PAGE_VIEW_FIELDS = {
    "current_page_title": "title",
    "current_url_path": "path",
    "current_url_search": "search",
}
_PAGE_SPEC_FIELDS = ("title", "url", "path", "referrer", "search")

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
        # Fivetran's bookkeeping columns (its EVENT table): the load, not the event.
        "_file",
        "_line",
        _FIVETRAN_EVENT_ID,
    }
)
# `_airbyte_raw_id`, `_airbyte_extracted_at`, `_airbyte_meta`: Airbyte's loader columns.
IS_INTERNAL = internal_names(INTERNALS, prefixes=("$mp_", "_fivetran_", "_airbyte_"))
# Mixpanel's own names a connector writes without their `$` (besides the default properties).
_DOLLAR_STRIPPED = frozenset({"insert_id", "mp_api_endpoint", "mp_api_timestamp_ms"})
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
    if "event" not in record:
        return _is_flat_profile(record) or _is_fivetran(record)
    if not record.keys().isdisjoint(_SEGMENT_FIELDS):
        return False
    if _is_flat_event(record):
        return True
    properties = _properties(record)
    if properties is None:
        return False
    return "$lib" not in properties and any(marker in properties for marker in _ID_MARKERS)


def _is_flat_event(record: dict[str, Any]) -> bool:
    """A mixpanel-utils CSV event row: `event`, `time` and a Mixpanel-only name as columns."""
    return (
        "properties" not in record
        and "time" in record
        and "event" in record
        and not record.keys().isdisjoint(_FLAT_MARKERS)
        and record.keys().isdisjoint(_SEGMENT_FIELDS)
    )


def _is_flat_profile(record: dict[str, Any]) -> bool:
    """A mixpanel-utils CSV people row: `$distinct_id` and the profile's properties as columns."""
    return (
        "$distinct_id" in record
        and "$properties" not in record
        and "event" not in record
        and record.keys().isdisjoint(_SEGMENT_FIELDS)
    )


def _is_fivetran(record: dict[str, Any]) -> bool:
    """A row of Fivetran's Mixpanel EVENT table: `name` (the event), `time` and its columns."""
    return (
        "name" in record
        and "time" in record
        and "event" not in record
        and not record.keys().isdisjoint(_FIVETRAN_MARKERS)
        and record.keys().isdisjoint(_SEGMENT_FIELDS)
    )


def to_spec(record: dict[str, Any]) -> SpecRecord:
    if "$distinct_id" in record:
        return _from_profile(record)
    if _is_fivetran(record):
        recorded = record.get("properties")
        if recorded not in (None, "") and json_object(recorded) is None:  # left to validation: invalid_field
            return {"type": "track", "event": record.get("name"), "properties": recorded}, None
        record, id_time = _from_fivetran(record)
        return _from_event(record, id_time)
    return _from_event(record)


def _from_event(record: dict[str, Any], id_time: str | None = None) -> SpecRecord:
    """An event: `properties` (an object or JSON text), or a flat row's columns."""
    if _is_flat_event(record):
        properties = {name: value for name, value in record.items() if name != "event"}
        if "insert_id" in properties and "$insert_id" not in properties:
            properties = _with_mixpanel_names(properties)
            id_time = id_time or _epoch_text(properties.get("time"))
    else:
        properties = _properties(record) or {}
    for name in ("distinct_id", "time"):  # connector tables may hold them as columns of their own
        if name not in properties and name in record:
            properties[name] = record[name]
    event = record.get("event")
    raw_distinct_id = properties.get("distinct_id")
    time = properties.pop("time", None)
    spec: dict[str, Any] = {"timestamp": _project_time(time)}
    spec.update(_identities(properties))
    spec.update(_call(event, properties, spec, text(raw_distinct_id)))
    insert_id = as_source_id(properties.pop("$insert_id", None))
    # Mixpanel dedupes on (event, distinct_id, time, $insert_id): so does the derived id, with
    # the time as the export wrote it (whatever the job's timezone makes of it).
    time_in_id = id_time or time
    source_id = insert_id and f"{event}|{raw_distinct_id}|{time_in_id}|{insert_id}"
    context: dict[str, Any] = {}
    move_to_context(properties, CONTEXT_FIELDS, context)
    if event == PAGE_VIEW_EVENT and spec["type"] == "track":
        del spec["event"]
        spec.update(_page_view(properties, context))
    spec.update(context=context, properties=properties)
    if spec["type"] != "track":  # what identify and alias events carry besides ids is traits
        remaining = spec.pop("properties")
        if remaining:
            spec["traits" if spec["type"] == "identify" else "properties"] = remaining
    return without_none(spec), tagged(NAME, source_id)


def _project_time(time: Any) -> Any:
    """`time` as the wall clock it counts (an epoch number, seconds or milliseconds) written
    without an offset, so that the mapper reads it in the job's `timezone`. Mixpanel's raw
    export counts the project's local time for projects created before 2023 (and those whose
    timezone is not UTC: "You must add back the offset between project time and UTC"); a job
    without a `timezone` reads it as UTC, the moment the number is. Anything else (a
    timestamp text, a number that is no time) is left to the mapper as it is."""
    if isinstance(time, bool) or not isinstance(time, int | float | str):
        return time
    if isinstance(time, str) and not time.strip().lstrip("-").replace(".", "", 1).isdigit():
        return time
    try:
        moment = parse_timestamp(time)
    except TimestampError:
        return time
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds")


def _page_view(properties: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """mixpanel-js' page view (`track_pageview`, autocapture) as Segment's page call: its
    `current_*` properties under the page's spec names, in the properties and `context.page`
    (where `$current_url` and `$referrer` already are); the page's name is its title."""
    page = context.setdefault("page", {})
    for name, field in _PAGE_VIEW_FIELDS.items():
        value = properties.pop(name, None)
        if value not in (None, ""):
            page.setdefault(field, value)
    for field in _PAGE_SPEC_FIELDS:
        if field in page:
            properties.setdefault(field, page[field])
    return {"type": "page", "name": page.get("title")}


def _call(
    event: Any, properties: dict[str, Any], ids: dict[str, Any], distinct_id: str | None
) -> dict[str, Any]:
    """The call an event is: Mixpanel's identity events are identify and alias calls."""
    if event == "$identify":
        user_id = text(properties.pop("$identified_id", None)) or ids.get("userId")
        # `$anon_distinct_id` is the device's distinct_id (`$device:<id>`): its events carry
        # the id without the prefix as their anonymousId, and so must the identify, to join them.
        anonymous_id = _without_device_prefix(text(properties.pop("$anon_distinct_id", None)))
        anonymous_id = anonymous_id or ids.get("anonymousId")
        return {"type": "identify", "userId": user_id, "anonymousId": anonymous_id}
    if event == "$create_alias":  # mixpanel.alias(alias, original): the original is distinct_id
        alias = text(properties.pop("alias", None))
        return {"type": "alias", "previousId": distinct_id, "userId": alias, "anonymousId": None}
    if event == "$merge":
        user_id = ids.get("userId") or distinct_id
        previous_id = other_id(properties.pop("$distinct_ids", None) or [], user_id)
        return {"type": "alias", "userId": user_id, "previousId": previous_id}
    return {"type": "track", "event": event}


def _without_device_prefix(distinct_id: str | None) -> str | None:
    return distinct_id.removeprefix(_DEVICE_PREFIX) if distinct_id else distinct_id


def _identities(properties: dict[str, Any]) -> dict[str, Any]:
    """userId = `$user_id`, else `distinct_id` unless that is the device (an anonymous event
    of a project without ID merge); anonymousId = `$device_id`, or a `$device:` distinct_id."""
    distinct_id = text(properties.pop("distinct_id", None))
    user_id = text(properties.pop("$user_id", None))
    device_id = text(properties.pop("$device_id", None))
    if distinct_id and distinct_id.startswith(_DEVICE_PREFIX):
        device_id = device_id or distinct_id.removeprefix(_DEVICE_PREFIX)
        distinct_id = None
    elif distinct_id == device_id and not user_id:
        distinct_id = None
    return {"userId": user_id or distinct_id, "anonymousId": device_id}


def _from_fivetran(record: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A Fivetran EVENT row as the raw export line it was loaded from: `name` the event,
    `insert_id` the `$insert_id`, the default-property columns under their `$` names, the
    custom `properties` (JSON text) beside them; the bookkeeping columns stay, as internals.
    With it the time Mixpanel dedupes on, as the raw export writes it (epoch seconds; or
    milliseconds when the table's time has them), so both forms of an event share its id."""
    properties = json_object(record.get("properties")) or {}
    line: dict[str, Any] = {"event": record.get("name")}
    for name, value in record.items():
        if name in ("name", "properties"):
            continue
        if name == "insert_id":
            name = "$insert_id"
        elif name == "event_id":
            name = _FIVETRAN_EVENT_ID
        elif name in _FIVETRAN_DEFAULT_PROPERTIES:
            name = f"${name}"
        properties[name] = value  # a column of its own wins over the JSON's key
    line["properties"] = properties
    return line, _epoch_text(properties.get("time"))


def _with_mixpanel_names(columns: dict[str, Any]) -> dict[str, Any]:
    """A connector's flat event row that drops Mixpanel's `$` (Airbyte's source-mixpanel
    `export` stream, like Fivetran's EVENT table): `insert_id` is the `$insert_id` Mixpanel
    dedupes on, `mp_api_endpoint` its internal, the default-property columns their `$` names
    (`browser` -> `$browser`, a context field), in the row's order."""
    renamed: dict[str, Any] = {}
    for name, value in columns.items():
        if name in _DOLLAR_STRIPPED or name in _FIVETRAN_DEFAULT_PROPERTIES:
            name = f"${name}"
        renamed.setdefault(name, value)
    return renamed


def _epoch_text(value: Any) -> str | None:
    """A timestamp text (`2020-08-01 10:16:46`, no zone: as the raw export's number, UTC) as
    the epoch number the raw export writes; None for a number or what does not parse."""
    if not isinstance(value, str):
        return None
    if value.strip().lstrip("-").replace(".", "", 1).isdigit():
        return None  # already a number, as the raw export writes it
    try:
        moment = parse_timestamp(value)
    except TimestampError:
        return None
    millis = round(moment.timestamp() * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else str(millis)


def _from_profile(record: dict[str, Any]) -> SpecRecord:
    """An engage export line: an identify call, `$properties` as traits (a mixpanel-utils
    CSV row has them as columns beside `$distinct_id`)."""
    if _is_flat_profile(record):
        properties = {name: value for name, value in record.items() if name != "$distinct_id"}
    else:
        properties = json_object(record.get("$properties")) or {}
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
    properties = json_object(record.get("properties"))
    if properties is not None:
        record["properties"] = properties
    return dict(properties) if properties is not None else None


MIXPANEL = Profile(NAME, matches, to_spec, IS_INTERNAL, ids_tell_apart=True)
