"""Snowplow: atomic (enriched) events as the Analytics SDKs' JSON transform or a warehouse
unload writes them (docs.snowplow.io/docs/fundamentals/canonical-event).

`event_id` is the source id; `user_id` the userId, `domain_userid` (else `network_userid`)
the anonymousId; the time is `derived_tstamp` (Snowplow's own clock-skew-corrected time),
else `dvce_created_tstamp`, else `collector_tstamp`. `page_view` is a page call, a structured
event (`struct`) a track call named by `se_action`, a self-describing event (`unstruct`) a
track call named `event_name` with its `unstruct_event_*` object as properties. Entities
(`contexts_*` columns, JSON) are kept as properties under their column names. A page call's
properties hold its page (url, title, referrer, path, search) as Segment's spec lists them,
and context.page too. A `page_ping` (the JavaScript tracker's activity heartbeat, every few
seconds a page is open) has no Segment call and is not a mistake: it is not sent, and counted
with the filtered, under `snowplow_page_ping` (sent, they are one track call per heartbeat
while a page is open; rejected, every web import would end "finished with rejects").

The records are the same whether they come from the SDKs' JSON or from the enriched TSV
itself (`read/snowplow_tsv` reads it into that JSON).
"""

from __future__ import annotations

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
from segment_importer.mapping.profiles.context_paths import SOURCE_LIBRARY_KEY, move_to_context
from segment_importer.mapping.shaping import LeftOut

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
# A page call's properties (Segment spec: page's reserved properties) from context.page.
_PAGE_PROPERTIES = ("url", "title", "referrer", "path", "search")
_ENTITY_PREFIXES = ("contexts_", "unstruct_event_")
_TIMES = ("derived_tstamp", "dvce_created_tstamp", "collector_tstamp")


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
    spec: dict[str, Any] = {
        "userId": text(record.get("user_id")),
        "anonymousId": text(first(record, "domain_userid", "network_userid")),
        "timestamp": first(record, *_TIMES),
        "context": context,
    }
    properties = _entities(fields)
    if kind == "page_view":
        page = context.get("page", {})
        spec.update(type="page", name=page.get("title"))
        properties.update({name: page[name] for name in _PAGE_PROPERTIES if page.get(name) not in (None, "")})
    elif kind == "struct":
        spec.update(type="track", event=record.get("se_action"))
        properties.update({target: fields[name] for name, target in _STRUCT_FIELDS.items() if name in fields})
    else:
        spec.update(type="track", event=first(record, "event_name", "event"))
        for name in [name for name in properties if name.startswith("unstruct_event_")]:
            unstruct = properties.pop(name)
            if isinstance(unstruct, dict):  # the self-describing event's data are its properties
                properties.update(unstruct.get("data", unstruct) if "schema" in unstruct else unstruct)
    spec["properties"] = without_none(properties)
    return without_none(spec), tagged(NAME, as_source_id(record.get("event_id")))


def _entities(fields: dict[str, Any]) -> dict[str, Any]:
    """The `contexts_*` and `unstruct_event_*` columns, parsed where they hold JSON text."""
    entities = {}
    for name, value in fields.items():
        if name.startswith(_ENTITY_PREFIXES) and value not in (None, ""):
            entities[name] = _parsed(value)
    return entities


def _parsed(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


SNOWPLOW = Profile(NAME, matches, to_spec)
