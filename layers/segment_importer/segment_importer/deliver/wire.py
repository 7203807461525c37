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

Two differences, both so that "delivered" means Segment took the batch:
- redirects are not followed: `requests` turns a POST answered 301/302 into a GET of the new
  Location, which a web server answers 200 with no data arriving anywhere. A 3xx is raised as
  the library raises the 3xx it does not follow (`APIError(status, "redirect", ...)`), and
  `redirect_target` says where to (scheme and host only: a path or query may hold anything);
- a 2xx is an acceptance only if it looks like Segment's (`acceptance_problem`): Segment
  answers `{"success": true}`; a captive portal's or a proxy's HTML login page, a web server's
  catch-all page or `{"success": false}` are 2xx too.

Mirrors segment/analytics/request.py `post` (2.4.x); tests/unit/test_wire.py compares the two
requests as the endpoint receives them.
"""

from __future__ import annotations

import base64
import gzip as gzip_module
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

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
# Which 2xx answers are an acceptance (the template's SegmentAcceptedAnswers):
# `segment`: Segment's JSON `{"success": true}`, or the text `OK` that RudderStack's gateway
# (a Segment-compatible endpoint) answers on /v1/batch; `any-2xx`: any 2xx at all, for another
# compatible endpoint that answers otherwise (an empty 204, say).
SEGMENT_ANSWERS = "segment"
ANY_2XX = "any-2xx"
ACCEPTED_ANSWERS = (SEGMENT_ANSWERS, ANY_2XX)
_COMPATIBLE_TEXT_ANSWERS = frozenset({b"OK"})


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
    response = segment_request._session.post(
        url, data=data, headers=headers, timeout=timeout, allow_redirects=False
    )
    status = response.status_code
    if 200 <= status < 300:
        return response
    if 300 <= status < 400:  # not followed: a redirected POST arrives as a GET, without its body
        raise segment_request.APIError(status, "redirect", response.reason, response)
    try:
        payload = response.json()
        raise segment_request.APIError(status, payload["code"], payload["message"], response)
    except (ValueError, KeyError, TypeError):  # not a JSON object with code and message
        raise segment_request.APIError(status, "unknown", response.text, response) from None


def acceptance_problem(response: Any, accepted_answers: str = SEGMENT_ANSWERS) -> str | None:
    """Why a 2xx `response` is not an acceptance of the batch, or None when it is one.

    The words describe the answer's form only: its text is not ours to log (a portal or a
    stand-in host may echo the request, write key and records included)."""
    if accepted_answers == ANY_2XX:
        return None
    body = (response.content or b"").strip()
    if body in _COMPATIBLE_TEXT_ANSWERS:
        return None
    if not body:
        return "the body is empty"
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        content_type = str(response.headers.get("Content-Type", "")).lower()
        if "html" in content_type or body[:64].lstrip().lower().startswith((b"<!doctype html", b"<html")):
            return "the body is HTML (a login page, a portal or a web server's page?)"
        return "the body is not JSON"
    if not isinstance(payload, dict) or "success" not in payload:
        return "the body is JSON without success: true"
    if payload["success"] is False:
        return "success is false"
    if payload["success"] is not True:
        return "success is not true"
    return None


def redirect_target(response: Any) -> str:
    """Where a 3xx `response` sends the client: scheme and host of its Location only."""
    location = str(response.headers.get("Location") or "") if response is not None else ""
    if not location:
        return "no Location"
    parts = urlsplit(urljoin(str(getattr(response, "url", "") or ""), location))
    if not parts.scheme or not parts.hostname:
        return "a Location that is not a URL"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
