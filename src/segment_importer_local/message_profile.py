"""What a set of mapped messages looks like: call types, event names, time range, distinct
users and field coverage, in memory bounded whatever the number of messages.

Bounded how: event names and field names are counted exactly up to a cap, past it counted
together under `OTHER`; distinct ids are exact up to `EXACT_DISTINCT_UP_TO`, then estimated
with a KMV (k minimum values) sketch whose relative standard error is stated with the figure.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import Counter
from typing import Any

MAX_NAMES = 10_000  # distinct event names counted one by one
MAX_FIELDS = 2_000  # distinct property or trait names, per kind
MAX_SHAPES = 20_000  # distinct (names, types) shapes of properties counted as shapes
OTHER = "(other names)"
EXACT_DISTINCT_UP_TO = 100_000
SKETCH_SIZE = 4096  # KMV's k: relative standard error 1/sqrt(k - 2), about 1.6%
_HASH_SPACE = float(1 << 64)
_blake2b = hashlib.blake2b
_PROPERTY_TYPES = frozenset({"track", "page", "screen"})
_TRAIT_TYPES = frozenset({"identify", "group"})
_JSON_TYPES = {str: "string", bool: "boolean", int: "number", float: "number", dict: "object", list: "array"}


class DistinctCount:
    """Distinct values: exact up to a bound, then a KMV estimate (Bar-Yossef et al., 2002)."""

    def __init__(self, exact_up_to: int = EXACT_DISTINCT_UP_TO, sketch_size: int = SKETCH_SIZE) -> None:
        self._exact: set[str] | None = set()
        self._exact_up_to = exact_up_to
        self._k = sketch_size
        self._heap: list[int] = []  # the k smallest hashes, negated: heap[0] is minus the largest
        self._members: set[int] = set()
        self._largest_kept = 1 << 64  # below this a hash may enter the sketch

    def add(self, value: str) -> None:
        if self._exact is not None:
            self._exact.add(value)
            if len(self._exact) > self._exact_up_to:
                for seen in self._exact:
                    self._sketch(seen)
                self._exact = None
            return
        self._sketch(value)

    def _sketch(self, value: str) -> None:
        digest = int.from_bytes(_blake2b(value.encode(), digest_size=8).digest())
        if digest >= self._largest_kept or digest in self._members:
            return  # once the sketch is full, nearly every value ends here
        heap = self._heap
        if len(heap) < self._k:
            heapq.heappush(heap, -digest)
        else:
            self._members.discard(-heapq.heappushpop(heap, -digest))
        self._members.add(digest)
        if len(heap) == self._k:
            self._largest_kept = -heap[0]

    def result(self) -> dict[str, Any]:
        if self._exact is not None:
            return {"count": len(self._exact), "exact": True}
        kth_smallest = -self._heap[0] / _HASH_SPACE
        estimate = round((self._k - 1) / kth_smallest)
        error = 1 / math.sqrt(self._k - 2)
        return {
            "count": estimate,
            "exact": False,
            "method": f"KMV sketch, k={self._k}, exact up to {self._exact_up_to:,}",
            "relative_standard_error": round(error, 4),
        }


class FieldCoverage:
    """Per top-level property (or trait) name: how many messages carry it, and its types.

    Messages are counted by shape (their names and value types, found at C speed) while the
    shapes are few, as in most exports; past `MAX_SHAPES` shapes, name by name."""

    def __init__(self) -> None:
        self.messages = 0  # messages of the call types that carry this kind of field
        self.shapes: Counter[tuple[tuple[str, ...], tuple[type, ...]]] = Counter()
        self.counts: Counter[str] = Counter()
        self.types: dict[str, set[str]] = {}

    def add(self, fields: Any) -> None:
        self.messages += 1
        if not isinstance(fields, dict) or not fields:
            return
        shape = (tuple(fields), tuple(map(type, fields.values())))
        shapes = self.shapes
        if shape in shapes or len(shapes) < MAX_SHAPES:
            shapes[shape] += 1
        else:
            self._add_fields(shape, 1)

    def _add_fields(self, shape: tuple[tuple[str, ...], tuple[type, ...]], times: int) -> None:
        counts, types = self.counts, self.types
        for name, kind in zip(*shape, strict=True):
            if name not in types:
                if len(types) >= MAX_FIELDS:
                    name = OTHER
                types.setdefault(name, set())
            counts[name] += times
            types[name].add(_JSON_TYPES.get(kind, "null"))

    def result(self) -> dict[str, Any]:
        for shape, times in self.shapes.items():
            self._add_fields(shape, times)
        self.shapes.clear()
        fields = {
            name: {
                "messages": count,
                "share": round(count / self.messages, 4) if self.messages else 0.0,
                "types": sorted(self.types[name]),
            }
            for name, count in self.counts.most_common()
        }
        return {"messages": self.messages, "fields": fields}


class MessageProfile:
    """Feed it the messages as they would be sent; `result()` is the preview's summary of them."""

    def __init__(self) -> None:
        self.by_type: Counter[str] = Counter()
        self.by_event: Counter[str] = Counter()
        self.by_month: Counter[str] = Counter()
        self.first_timestamp: str | None = None
        self.last_timestamp: str | None = None
        self.untimed = 0
        self.users = DistinctCount()
        self.anonymous = DistinctCount()
        self.properties = FieldCoverage()
        self.traits = FieldCoverage()

    def add(self, message: dict[str, Any]) -> None:
        call_type = message["type"]
        self.by_type[call_type] += 1
        if call_type == "track":
            event = message["event"]
            if event not in self.by_event and len(self.by_event) >= MAX_NAMES:
                event = OTHER
            self.by_event[event] += 1
        self._time(message.get("timestamp"))
        if message.get("userId"):
            self.users.add(str(message["userId"]))
        if message.get("anonymousId"):
            self.anonymous.add(str(message["anonymousId"]))
        if call_type in _PROPERTY_TYPES:
            self.properties.add(message.get("properties"))
        elif call_type in _TRAIT_TYPES:
            self.traits.add(message.get("traits"))

    def _time(self, timestamp: str | None) -> None:
        # Timestamps are in the mapper's one UTC form (`2021-03-04T05:06:07.123Z`): text order is time order.
        if timestamp is None:
            self.untimed += 1
            return
        self.by_month[timestamp[:7]] += 1
        if self.first_timestamp is None or timestamp < self.first_timestamp:
            self.first_timestamp = timestamp
        if self.last_timestamp is None or timestamp > self.last_timestamp:
            self.last_timestamp = timestamp

    def result(self) -> dict[str, Any]:
        return {
            "by_type": dict(self.by_type.most_common()),
            "by_event": dict(self.by_event.most_common()),
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
            "by_month": dict(sorted(self.by_month.items())),
            "without_timestamp": self.untimed,
            "distinct_users": {"userId": self.users.result(), "anonymousId": self.anonymous.result()},
            "coverage": {"properties": self.properties.result(), "traits": self.traits.result()},
        }
