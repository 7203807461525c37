"""One batch request to Segment from bytes already serialised: segment-analytics-python's wire.

The library's `request.post` takes parsed messages and serialises them again with
`json.dumps` (45% of the sender's CPU, after parsing the SQS body cost another 26%). The
splitter already stored each message's JSON, so `post_batch` splices those bytes into the
same request the library sends: `{"batch": [...], "sentAt": ..., "writeKey": ...}`, its
headers (Content-Type, User-Agent `analytics-python/<version>`, X-Retry-Count, Basic auth
with the write key), gzipped the same way (at GZIP_LEVEL, not 9), on the library's own
`requests` session (so the deadline adapter request_deadline mounts on it still cuts a
dripping answer), and the same outcome:
the response on 2xx, the library's `APIError` otherwise (code and message from a JSON error
body, "redirect" on a 3xx, "unknown" when the body is not a JSON object).

Mirrors segment/analytics/request.py `post` (2.4.x); tests/unit/test_wire.py compares the two
requests as the endpoint receives them.
"""

from __future__ import annotations

import base64
import gzip as gzip_module
from datetime import datetime
from typing import Any

import orjson
from dateutil.tz import tzutc
from segment.analytics import request as segment_request
from segment.analytics.utils import remove_trailing_slash
from segment.analytics.version import VERSION

DEFAULT_HOST = "https://api.segment.io"
# The library gzips at level 9. Level 6 (zlib's default) leaves bodies 4% larger (6.3x smaller
# than plain JSON instead of 6.6x) for 57% of the CPU, measured on the benchmark's batches
# (docs/performance.md, sender): the sender stays I/O-bound with gzip on, which is the default.
GZIP_LEVEL = 6


def request_body(batch: bytes, write_key: str, sent_at: str | None = None) -> bytes:
    """The JSON body the library would send for `batch` (a JSON array's bytes)."""
    sent_at = sent_at or datetime.now(tz=tzutc()).isoformat()
    return b"".join(
        (
            b'{"batch":',
            batch,
            b',"sentAt":',
            orjson.dumps(sent_at),
            b',"writeKey":',
            orjson.dumps(write_key),
            b"}",
        )
    )


def request_headers(write_key: str, *, gzip: bool, retry_count: int) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": "analytics-python/" + VERSION}
    if retry_count > 0:
        headers["X-Retry-Count"] = str(retry_count)
    credentials = base64.b64encode(f"{write_key}:".encode()).decode()
    headers["Authorization"] = f"Basic {credentials}"
    if gzip:
        headers["Content-Encoding"] = "gzip"
    return headers


def post_batch(
    write_key: str,
    host: str | None = None,
    gzip: bool = False,
    timeout: float = 15,
    retry_count: int = 0,
    *,
    batch: bytes,
) -> Any:
    """POST `batch` (a JSON array's bytes) to `host`/v1/batch; raises APIError unless 2xx."""
    data = request_body(batch, write_key)
    if gzip:
        data = gzip_module.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
    url = remove_trailing_slash(host or DEFAULT_HOST) + "/v1/batch"
    headers = request_headers(write_key, gzip=gzip, retry_count=retry_count)
    response = segment_request._session.post(url, data=data, headers=headers, timeout=timeout)
    status = response.status_code
    if 200 <= status < 300:
        return response
    if 300 <= status < 400:  # requests follows what it can: this one it declined to
        raise segment_request.APIError(status, "redirect", response.reason, response)
    try:
        payload = response.json()
        raise segment_request.APIError(status, payload["code"], payload["message"], response)
    except (ValueError, KeyError, TypeError):  # not a JSON object with code and message
        raise segment_request.APIError(status, "unknown", response.text, response) from None
