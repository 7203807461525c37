"""Shaping: which valid messages are sent (filters, limit, sample) and what they carry (drop,
hash, set), from the job file's `filter`, `limit`, `sample`, `drop`, `hash` and `set` keys.

Shaping comes after validation: an invalid record is rejected whatever the filters say, and
only valid messages are shaped. A message a rule leaves out is neither sent nor rejected: it
is counted in the report's `filtered`, per rule in `filtered_by`. Rules are tried in the
order of `FILTER_RULES`; the first that leaves a message out is the one it is counted under.
Filters see the message as mapped; `drop`, `hash` and `set` then change what is sent, and
the changed message is validated again (a `set` that makes it too large rejects it).

`limit` holds per import: the splitter passes the messages earlier parts queued (the
checkpoint carries them), and a job with a limit is never split in parallel byte ranges.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jmespath
import orjson
from jmespath.exceptions import JMESPathError

from segment_importer.batch.encoding import EncodedMessage, encode_message
from segment_importer.job import CALL_TYPES, JobOptions
from segment_importer.mapping.shaped_fields import CALL_TYPE_FIELDS, ShapingError, check_path, set_value
from segment_importer.mapping.timestamps import TimestampError, format_timestamp, parse_timestamp
from segment_importer.mapping.validation import check_fields, check_kinds, check_size

SHAPING_KEYS = ("filter", "limit", "sample", "drop", "hash", "set")
FILTER_KEYS = ("since", "until", "types", "events", "exclude_events", "where")
# The order rules are tried in, and the names `filtered_by` counts them under.
FILTER_RULES = ("types", "events", "exclude_events", "since", "until", "where", "sample", "limit")
REDACTED = "(redacted)"
_HASH_KEYS = ("paths", "key", "keyParameter")
_SAMPLE_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class ShapingRules:
    """The job's shaping keys, checked and compiled."""

    since: str | None = None  # canonical UTC form, compared as text with message timestamps
    until: str | None = None
    types: frozenset[str] | None = None
    events: frozenset[str] | None = None
    exclude_events: frozenset[str] = frozenset()
    where: Any = None  # a compiled JMESPath expression
    limit: int | None = None
    sample: float | None = None
    drop: tuple[tuple[str, ...], ...] = ()
    hash_paths: tuple[tuple[str, ...], ...] = ()
    hash_key: str | None = None
    hash_key_parameter: str | None = None
    set_values: tuple[tuple[tuple[str, ...], Any], ...] = ()

    @property
    def active(self) -> bool:
        return self != _NO_RULES

    @property
    def transforms(self) -> bool:
        return bool(self.drop or self.hash_paths or self.set_values)


_NO_RULES = ShapingRules()


def rules_from_job(options: dict[str, Any], timestamp_range: list[str] | None = None) -> ShapingRules:
    """Compile the job's shaping keys (`{"filter": ..., "limit": ...}`), checking each (a `set`
    time against the job's `timestamp_range`)."""
    for key, value in options.items():
        check_option(key, value, timestamp_range)
    if not any(value not in (None, [], {}) for value in options.values()):
        return _NO_RULES
    where_filter = options.get("filter") or {}
    hashing = options.get("hash") or {}
    return ShapingRules(
        since=_moment(where_filter.get("since")),
        until=_moment(where_filter.get("until")),
        types=_names(where_filter.get("types")),
        events=_names(where_filter.get("events")),
        exclude_events=_names(where_filter.get("exclude_events")) or frozenset(),
        where=jmespath.compile(where_filter["where"]) if where_filter.get("where") else None,
        limit=options.get("limit"),
        sample=options.get("sample"),
        drop=tuple(_path(path) for path in options.get("drop") or ()),
        hash_paths=tuple(_path(path) for path in hashing.get("paths") or ()),
        hash_key=hashing.get("key"),
        hash_key_parameter=hashing.get("keyParameter"),
        set_values=tuple(
            (_path(path), set_value(path, value, timestamp_range))
            for path, value in (options.get("set") or {}).items()
        ),
    )


def check_option(key: str, value: Any, timestamp_range: list[str] | None = None) -> None:
    """Raise ShapingError unless `value` is a valid value of the shaping key `key` (null: unset;
    `timestamp_range`: the job's, for the times a `set` gives)."""
    if value is None:
        return
    if key == "set":
        _check_set(value, timestamp_range)
    else:
        _CHECKS[key](value)


def redacted(job_document: dict[str, Any]) -> dict[str, Any]:
    """A job document fit for reports and the ledger: a literal hash key is not shown."""
    hashing = job_document.get("hash")
    if not isinstance(hashing, dict) or hashing.get("key") is None:
        return job_document
    return {**job_document, "hash": {**hashing, "key": REDACTED}}


class LeftOut(Exception):
    """Raised by a profile for a record with no Segment call that is not a mistake (Snowplow's
    page_ping heartbeat): counted with the filtered, under `rule`, neither sent nor rejected."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


class FilterCounts(Protocol):
    """Where a shaper counts what it leaves out: an import report, or a preview."""

    filtered: int
    filtered_by: dict[str, int]


class Shaper:
    """Shapes the valid messages of one import part; counts what it leaves out in `counts`.

    `sent_before` is how many messages earlier parts of the import queued (for `limit`).
    """

    def __init__(
        self,
        rules: ShapingRules,
        counts: FilterCounts,
        *,
        sent_before: int = 0,
        hash_key: bytes | None = None,
    ) -> None:
        if rules.hash_paths and not hash_key:
            raise ShapingError("'hash' needs a key: 'hash.key' or 'hash.keyParameter'")
        self.rules = rules
        self.counts = counts
        self.sent = sent_before
        self._passthrough = not rules.active
        self._hash_key = hash_key or b""

    def shape(self, message: dict[str, Any], encoded: EncodedMessage) -> EncodedMessage | None:
        """What to send for a valid message (validated again if changed), or None: left out."""
        if self._passthrough:
            return encoded
        rule = self.rule_leaving_out(message)
        if rule is not None:
            self.count_left_out(rule)
            return None
        if self.rules.transforms:
            self.transform(message)
            check_fields(message)
            check_kinds(message)
            encoded = encode_message(message)
            check_size(encoded)
        self.sent += 1
        return encoded

    def count_left_out(self, rule: str) -> None:
        counts = self.counts
        counts.filtered += 1
        counts.filtered_by[rule] = counts.filtered_by.get(rule, 0) + 1

    def rule_leaving_out(self, message: dict[str, Any]) -> str | None:
        """The first rule that leaves the message out, or None when it is to be sent."""
        rules = self.rules
        if rules.types is not None and message["type"] not in rules.types:
            return "types"
        event = message.get("event") if message["type"] == "track" else None
        if rules.events is not None and event not in rules.events:
            return "events"
        if event in rules.exclude_events:
            return "exclude_events"
        timestamp = message.get("timestamp")  # absent (requireTimestamp false): outside any range
        if rules.since is not None and (timestamp is None or timestamp < rules.since):
            return "since"
        if rules.until is not None and (timestamp is None or timestamp >= rules.until):
            return "until"
        if rules.where is not None and not _truthy(rules.where.search(message)):
            return "where"
        if rules.sample is not None and not _sampled(message["messageId"], rules.sample):
            return "sample"
        if rules.limit is not None and self.sent >= rules.limit:
            return "limit"
        return None

    def transform(self, message: dict[str, Any]) -> None:
        for path in self.rules.drop:
            _drop(message, path)
        for path in self.rules.hash_paths:
            _replace(message, path, self._keyed_hash)
        for path, value in self.rules.set_values:
            call_types = CALL_TYPE_FIELDS.get(path[0])
            if call_types is None or message["type"] in call_types:
                _set(message, path, value)

    def _keyed_hash(self, value: Any) -> str:
        text = value.encode() if isinstance(value, str) else orjson.dumps(value)
        return hmac.new(self._hash_key, text, hashlib.sha256).hexdigest()


def shaper_for(
    job: JobOptions, counts: FilterCounts, read_parameter: Callable[[str], str] | None = None
) -> Shaper:
    """The shaper of an import part; `counts` (the report) holds what earlier parts queued."""
    rules = job.shaping_rules()
    sent_before = int(getattr(counts, "messages_queued", 0))
    return Shaper(rules, counts, sent_before=sent_before, hash_key=hash_key_of(rules, read_parameter))


def hash_key_of(rules: ShapingRules, read_parameter: Callable[[str], str] | None) -> bytes | None:
    """The HMAC key: the job's literal key, or the SSM parameter it names (read with
    `read_parameter`, a SecureString's value by its name); None when nothing is hashed."""
    if not rules.hash_paths:
        return None
    if rules.hash_key is not None:
        return rules.hash_key.encode()
    if read_parameter is None or rules.hash_key_parameter is None:
        raise ShapingError("'hash.keyParameter' needs SSM, which this caller does not have")
    return read_parameter(rules.hash_key_parameter).encode()


def _sampled(message_id: str, fraction: float) -> bool:
    """Deterministic: the same messageId is in (or out of) every run's sample."""
    digest = hashlib.blake2b(message_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * _SAMPLE_SCALE


def _truthy(value: Any) -> bool:
    # JMESPath's truth: false, null, and empty strings, lists and objects are false; 0 is true.
    return value is not None and value is not False and value not in ("", [], {})


def _parent(message: dict[str, Any], path: tuple[str, ...], *, create: bool) -> dict[str, Any] | None:
    node = message
    for name in path[:-1]:
        child = node.get(name)
        if not isinstance(child, dict):
            if not create:
                return None
            child = node[name] = {}  # `set` wins over a value that is not an object
        node = child
    return node


def _drop(message: dict[str, Any], path: tuple[str, ...]) -> None:
    parent = _parent(message, path, create=False)
    if parent is not None:
        parent.pop(path[-1], None)


def _replace(message: dict[str, Any], path: tuple[str, ...], change: Callable[[Any], Any]) -> None:
    parent = _parent(message, path, create=False)
    if parent is not None and parent.get(path[-1]) is not None:
        parent[path[-1]] = change(parent[path[-1]])


def _set(message: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    parent = _parent(message, path, create=True)
    assert parent is not None  # created
    parent[path[-1]] = value


# --- checks -----------------------------------------------------------------------------------


def _moment(value: str | None) -> str | None:
    return None if value is None else format_timestamp(parse_timestamp(value))


def _names(value: list[str] | None) -> frozenset[str] | None:
    return None if value is None else frozenset(value)


def _path(text: str) -> tuple[str, ...]:
    return tuple(text.split("."))


def _check_filter(value: Any) -> None:
    if not isinstance(value, dict):
        raise ShapingError(f"'filter' must be an object with any of {list(FILTER_KEYS)}")
    unknown = sorted(set(value) - set(FILTER_KEYS))
    if unknown:
        raise ShapingError(f"'filter' has unknown keys {unknown}; allowed: {list(FILTER_KEYS)}")
    for name in ("since", "until"):
        if name in value:
            _check_moment(name, value[name])
    since, until = value.get("since"), value.get("until")
    if since is not None and until is not None and _moment(since) >= _moment(until):  # type: ignore[operator]
        raise ShapingError(
            "'filter.since' must be before 'filter.until' (since is inclusive, until exclusive)"
        )
    if "types" in value:
        _check_types(value["types"])
    for name in ("events", "exclude_events"):
        if name in value and not _is_name_list(value[name]):
            raise ShapingError(f"'filter.{name}' must be a list of event names (strings)")
    if "where" in value:
        _check_where(value["where"])


def _check_moment(name: str, value: Any) -> None:
    expected = f"'filter.{name}' must be an ISO 8601 time, e.g. \"2024-01-01T00:00:00Z\" (UTC if no offset)"
    if not isinstance(value, str) or not value.strip():
        raise ShapingError(expected)
    try:
        parse_timestamp(value)
    except (TimestampError, ValueError, OverflowError):
        raise ShapingError(expected) from None


def _check_types(value: Any) -> None:
    if not _is_name_list(value) or not value or not set(value) <= set(CALL_TYPES):
        raise ShapingError(f"'filter.types' must be a non-empty list of call types from {list(CALL_TYPES)}")


def _check_where(value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ShapingError("'filter.where' must be a JMESPath expression (a string)")
    try:
        jmespath.compile(value)
    except JMESPathError as error:
        raise ShapingError(f"'filter.where' is not a valid JMESPath expression: {error}") from None


def _check_limit(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ShapingError("'limit' must be a whole number of messages, 0 or more")


def _check_sample(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ShapingError("'sample' must be a fraction of the messages, over 0 and at most 1 (e.g. 0.1)")


def _check_paths(name: str, paths: Any, *, may_be_required: bool) -> None:
    if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
        raise ShapingError(f"'{name}' must be a list of dot paths, e.g. [\"properties.email\"]")
    for path in paths:
        check_path(name, path, may_be_required=may_be_required)


def _check_hash(value: Any) -> None:
    if not isinstance(value, dict) or set(value) - set(_HASH_KEYS) or "paths" not in value:
        raise ShapingError(
            '\'hash\' must be an object: {"paths": [dot paths], "keyParameter": "/ssm/name"} '
            'or {"paths": [...], "key": "a secret"}'
        )
    _check_paths("hash.paths", value["paths"], may_be_required=True)
    sources = [name for name in ("key", "keyParameter") if value.get(name) is not None]
    if len(sources) != 1 or not isinstance(value[sources[0]], str) or not value[sources[0]]:
        raise ShapingError("'hash' needs exactly one of 'key' (a non-empty string) and 'keyParameter'")


def _check_set(value: Any, timestamp_range: list[str] | None = None) -> None:
    if not isinstance(value, dict):
        raise ShapingError('\'set\' must be an object of dot paths to values, e.g. {"context.source": "crm"}')
    for path, given in value.items():
        check_path("set", path, may_be_required=True)
        set_value(path, given, timestamp_range)


def _is_name_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


_CHECKS: dict[str, Callable[[Any], None]] = {
    "filter": _check_filter,
    "limit": _check_limit,
    "sample": _check_sample,
    "drop": lambda value: _check_paths("drop", value, may_be_required=False),
    "hash": _check_hash,
    "set": _check_set,  # with the job's timestampRange: check_option
}
