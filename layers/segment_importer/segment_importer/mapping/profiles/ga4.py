"""Google Analytics 4: the BigQuery export (`events_YYYYMMDD` rows as JSON lines).

Shape (Google's "[GA4] BigQuery Export schema", support.google.com/analytics/answer/7029846;
rows as `bq extract --destination_format NEWLINE_DELIMITED_JSON` writes them, INT64 as
strings): `event_timestamp` (microseconds), `event_name`, `event_params` and
`user_properties` (arrays of `{"key", "value": {"string_value" | "int_value" |
"float_value" | "double_value"}}`), `user_id`, `user_pseudo_id`, `device`, `geo`,
`app_info`, `traffic_source` (the user's first-touch acquisition), `collected_traffic_source`
(this event's campaign: `manual_campaign_name`, `manual_source`, ..., `gclid`), `items`,
`ecommerce`, and bookkeeping columns
(`event_bundle_sequence_id`, `stream_id`, `event_server_timestamp_offset`, ...). Any other
column (a flattened query result's `ga_session_id`, `country`, ...) is a property.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from segment_importer.mapping.profiles.common import (
    Profile,
    SpecRecord,
    tagged,
    text,
    without_none,
)
from segment_importer.mapping.profiles.context_paths import (
    move_to_context,
    nest,
    with_page_properties,
)

NAME = "ga4"
_VALUE_KINDS = ("string_value", "int_value", "float_value", "double_value")
_MAX_EXACT_INT = 1 << 53
# `device`, `geo`, `app_info`, `traffic_source`, `collected_traffic_source` sub-fields ->
# Segment context paths.
_RECORD_CONTEXT = {
    "device": {
        "category": ("device", "type"),
        "mobile_brand_name": ("device", "manufacturer"),
        "mobile_model_name": ("device", "model"),
        "advertising_id": ("device", "advertisingId"),
        "vendor_id": ("device", "id"),
        "operating_system": ("os", "name"),
        "operating_system_version": ("os", "version"),
        "language": ("locale",),
        "time_zone_offset_seconds": ("timezoneOffsetSeconds",),
    },
    "geo": {
        "city": ("location", "city"),
        "region": ("location", "region"),
        "country": ("location", "country"),
    },
    "app_info": {
        "id": ("app", "namespace"),
        "version": ("app", "version"),
        "install_source": ("app", "installSource"),
    },
    # The user's FIRST-touch acquisition (GA4's schema), the same on all of a user's events:
    # not this event's campaign, so kept under its own name.
    "traffic_source": {
        "name": ("firstTouchCampaign", "name"),
        "medium": ("firstTouchCampaign", "medium"),
        "source": ("firstTouchCampaign", "source"),
    },
    # The campaign GA4 collected with this event (utm_* / gclid): Segment's `context.campaign`.
    "collected_traffic_source": {
        "manual_campaign_name": ("campaign", "name"),
        "manual_source": ("campaign", "source"),
        "manual_medium": ("campaign", "medium"),
        "manual_term": ("campaign", "term"),
        "manual_content": ("campaign", "content"),
        "manual_campaign_id": ("campaign", "id"),
        "manual_source_platform": ("campaign", "sourcePlatform"),
        "manual_creative_format": ("campaign", "creativeFormat"),
        "manual_marketing_tactic": ("campaign", "marketingTactic"),
        "gclid": ("campaign", "gclid"),
        "dclid": ("campaign", "dclid"),
        "srsltid": ("campaign", "srsltid"),
    },
}
_WEB_INFO = {"browser": ("browser", "name"), "browser_version": ("browser", "version")}
# Event parameters that describe the page, for Segment's `context.page`.
_PAGE_PARAMS = {
    "page_location": ("page", "url"),
    "page_referrer": ("page", "referrer"),
    "page_title": ("page", "title"),
}
# GA4 item fields -> Segment e-commerce product fields.
_ITEM_FIELDS = {
    "item_id": "product_id",
    "item_name": "name",
    "item_brand": "brand",
    "item_variant": "variant",
    "item_category": "category",
    "price": "price",
    "quantity": "quantity",
    "coupon": "coupon",
    "item_list_index": "position",
}
_ECOMMERCE_FIELDS = {
    "transaction_id": "order_id",
    "purchase_revenue": "revenue",
    "tax_value": "tax",
    "shipping_value": "shipping",
}
_CALLS = {"page_view": "page", "screen_view": "screen"}
# The columns of GA4's export schema this profile reads itself.
_READ = frozenset(
    {
        "event_name", "event_timestamp", "event_params", "user_properties", "user_id",
        "user_pseudo_id", "items", "ecommerce", *_RECORD_CONTEXT,
    }
)  # fmt: skip
# GA4's own bookkeeping and values it derives per user or session (export schema): not sent.
BOOKKEEPING = frozenset(
    {
        "event_date", "event_bundle_sequence_id", "event_server_timestamp_offset", "stream_id",
        "platform", "privacy_info", "user_ltv", "user_first_touch_timestamp",
        "event_previous_timestamp", "event_value_in_usd", "is_active_user", "event_dimensions",
        "session_traffic_source_last_click", "publisher", "batch_event_index",
        "batch_ordering_id", "batch_page_id",
    }
)  # fmt: skip
_KNOWN = _READ | BOOKKEEPING
# Batch fields (schema, 2024+): events GA4 sent in one request share event_timestamp; these
# tell them apart (page load, batch on the page, event in the batch).
_BATCH_FIELDS = ("batch_page_id", "batch_ordering_id", "batch_event_index")
_NO_VALUE = (None, "", "(not set)")  # GA4 writes "(not set)" in item fields it has no value for


def matches(record: dict[str, Any]) -> bool:
    return (
        "event_name" in record
        and "event_timestamp" in record
        and ("event_params" in record or "user_pseudo_id" in record)
    )


def to_spec(record: dict[str, Any]) -> SpecRecord:
    event = record.get("event_name")
    params = flatten_params(record.get("event_params"))
    # Of all the event's params, before any move to context; only where the id needs it.
    params_digest = _digest(params) if _told_apart_by_params(record) else ""
    # A flattened query result (CSV download, `bq extract` of a SELECT) has its params and
    # dimensions as columns of their own: data, so properties (page_* still go to context).
    for name in [name for name in record if name not in _KNOWN]:
        if record[name] not in (None, "") and name not in params:
            params[name] = record[name]
    call_type = _CALLS.get(event, "track") if isinstance(event, str) else "track"
    context = _context(record)
    move_to_context(params, _PAGE_PARAMS, context)
    spec: dict[str, Any] = {
        "type": call_type,
        "userId": text(record.get("user_id")),
        "anonymousId": text(record.get("user_pseudo_id")),
        "timestamp": record.get("event_timestamp"),
    }
    if call_type == "track":
        spec["event"] = event
    else:
        spec["name"] = params.pop("firebase_screen", None) or _object(context.get("page")).get("title")
    if call_type == "page":
        with_page_properties(context.get("page"), params)
    items = record.get("items")
    products = [_product(item) for item in items if isinstance(item, dict)] if isinstance(items, list) else []
    if products:
        params["products"] = products
    ecommerce = _object(record.get("ecommerce"))
    for name, target in _ECOMMERCE_FIELDS.items():
        value = ecommerce.get(name)
        if value not in (None, "") and target not in params:
            params[target] = value
    traits = flatten_params(record.get("user_properties"))
    if traits:
        context["traits"] = traits
    spec.update(properties=params, context=context)
    return without_none(spec), tagged(NAME, _source_id(record, params_digest))


def flatten_params(entries: Any) -> dict[str, Any]:
    """`[{"key": "ga_session_id", "value": {"int_value": "1614834367"}}]` ->
    `{"ga_session_id": 1614834367}`: the typed value each entry holds (INT64 arrives as a
    string in JSON exports; one beyond 2^53 stays a string, exactly)."""
    flat: dict[str, Any] = {}
    if not isinstance(entries, list):
        return flat
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), dict):
            continue
        value = _typed(entry["value"])
        if value is not None and entry.get("key") not in (None, ""):
            flat[str(entry["key"])] = value
    return flat


def _typed(value: dict[str, Any]) -> Any:
    for kind in _VALUE_KINDS:
        raw = value.get(kind)
        if raw is None:
            continue
        if kind == "int_value":
            return _integer(raw)
        if kind != "string_value" and isinstance(raw, str):
            try:
                return float(raw)
            except ValueError:
                return raw
        return raw
    return None


def _integer(raw: Any) -> Any:
    try:
        number = int(raw)
    except (TypeError, ValueError):
        return raw
    return number if -_MAX_EXACT_INT <= number <= _MAX_EXACT_INT else str(raw)


def _context(record: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for column, table in _RECORD_CONTEXT.items():
        fields = record.get(column)
        if isinstance(fields, dict):
            move_to_context(dict(fields), table, context)
    web_info = _object(record.get("device")).get("web_info")
    if isinstance(web_info, dict):
        move_to_context(dict(web_info), _WEB_INFO, context)
    limited = _object(record.get("device")).get("is_limited_ad_tracking")
    if limited in ("Yes", "No", True, False):
        nest(context, ("device", "adTrackingEnabled"), limited in ("No", False))
    return context


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _product(item: dict[str, Any]) -> dict[str, Any]:
    fields = _ITEM_FIELDS.items()
    product = {target: item[name] for name, target in fields if item.get(name) not in _NO_VALUE}
    for name in ("price", "quantity"):
        if isinstance(product.get(name), str):
            product[name] = _typed({"int_value" if name == "quantity" else "double_value": product[name]})
    return product


def _source_id(record: dict[str, Any], params_digest: str) -> str | None:
    """GA4 rows have no event id: the user, the microsecond, the event and the upload bundle
    name one event, and a re-export of the same rows gets the same ids. GA4 sends events in
    batches that share one event_timestamp, so two view_promotion events of one page load
    differ only in their batch fields, or (exports before those fields) in their params."""
    bundle = record.get("event_bundle_sequence_id")
    if bundle in (None, ""):
        return None
    user = record.get("user_pseudo_id") or record.get("user_id")
    event_id = f"{user}|{record.get('event_timestamp')}|{record.get('event_name')}|{bundle}"
    batch = [text(record.get(name)) for name in _BATCH_FIELDS]
    if any(batch):
        return f"{event_id}|batch:{'.'.join(part or '' for part in batch)}"
    return f"{event_id}|params:{params_digest}" if params_digest else event_id


def _told_apart_by_params(record: dict[str, Any]) -> bool:
    """A row with an upload bundle and no batch fields: its id needs its params (`_source_id`)."""
    bundle = record.get("event_bundle_sequence_id")
    return bundle not in (None, "") and not any(text(record.get(name)) for name in _BATCH_FIELDS)


def _digest(params: dict[str, Any]) -> str:
    """The event's params, as a short stable digest: the same whether the export wrote INT64
    as text (NDJSON) or as numbers (Parquet), since `flatten_params` types both alike."""
    if not params:
        return ""
    canonical = orjson.dumps(params, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(canonical).hexdigest()[:16]


GA4 = Profile(NAME, matches, to_spec, ids_tell_apart=True)
