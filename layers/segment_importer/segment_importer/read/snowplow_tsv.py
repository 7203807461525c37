"""Snowplow enriched events as the pipeline writes them to its "enriched" bucket: headerless
TSV lines of a fixed list of fields, read into the Analytics SDKs' JSON shape so the
`snowplow` profile maps them as it maps the SDKs' output (docs/formats.md).

The field list and each field's type are snowplow/snowplow-scala-analytics-sdk's `Event`
(3.2.1; the Python SDK's list is the same but for two spellings: it calls `refr_dvce_tstamp`
`refr_device_tstamp` and reads `se_value` as text). Values are parsed as the SDKs do: an
empty field is absent; timestamps `YYYY-MM-DD HH:MM:SS[.mmm]` (UTC) become ISO 8601 with `Z`;
ints, doubles, booleans (`1`/`0`); `contexts` and `derived_contexts` (self-describing JSON)
are shredded into `contexts_<vendor>_<name>_<model>` arrays and `unstruct_event` into one
`unstruct_event_<vendor>_<name>_<model>` object, as the Python SDK's `json_shredder`
and the Scala SDK's `toJson` do (each entity gets the Scala SDK's `_schema_version` key).

A line with another number of fields (an older enriched format, a truncated line) is a
`snowplow_field_count` reject; a field the SDK cannot parse a `snowplow_invalid_value`
reject naming the fields, never their values. Records are physical lines (blank lines
count and are skipped), so a part resumes at the byte offset after any line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from segment_importer.read.ndjson import LinePosition
from segment_importer.read.opening import CHUNK, Content
from segment_importer.read.reader import Format, ReadOptions
from segment_importer.read.records import (
    RAW_EXCERPT_CHARS,
    DamagedError,
    RecordStream,
    SourceRecord,
    excerpt,
    unreadable,
)
from segment_importer.track import reasons

_EXCERPT_BYTES = RAW_EXCERPT_CHARS * 4


class InvalidValue(ValueError):
    """A field the SDK would not parse; the message names the field, never its value."""


def _text(value: str) -> str:
    return value


def _int(value: str) -> int:
    return int(value)


def _double(value: str) -> float:
    return float(value)


def _bool(value: str) -> bool:
    if value not in ("1", "0"):
        raise ValueError("not 1 or 0")
    return value == "1"


_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?")


def _tstamp(value: str) -> str:
    """`2013-11-26 00:03:57.885` (UTC) as the SDKs write it: `2013-11-26T00:03:57.885Z`."""
    if not _TIMESTAMP.fullmatch(value):
        raise ValueError("not a timestamp")
    return value.replace(" ", "T") + "Z"


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _uuid(value: str) -> str:
    if not _UUID.fullmatch(value):
        raise ValueError("not a UUID")
    return value


# The SDK's Iglu URI (snowplow-python-analytics-sdk json_shredder.SCHEMA_URI).
_SCHEMA_URI = re.compile(
    r"iglu:([a-zA-Z0-9-_.]+)/([a-zA-Z0-9-_]+)/([a-zA-Z0-9-_]+)/([1-9][0-9]*(?:-(?:0|[1-9][0-9]*)){2})"
)


def shredded_name(prefix: str, schema: object) -> tuple[str, str]:
    """(`contexts_com_acme_web_page_1`, `1-0-0`) for `iglu:com.acme/WebPage/jsonschema/1-0-0`
    (the Scala SDK's `transformSchema`: dots and dashes to `_`, PascalCase to snake_case)."""
    match = _SCHEMA_URI.fullmatch(schema) if isinstance(schema, str) else None
    if match is None:
        raise ValueError("a schema is not an Iglu URI")
    vendor = re.sub(r"[.\-]", "_", match.group(1)).lower()
    name = re.sub(r"([^A-Z_])([A-Z])", r"\1_\2", re.sub(r"[.\-]", "_", match.group(2))).lower()
    version = match.group(4)
    return f"{prefix}_{vendor}_{name}_{version.split('-')[0]}", version


def _self_describing(value: str) -> dict[str, Any]:
    document = orjson.loads(value)
    if not isinstance(document, dict):
        raise ValueError("not a self-describing JSON object")
    return document


def _contexts(value: str) -> dict[str, list[Any]]:
    """The entities of a contexts field, grouped by schema name and model, in order."""
    entities = _self_describing(value).get("data")
    if not isinstance(entities, list):
        raise ValueError("its data is not an array")
    grouped: dict[str, list[Any]] = {}
    for entity in entities:
        if not isinstance(entity, dict) or "data" not in entity:
            raise ValueError("an entity is not self-describing")
        name, version = shredded_name("contexts", entity.get("schema"))
        data = entity["data"]
        if isinstance(data, dict):  # the Scala SDK's toJson adds the entity's schema version
            data = {**data, "_schema_version": version}
        grouped.setdefault(name, []).append(data)
    return grouped


def _unstruct(value: str) -> dict[str, Any]:
    event = _self_describing(value).get("data")
    if not isinstance(event, dict) or "data" not in event:
        raise ValueError("it holds no self-describing event")
    return {shredded_name("unstruct_event", event.get("schema"))[0]: event["data"]}


Convert = Callable[[str], Any]
_SHREDDED: frozenset[Convert] = frozenset({_contexts, _unstruct})

# The enriched event's fields in order, with how each is read (the Scala SDK's Event).
FIELDS: tuple[tuple[str, Convert], ...] = (
    ("app_id", _text),
    ("platform", _text),
    ("etl_tstamp", _tstamp),
    ("collector_tstamp", _tstamp),
    ("dvce_created_tstamp", _tstamp),
    ("event", _text),
    ("event_id", _uuid),
    ("txn_id", _int),
    ("name_tracker", _text),
    ("v_tracker", _text),
    ("v_collector", _text),
    ("v_etl", _text),
    ("user_id", _text),
    ("user_ipaddress", _text),
    ("user_fingerprint", _text),
    ("domain_userid", _text),
    ("domain_sessionidx", _int),
    ("network_userid", _text),
    ("geo_country", _text),
    ("geo_region", _text),
    ("geo_city", _text),
    ("geo_zipcode", _text),
    ("geo_latitude", _double),
    ("geo_longitude", _double),
    ("geo_region_name", _text),
    ("ip_isp", _text),
    ("ip_organization", _text),
    ("ip_domain", _text),
    ("ip_netspeed", _text),
    ("page_url", _text),
    ("page_title", _text),
    ("page_referrer", _text),
    ("page_urlscheme", _text),
    ("page_urlhost", _text),
    ("page_urlport", _int),
    ("page_urlpath", _text),
    ("page_urlquery", _text),
    ("page_urlfragment", _text),
    ("refr_urlscheme", _text),
    ("refr_urlhost", _text),
    ("refr_urlport", _int),
    ("refr_urlpath", _text),
    ("refr_urlquery", _text),
    ("refr_urlfragment", _text),
    ("refr_medium", _text),
    ("refr_source", _text),
    ("refr_term", _text),
    ("mkt_medium", _text),
    ("mkt_source", _text),
    ("mkt_term", _text),
    ("mkt_content", _text),
    ("mkt_campaign", _text),
    ("contexts", _contexts),
    ("se_category", _text),
    ("se_action", _text),
    ("se_label", _text),
    ("se_property", _text),
    ("se_value", _double),
    ("unstruct_event", _unstruct),
    ("tr_orderid", _text),
    ("tr_affiliation", _text),
    ("tr_total", _double),
    ("tr_tax", _double),
    ("tr_shipping", _double),
    ("tr_city", _text),
    ("tr_state", _text),
    ("tr_country", _text),
    ("ti_orderid", _text),
    ("ti_sku", _text),
    ("ti_name", _text),
    ("ti_category", _text),
    ("ti_price", _double),
    ("ti_quantity", _int),
    ("pp_xoffset_min", _int),
    ("pp_xoffset_max", _int),
    ("pp_yoffset_min", _int),
    ("pp_yoffset_max", _int),
    ("useragent", _text),
    ("br_name", _text),
    ("br_family", _text),
    ("br_version", _text),
    ("br_type", _text),
    ("br_renderengine", _text),
    ("br_lang", _text),
    ("br_features_pdf", _bool),
    ("br_features_flash", _bool),
    ("br_features_java", _bool),
    ("br_features_director", _bool),
    ("br_features_quicktime", _bool),
    ("br_features_realplayer", _bool),
    ("br_features_windowsmedia", _bool),
    ("br_features_gears", _bool),
    ("br_features_silverlight", _bool),
    ("br_cookies", _bool),
    ("br_colordepth", _text),
    ("br_viewwidth", _int),
    ("br_viewheight", _int),
    ("os_name", _text),
    ("os_family", _text),
    ("os_manufacturer", _text),
    ("os_timezone", _text),
    ("dvce_type", _text),
    ("dvce_ismobile", _bool),
    ("dvce_screenwidth", _int),
    ("dvce_screenheight", _int),
    ("doc_charset", _text),
    ("doc_width", _int),
    ("doc_height", _int),
    ("tr_currency", _text),
    ("tr_total_base", _double),
    ("tr_tax_base", _double),
    ("tr_shipping_base", _double),
    ("ti_currency", _text),
    ("ti_price_base", _double),
    ("base_currency", _text),
    ("geo_timezone", _text),
    ("mkt_clickid", _text),
    ("mkt_network", _text),
    ("etl_tags", _text),
    ("dvce_sent_tstamp", _tstamp),
    ("refr_domain_userid", _text),
    ("refr_dvce_tstamp", _tstamp),
    ("derived_contexts", _contexts),
    ("domain_sessionid", _text),
    ("derived_tstamp", _tstamp),
    ("event_vendor", _text),
    ("event_name", _text),
    ("event_format", _text),
    ("event_version", _text),
    ("event_fingerprint", _text),
    ("true_tstamp", _tstamp),
)
FIELD_COUNT = len(FIELDS)  # 131
# Fields the Scala SDK requires (not Option): an event without them is not an enriched event.
_REQUIRED = ("collector_tstamp", "event_id", "v_collector", "v_etl")
# Snowplow's platform codes (the tracker protocol's `p`).
PLATFORMS = frozenset({"web", "mob", "pc", "srv", "app", "tv", "cnsl", "iot", "headset"})
_PLATFORM, _COLLECTOR_TSTAMP, _EVENT_ID = 1, 3, 6
_LATITUDE, _LONGITUDE = 22, 23


def looks_like_enriched(line: bytes) -> bool:
    """A line of enriched TSV: the platform, collector time and event id where Snowplow puts
    them. The field count is not checked here, so an older layout (fewer fields) is still
    recognised and each line rejected saying how many fields it has."""
    fields = line.rstrip(b"\r").split(b"\t", _EVENT_ID + 1)
    if len(fields) <= _EVENT_ID:
        return False
    try:
        _tstamp(fields[_COLLECTOR_TSTAMP].decode("ascii"))
        _uuid(fields[_EVENT_ID].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return False
    return fields[_PLATFORM].decode("ascii", "replace") in PLATFORMS


def parse_event(values: list[str]) -> dict[str, Any]:
    """The SDK's JSON of one event's fields (exactly FIELD_COUNT of them); InvalidValue
    naming the fields that do not parse."""
    event: dict[str, Any] = {}
    if values[_LATITUDE] and values[_LONGITUDE]:  # as both SDKs add it
        event["geo_location"] = f"{values[_LATITUDE]},{values[_LONGITUDE]}"
    bad: list[str] = []
    for (name, convert), value in zip(FIELDS, values, strict=True):
        if not value:
            continue
        try:
            parsed = convert(value)
        except (ValueError, orjson.JSONDecodeError):
            bad.append(name)
            continue
        if convert in _SHREDDED:
            event.update(parsed)
        else:
            event[name] = parsed
    missing = [name for name in _REQUIRED if name not in event and name not in bad]
    if bad or missing:
        parts = [f"{', '.join(bad)} cannot be read as the SDK types them"] if bad else []
        parts += [f"{', '.join(missing)} missing"] if missing else []
        raise InvalidValue("; ".join(parts))
    return event


@dataclass(frozen=True, slots=True)
class SnowplowTsvReader:
    format: Format = Format.SNOWPLOW_TSV
    label: str = "Snowplow enriched TSV"
    resumable: bool = True
    span_splittable: bool = True
    has_header: bool = False
    records_span_lines: bool = False  # the enrich job escapes tabs and newlines in values
    cells_are_text: bool = False  # typed here, as the SDK types them

    def open(self, content: Content, options: ReadOptions) -> RecordStream:
        resume = options.resume
        position = LinePosition(resume.offset if resume else content.bom)
        first = resume.line - 1 if resume else 0
        records = _records(content.source.take, options.max_record_bytes, first, position)
        return RecordStream(self.format.value, content.compression, records, position)


SNOWPLOW_TSV_READER = SnowplowTsvReader()


def _records(
    take: Callable[[int], bytes], limit: int, number: int, position: LinePosition
) -> Iterator[SourceRecord]:
    """One event per line, from 1 MiB chunks; a line over `limit` is skipped unheld."""
    consumed, tail, skipping = position.base, b"", False
    while True:
        try:
            chunk = take(CHUNK)
        except DamagedError as exc:
            yield unreadable(number + 1, f"the file breaks after line {number}: {exc}")
            return
        if not chunk:
            break
        if skipping:  # the rest of an oversized line, already reported
            end = chunk.find(b"\n")
            if end < 0:
                consumed += len(chunk)
                continue
            consumed, chunk, skipping = consumed + end + 1, chunk[end + 1 :], False
        block = tail + chunk
        lines = block.split(b"\n")
        tail = lines.pop()
        position.mark(consumed, number + 1, lines)  # before a line is yielded: a stop may follow
        for line in lines:
            number += 1
            if (record := _record(number, line, limit)) is not None:
                yield record
        consumed += len(block) - len(tail)
        if len(tail) > limit + 1:  # +1: a CR whose LF is in the next chunk
            number, consumed, skipping = number + 1, consumed + len(tail), True
            yield _too_large(number, tail, limit)
            tail = b""
    if tail and not skipping:
        position.mark(consumed, number + 1, [tail])
        if (record := _record(number + 1, tail, limit)) is not None:
            yield record


def _record(number: int, line: bytes, limit: int) -> SourceRecord | None:
    """Line `number` as a record or a reject; None for a blank line (counted, skipped)."""
    line = line.removesuffix(b"\r")
    if not line.strip():
        return None
    if len(line) > limit:
        return _too_large(number, line, limit)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as bad:
        detail = f"line {number} is not valid UTF-8 (byte {bad.start + 1})"
        return SourceRecord(number, reason=reasons.INVALID_UTF8, detail=detail, raw=excerpt(line))
    values = text.split("\t")
    if len(values) != FIELD_COUNT:
        detail = (
            f"line {number}: expected {FIELD_COUNT} tab-separated fields (Snowplow enriched event),"
            f" got {len(values)}"
        )
        return SourceRecord(number, reason=reasons.SNOWPLOW_FIELD_COUNT, detail=detail, raw=excerpt(line))
    try:
        return SourceRecord(number, parse_event(values))
    except InvalidValue as error:
        detail = f"line {number}: {error}"
        return SourceRecord(number, reason=reasons.SNOWPLOW_INVALID_VALUE, detail=detail, raw=excerpt(line))


def _too_large(number: int, start: bytes, limit: int) -> SourceRecord:
    detail = f"line {number} is longer than {limit} bytes"
    return SourceRecord(
        number, reason=reasons.RECORD_TOO_LARGE, detail=detail, raw=excerpt(start[:_EXCERPT_BYTES])
    )
