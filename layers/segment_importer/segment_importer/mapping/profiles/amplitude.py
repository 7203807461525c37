"""Amplitude: Export API lines (and the same columns in connector tables).

Shape: `{"event_type": "...", "event_time": "2021-03-04 05:06:07.123000", "user_id": ...,
"device_id": ..., "session_id": 1614834367000, "event_properties": {...},
"user_properties": {...}, "groups": {...}, "group_properties": {...}, "platform": "iOS",
"os_name": ..., "language": ..., "device_carrier": ..., "location_lat": ..., "idfa": ...,
"insert_id": ..., "uuid": ..., "amplitude_id": ...}` (Amplitude Export API docs; the
Fivetran Amplitude schema lists the same columns). See tests/fixtures/vendors/amplitude.

Fields go where Segment's Amplitude destinations read them back from
(segmentio/action-destinations, amplitude/fields/common-track-identify-fields.ts:
platform <- context.device.type, language <- context.locale, carrier <-
context.network.carrier, os_name <- context.os.name; the session id from
`integrations["Actions Amplitude"].session_id`, the classic destination's from
`integrations.Amplitude.session_id`). Amplitude's own bookkeeping (`amplitude_id`,
`server_upload_time`, `processed_time`, `$schema`, ...; INTERNALS, top-level fields only: a
property of the same name is the app's) is never sent. Any other top-level field is data:
the HTTP API's revenue fields (`price`, `quantity`, `revenue`, `productId`, `revenueType`)
and anything Amplitude adds later become properties (traits for identify and group), and
the Export API's `$revenue`, `$price`, `$quantity`, `$productId`, `$revenueType` event
properties take Segment's names, which its Amplitude destinations read revenue from.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

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
    move_to_context,
)

NAME = "amplitude"
# Export column -> Segment context path (the first name listed for a path wins).
CONTEXT_FIELDS = {
    "ip_address": ("ip",),
    "ip": ("ip",),  # the HTTP API's name
    "os_version": ("os", "version"),
    "device_id": ("device", "id"),
    "device_model": ("device", "model"),
    "device_manufacturer": ("device", "manufacturer"),
    "device_brand": ("device", "brand"),
    "platform": ("device", "type"),
    "device_type": ("device", "name"),  # "Apple iPhone 12": what the device is sold as
    "idfa": ("device", "advertisingId"),
    "adid": ("device", "advertisingId"),
    "ad_id": ("device", "advertisingId"),
    "idfv": ("device", "id"),  # the HTTP API's vendor and Android ids: the device, when no device_id
    "android_id": ("device", "id"),
    "version_name": ("app", "version"),
    "app_version": ("app", "version"),
    "country": ("location", "country"),
    "city": ("location", "city"),
    "region": ("location", "region"),
    "location_lat": ("location", "latitude"),
    "location_lng": ("location", "longitude"),
    "language": ("locale",),
    "device_carrier": ("network", "carrier"),
    "carrier": ("network", "carrier"),
    "library": (SOURCE_LIBRARY_KEY, "name"),
}
# The fields `to_spec` reads itself; every other field not in INTERNALS is data.
_READ = frozenset(
    {
        "event_type", "user_id", "device_id", "event_time", "client_event_time", "time",
        "server_upload_time", "user_properties", "groups", "group_properties", "event_properties",
        "session_id", "insert_id", "$insert_id", "_insert_id", "uuid", "os_name", *CONTEXT_FIELDS,
    }
)  # fmt: skip
# Amplitude's ingestion bookkeeping and values it derives itself (Export API docs).
INTERNALS = frozenset(
    {
        "amplitude_id", "app", "client_upload_time", "server_received_time", "processed_time",
        "$schema", "data", "data_type", "sample_rate", "is_attribution_event",
        "amplitude_attribution_ids", "amplitude_event_type", "start_version", "user_creation_time",
        "paying", "event_id", "device_family", "dma", "partner_id", "source_id", "api_key",
        "$insert_key", "plan", "global_user_properties",
        # Fivetran's Amplitude EVENT table (fivetran/dbt_amplitude_source get_event_columns):
        # its `$schema` without the `$`, Amplitude's event-type and project numbers.
        "schema", "event_type_id", "project_name",
    }
)  # fmt: skip
_FIVETRAN_PREFIX = "_fivetran_"  # _fivetran_synced, _fivetran_deleted: the connector's sync marks
_FIVETRAN_ROW_ID = "id"  # Fivetran's row key for the event (only in a row with _fivetran_ columns)
_NOT_EXTRAS = _READ | INTERNALS
# Browser SDK 2 page-view autocapture (amplitude.com/docs/sdks/analytics/browser/browser-sdk-2,
# "Track page views"): a Segment page call; its `[Amplitude] Page *` properties -> page fields.
PAGE_VIEWED = "[Amplitude] Page Viewed"
# Identify API operations that set properties, applied in this order (later wins).
_SET_OPERATIONS = ("$setOnce", "$set")
_PAGE_LOCATION = "[Amplitude] Page Location"  # location.href, query included: Segment's page.url
_PAGE_FIELDS = {
    "[Amplitude] Page URL": "url",  # href without the query: the url when there is no Location
    "[Amplitude] Page Path": "path",
    "[Amplitude] Page Title": "title",
    "referrer": "referrer",
}
# Export API revenue properties -> the names Segment's Amplitude destinations read.
_REVENUE_PROPERTIES = {
    "$revenue": "revenue",
    "$price": "price",
    "$quantity": "quantity",
    "$productId": "productId",
    "$revenueType": "revenueType",
}
_INTEGRATION_NAMES = ("Amplitude", "Actions Amplitude")
_NO_SESSION = -1  # Amplitude's session_id for events outside a session


def matches(record: dict[str, Any]) -> bool:
    # An export with `event_type` as well as `type`/`event` keeps `event_type` as data.
    return "event_type" in record and "type" not in record and "event" not in record


def to_spec(record: dict[str, Any]) -> SpecRecord:
    event_type = record.get("event_type")
    user_properties = _set_properties(record.get("user_properties") or {})
    spec: dict[str, Any] = {
        "userId": text(record.get("user_id")),
        "anonymousId": text(record.get("device_id")),
        "timestamp": first(record, "event_time", "client_event_time", "time", "server_upload_time"),
    }
    context = _context(record)
    groups = record.get("groups")
    if event_type == "$identify":
        spec.update(type="identify", traits=user_properties)
    elif event_type == "$groupidentify" and isinstance(groups, dict) and groups:
        group_type, group_value = next(iter(groups.items()))
        group_properties = record.get("group_properties")
        traits = {"groupType": group_type, **(group_properties if isinstance(group_properties, dict) else {})}
        spec.update(type="group", groupId=text(_one(group_value)), traits=traits)
    else:
        recorded = record.get("event_properties") or {}
        properties = (
            _revenue_named(recorded) if isinstance(recorded, dict) else recorded
        )  # else invalid_field
        spec.update(type="track", event=event_type, properties=properties)
        if event_type == PAGE_VIEWED and isinstance(properties, dict):
            _as_page(spec, properties, context)
        if user_properties:
            context["traits"] = user_properties
        if isinstance(groups, dict) and groups:
            context["groups"] = groups
    session_id = record.get("session_id")
    if session_id not in (None, "", _NO_SESSION, str(_NO_SESSION)):
        spec["integrations"] = {name: {"session_id": session_id} for name in _INTEGRATION_NAMES}
        if spec["type"] in ("track", "page") and isinstance(spec["properties"], dict):
            spec["properties"].setdefault("session_id", session_id)
    spec["context"] = context
    fivetran = any(name.startswith(_FIVETRAN_PREFIX) for name in record)
    for name in [name for name in record if name not in _NOT_EXTRAS and name not in spec]:
        if name.startswith(_FIVETRAN_PREFIX) or (fivetran and name == _FIVETRAN_ROW_ID):
            continue
        spec[name] = record[name]  # data the profile has no place for: extras, in the record's order
    return without_none(spec), tagged(NAME, _source_id(record))


def _set_properties(user_properties: Any) -> Any:
    """`{"$set": {...}, "$setOnce": {...}}`, as Amplitude's Identify API takes them (logged by
    proxies, kept by teams that archived what they sent), as the properties they set:
    `$setOnce` first, `$set` over it, plain keys over both. Other operations (`$unset`,
    `$add`, `$append`, ...) have no Segment equivalent and stay as they are, not dropped."""
    if not isinstance(user_properties, dict) or not any(name in user_properties for name in _SET_OPERATIONS):
        return user_properties  # the Export API's flat current properties: most records
    flat = dict(user_properties)
    merged: dict[str, Any] = {}
    for operation in _SET_OPERATIONS:  # in order: $setOnce, then $set
        values = flat.get(operation)
        if isinstance(values, dict):
            del flat[operation]
            merged.update(values)
    merged.update(flat)
    return merged


def _as_page(spec: dict[str, Any], properties: dict[str, Any], context: dict[str, Any]) -> None:
    """`[Amplitude] Page Viewed` -> a page call: Segment's page fields (spec: page's reserved
    properties) in properties and context.page; the other properties (Page Domain, Page
    Counter, ...) stay as they are."""
    page: dict[str, Any] = {}
    location = properties.pop(_PAGE_LOCATION, None)
    if isinstance(location, str) and location:
        page["url"] = location
        query = urlsplit(location).query
        if query:
            page["search"] = f"?{query}"
    for name, field in _PAGE_FIELDS.items():
        value = properties.pop(name, None)
        if value not in (None, ""):
            page.setdefault(field, value)
    spec.update(type="page", name=page.get("title"))
    del spec["event"]
    for field, value in page.items():
        properties.setdefault(field, value)
    context["page"] = page


def _revenue_named(properties: dict[str, Any]) -> dict[str, Any]:
    renamed = dict(properties)
    for name, segment_name in _REVENUE_PROPERTIES.items():
        if name in renamed and segment_name not in renamed:
            renamed[segment_name] = renamed.pop(name)
    return renamed


def _context(record: dict[str, Any]) -> dict[str, Any]:
    fields = {name: record[name] for name in CONTEXT_FIELDS if name in record}
    context: dict[str, Any] = {}
    os_name = record.get("os_name")
    if os_name not in (None, ""):
        # Amplitude's web SDKs write the browser as the OS ("Chrome", version "120").
        web = str(record.get("platform") or "").lower() == "web"
        context["browser" if web else "os"] = {"name": os_name}
        if web and fields.get("os_version") not in (None, ""):
            context["browser"]["version"] = fields.pop("os_version")
    move_to_context(fields, CONTEXT_FIELDS, context)
    return context


def _source_id(record: dict[str, Any]) -> str | None:
    insert_id = as_source_id(first(record, "insert_id", "$insert_id", "_insert_id"))
    if insert_id:  # Amplitude dedupes insert_id per user or device
        return f"{record.get('user_id') or ''}|{record.get('device_id') or ''}|{insert_id}"
    return as_source_id(record.get("uuid"))  # Amplitude's own id for the stored event


def _one(value: Any) -> Any:
    """A group value may be a list of names (an event in several groups of one type)."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


AMPLITUDE = Profile(NAME, matches, to_spec)
