"""Realistic generated events, and the same events written as NDJSON, CSV and a JSON array.

Events look like what a Segment migration imports: mostly track calls with nested
`properties` (order ids, revenue, a product list) and a browser `context` (ip, user agent,
page, library, campaign), some page and identify calls. The compact JSON of each event is
300-600 bytes. Everything is deterministic for a given seed.

The CSV holds the same events flattened into dotted columns (`properties.revenue`,
`context.page.url`); lists (`properties.products`) are JSON text in their cell, as warehouse
exports write them. Every row has every column (empty cells where an event has no value).
"""

from __future__ import annotations

import csv
import gzip
import io
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson

EVENT_NAMES = (
    "Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Cart Viewed",
    "Signed In", "Subscription Renewed", "Coupon Applied", "Products Searched", "Video Played",
)  # fmt: skip
PATHS = ("/", "/pricing", "/checkout", "/products/42", "/blog/42", "/account/settings")
BROWSERS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1) Mobile/15E148",
)
CAMPAIGNS = ({"name": "spring_sale", "source": "email"}, None, None, None)
START = datetime(2021, 1, 1, tzinfo=UTC)


def events(count: int, seed: int = 5, start: int = 0) -> list[dict[str, Any]]:
    """`count` events (dicts in Segment spec shape); `start` offsets their times."""
    rng = random.Random(seed)
    return [_event(rng, number) for number in range(start, start + count)]


def _event(rng: random.Random, number: int) -> dict[str, Any]:
    moment = START + timedelta(seconds=number * 37 + rng.randrange(30), milliseconds=rng.randrange(1000))
    user = f"user_{rng.randrange(200_000):06d}"
    path = rng.choice(PATHS)
    context: dict[str, Any] = {
        "ip": f"203.0.{rng.randrange(256)}.{rng.randrange(256)}",
        "userAgent": rng.choice(BROWSERS),
        "library": {"name": "analytics.js", "version": "4.1.0"},
        "page": {"path": path},
    }
    campaign = rng.choice(CAMPAIGNS)
    if campaign:
        context["campaign"] = dict(campaign)
    kind = rng.random()
    event: dict[str, Any] = {
        "type": "track",
        "userId": user,
        "anonymousId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if rng.random() < 0.5:  # half the records carry their original id (archive exports do)
        event["messageId"] = f"ajs-{uuid.UUID(int=rng.getrandbits(128), version=4).hex}"
    if kind < 0.85:
        event["event"] = rng.choice(EVENT_NAMES)
        event["properties"] = _properties(rng)
    elif kind < 0.95:
        event["type"] = "page"
        event["name"] = path.strip("/").split("/")[0] or "home"
        event["properties"] = {
            "title": "Shop",
            "url": f"https://shop.example.com{path}",
            "referrer": "https://www.example.org/",
        }
    else:
        event["type"] = "identify"
        event["traits"] = {
            "email": f"{user}@example.com",
            "plan": rng.choice(("free", "pro", "team")),
            "logins": rng.randrange(500),
        }
    event["context"] = context
    return event


def _properties(rng: random.Random) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "order_id": f"ord_{rng.getrandbits(40):010x}",
        "revenue": round(rng.uniform(5, 500), 2),
        "currency": "USD",
    }
    if rng.random() < 0.5:
        properties["products"] = [
            {"sku": f"SKU-{rng.randrange(9999):04d}", "quantity": rng.randrange(1, 4)}
            for _ in range(rng.choice((1, 1, 2)))
        ]
    elif rng.random() < 0.3:
        properties["coupon"] = rng.choice(("SPRING10", "WELCOME", "VIP25"))
    return properties


# --- formats --------------------------------------------------------------------------------


def ndjson(items: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE) for item in items)


def json_array(items: list[dict[str, Any]]) -> bytes:
    return b"[\n" + b",\n".join(orjson.dumps(item) for item in items) + b"\n]\n"


def flatten(item: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted columns; lists become JSON text; values become CSV text."""
    flat: dict[str, str] = {}
    for key, value in item.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = orjson.dumps(value).decode()
        elif isinstance(value, bool):
            flat[name] = "true" if value else "false"
        else:
            flat[name] = str(value)
    return flat


def csv_bytes(items: list[dict[str, Any]]) -> bytes:
    rows = [flatten(item) for item in items]
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


FORMATS = {"ndjson": ndjson, "csv": csv_bytes, "json_array": json_array}
EXTENSIONS = {"ndjson": "ndjson", "csv": "csv", "json_array": "json"}


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def size_stats(items: list[dict[str, Any]]) -> dict[str, float]:
    sizes = sorted(len(orjson.dumps(item)) for item in items)
    return {
        "min": sizes[0],
        "median": sizes[len(sizes) // 2],
        "max": sizes[-1],
        "mean": round(sum(sizes) / len(sizes), 1),
        "p05": sizes[len(sizes) // 20],
        "p95": sizes[len(sizes) * 19 // 20],
    }


# --- files ---------------------------------------------------------------------------------


def write_events_file(path: Path, count: int, *, chunk: int = 50_000, compress: bool = False) -> int:
    """NDJSON of `count` distinct events, generated and written chunk by chunk (flat memory).

    Returns the uncompressed size in bytes."""
    written = 0
    with _writer(path, compress, level=6) as out:
        for index, start in enumerate(range(0, count, chunk)):
            block = ndjson(events(min(chunk, count - start), seed=1000 + index, start=start))
            out.write(block)
            written += len(block)
    return written


def write_big_file(
    path: Path, fmt: str, target_bytes: int, *, compress: bool, block_events: int = 20_000
) -> int:
    """Write about `target_bytes` of uncompressed `fmt` content to `path` by repeating one block
    of generated events (record numbers still differ, so derived ids stay distinct).

    Returns the uncompressed byte count. Only NDJSON and CSV.
    """
    block = FORMATS[fmt](events(block_events, seed=11))
    header = b""
    if fmt == "csv":
        header, _, block = block.partition(b"\n")
        header += b"\n"
    written = 0
    # gzip level 1 keeps generating a 1 GB file quick; reading is no different from level 6.
    with _writer(path, compress, level=1) as out:
        out.write(header)
        written += len(header)
        while written < target_bytes:
            out.write(block)
            written += len(block)
    return written


def _writer(path: Path, compress: bool, *, level: int) -> BinaryIO:
    if compress:
        return gzip.open(path, "wb", compresslevel=level)  # type: ignore[return-value]
    return path.open("wb")


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def dumps_lenient(item: Any) -> bytes:
    """orjson, or json for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(item)
    except TypeError:
        import json

        return json.dumps(item, ensure_ascii=False).encode()


def ndjson_lenient(items: list[dict[str, Any]]) -> bytes:
    return b"".join(dumps_lenient(item) + b"\n" for item in items)
