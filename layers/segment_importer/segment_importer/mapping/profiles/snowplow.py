"""Snowplow: atomic (enriched) events as the Analytics SDKs' JSON transform or a warehouse
unload writes them (docs.snowplow.io/docs/fundamentals/canonical-event).

`event_id` is the source id; `user_id` the userId, `domain_userid` (else `network_userid`)
the anonymousId; the time is `derived_tstamp` (Snowplow's own clock-skew-corrected time),
else `dvce_created_tstamp`, else `collector_tstamp`. `page_view` is a page call, a structured
event (`struct`) a track call named by `se_action`, a self-describing event (`unstruct`) a
track call named `event_name` with its `unstruct_event_*` object (or `[{...}]`, as
dbt-snowplow-web's seeds hold it) as properties, the mobile trackers' `screen_view` a screen
call. Entities (`contexts_*` columns, JSON) are kept as properties under their column names;
the mobile_context and application entities also fill context.os/device/network/app.
Columns outside the canonical event (a query's own) are properties. A page call's
properties hold its page (url, title, referrer, path, search) as Segment's spec lists them,
and context.page too. A `page_ping` (the JavaScript tracker's activity heartbeat, every few
seconds a page is open) has no Segment call and is not a mistake: it is not sent, and counted
with the filtered, under `snowplow_page_ping` (sent, they are one track call per heartbeat
while a page is open; rejected, every web import would end "finished with rejects").

The records are the same whether they come from the SDKs' JSON or from the enriched TSV
itself (`read/snowplow_tsv` reads it into that JSON).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

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
    PAGE_PROPERTIES,
    SOURCE_LIBRARY_KEY,
    move_to_context,
)
from segment_importer.mapping.shaping import LeftOut
from segment_importer.read.snowplow_tsv import FIELDS as ATOMIC_FIELDS

NAME = "snowplow"
PAGE_PING_RULE = "snowplow_page_ping"  # what the report's filtered_by counts page pings under
CONTEXT_FIELDS = {
    "user_ipaddress": ("ip",),
    "useragent": ("userAgent",),
    "br_name": ("browser", "name"),
    "br_version": ("browser", "version"),
    "br_lang": ("locale",),
    "os_name": ("os", "name"),
    "os_timezone": ("timezone",),
    "dvce_type": ("device", "type"),
    "dvce_screenwidth": ("screen", "width"),
    "dvce_screenheight": ("screen", "height"),
    "geo_country": ("location", "country"),
    "geo_region_name": ("location", "region"),
    "geo_city": ("location", "city"),
    "geo_latitude": ("location", "latitude"),
    "geo_longitude": ("location", "longitude"),
    "page_url": ("page", "url"),
    "page_title": ("page", "title"),
    "page_referrer": ("page", "referrer"),
    "page_urlpath": ("page", "path"),
    "mkt_source": ("campaign", "source"),
    "mkt_medium": ("campaign", "medium"),
    "mkt_campaign": ("campaign", "name"),
    "mkt_term": ("campaign", "term"),
    "mkt_content": ("campaign", "content"),
    "name_tracker": (SOURCE_LIBRARY_KEY, "name"),
    "v_tracker": (SOURCE_LIBRARY_KEY, "version"),
}
_STRUCT_FIELDS = {
    "se_category": "category",
    "se_label": "label",
    "se_property": "property",
    "se_value": "value",
}
_ENTITY_PREFIXES = ("contexts_", "unstruct_event_")
_TIMES = ("derived_tstamp", "dvce_created_tstamp", "collector_tstamp")
# The canonical event's own columns (sent where CONTEXT_FIELDS etc. say, else not) and the
# loaders' and SDKs' additions (`load_tstamp`: when the warehouse loader wrote the row;
# `geo_location`: the Analytics SDKs' "lat,long" of geo_latitude/geo_longitude). Any other
# column (a query's own, dbt-snowplow-web's `page_view_id`) is data: a property.
_ATOMIC = frozenset(name for name, _ in ATOMIC_FIELDS) | {"load_tstamp", "geo_location"}
# Mobile trackers' screen view: `com.snowplowanalytics.mobile/screen_view` (the legacy
# `com.snowplowanalytics.snowplow/screen_view` has the same `name`): a Segment screen call.
_SCREEN_VIEW = "screen_view"
# Mobile entities -> Segment context (docs.snowplow.io mobile tracker "mobile_context" and
# "application" entities); the entity columns stay properties too, as every entity does.
_MOBILE_ENTITIES = {
    "com_snowplowanalytics_snowplow_mobile_context": {
        "osType": ("os", "name"),
        "osVersion": ("os", "version"),
        "deviceManufacturer": ("device", "manufacturer"),
        "deviceModel": ("device", "model"),
        "appleIdfv": ("device", "id"),
        "androidIdfa": ("device", "advertisingId"),
        "appleIdfa": ("device", "advertisingId"),
        "carrier": ("network", "carrier"),
    },
    "com_snowplowanalytics_mobile_application": {"version": ("app", "version"), "build": ("app", "build")},
}
_NETWORK_TYPES = {"wifi": "wifi", "mobile": "cellular"}  # mobile_context.networkType
_CLIENT_SESSION = "com_snowplowanalytics_snowplow_client_session"
# `contexts_<vendor>_<name>_1` (Snowflake, the SDKs' JSON) or `..._1_0_0` (BigQuery).
_VERSION_SUFFIX = re.compile(r"_\d+(?:_\d+_\d+)?$")


def matches(record: dict[str, Any]) -> bool:
    return "event_id" in record and ("domain_userid" in record or "collector_tstamp" in record)


def to_spec(record: dict[str, Any]) -> SpecRecord:
    kind = record.get("event")
    if kind == "page_ping":
        raise LeftOut(PAGE_PING_RULE)
    fields = dict(record)
    context: dict[str, Any] = {}
    move_to_context(fields, CONTEXT_FIELDS, context)
    query = record.get("page_urlquery")
    if isinstance(query, str) and query:  # Segment's page.search keeps the `?`
        context.setdefault("page", {})["search"] = f"?{query}"
    properties = _entities(fields)
    _mobile_context(properties, context)
    session = _entity(properties, _CLIENT_SESSION)
    spec: dict[str, Any] = {
        "userId": text(record.get("user_id")),
        # client_session.userId: the tracker's per-install id, mobile's domain_userid
        "anonymousId": text(
            record.get("domain_userid") or session.get("userId") or record.get("network_userid")
        ),
        "timestamp": first(record, *_TIMES),
        "context": context,
    }
    for name in [name for name in fields if name not in _ATOMIC and not name.startswith(_ENTITY_PREFIXES)]:
        properties.setdefault(name, fields[name])
    if kind == "page_view":
        page = context.get("page", {})
        spec.update(type="page", name=page.get("title"))
        properties.update({name: page[name] for name in PAGE_PROPERTIES if page.get(name) not in (None, "")})
    elif kind == "struct":
        spec.update(type="track", event=record.get("se_action"))
        properties.update({target: fields[name] for name, target in _STRUCT_FIELDS.items() if name in fields})
    else:
        spec.update(type="track", event=first(record, "event_name", "event"))
        for name in [name for name in properties if name.startswith("unstruct_event_")]:
            data = _unstruct_data(properties[name])
            if data is not None:  # the self-describing event's data are its properties
                del properties[name]
                properties.update(data)
        if record.get("event_name") == _SCREEN_VIEW and properties.get("name") not in (None, ""):
            spec.update(type="screen", name=properties["name"])
            del spec["event"]
    spec["properties"] = without_none(properties)
    return without_none(spec), tagged(NAME, as_source_id(record.get("event_id")))


def _entities(fields: dict[str, Any]) -> dict[str, Any]:
    """The `contexts_*` and `unstruct_event_*` columns, parsed where they hold JSON text."""
    entities = {}
    for name, value in fields.items():
        if name.startswith(_ENTITY_PREFIXES) and value not in (None, ""):
            entities[name] = _parsed(value)
    return entities


def _unstruct_data(value: Any) -> dict[str, Any] | None:
    """The event's data: `{...}`, a self-describing `{"schema", "data"}`, or `[{...}]` as
    dbt-snowplow-web's seeds and some loaders write it. None for anything else, which then
    stays a property under its column name (never dropped)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, dict):
        return None
    data = value.get("data", value) if "schema" in value else value
    return data if isinstance(data, dict) else None


def _entity(properties: dict[str, Any], name: str) -> dict[str, Any]:
    """The first entity of schema `name` (any version) among the `contexts_*` columns."""
    for column, value in properties.items():
        if column.startswith("contexts_") and _VERSION_SUFFIX.sub("", column[len("contexts_") :]) == name:
            entity = value[0] if isinstance(value, list) and value else value
            if isinstance(entity, dict):
                return entity
    return {}


def _mobile_context(properties: dict[str, Any], context: dict[str, Any]) -> None:
    for name, table in _MOBILE_ENTITIES.items():
        entity = _entity(properties, name)
        if entity:
            move_to_context({key: entity[key] for key in table if key in entity}, table, context)
    network = _NETWORK_TYPES.get(
        str(_entity(properties, "com_snowplowanalytics_snowplow_mobile_context").get("networkType"))
    )
    if network:
        context.setdefault("network", {})[network] = True


def _parsed(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


SNOWPLOW = Profile(NAME, matches, to_spec)
