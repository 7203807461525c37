"""The embedded Segment endpoint's rules: request-level checks (a failed check raises
`_RejectError`, answered 4xx) and per-message validation (answered 200 either way; invalid
messages are dropped), as Segment applies them (see segment_endpoint.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

_log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 500 * 1024  # Segment: 400 above this, measured on the decompressed body
MAX_MESSAGE_BYTES = 32 * 1024  # Segment: 400 above this, nothing from the request is kept
MAX_BATCH_MESSAGES = 2500  # Segment: above this the request gets 200 and every message is dropped
MAX_DECOMPRESSED_BYTES = 5 * 1024 * 1024  # bound on gunzip output: a gzip bomb must not eat memory
MAX_WIRE_BYTES = 5 * 1024 * 1024  # bound on what we read off the socket at all
MESSAGE_ID_MAX_CHARS = 99  # "under 100 characters"

CALL_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
BATCH_PATH = "/v1/batch"
SINGLE_CALL_PATHS = {f"/v1/{call}": call for call in CALL_TYPES}
ARCHIVE_ONLY_FIELDS = ("projectId", "receivedAt", "version", "sentAt", "writeKey")  # inside a message
ID_FIELDS = ("userId", "anonymousId", "groupId", "previousId")
OBJECT_FIELDS = ("context", "integrations", "properties", "traits")


# --------------------------------------------------------------------------------------------
# Request-level checks (pure functions; a failed check raises _RejectError)
# --------------------------------------------------------------------------------------------


class _RejectError(Exception):
    """A request answered with an error status by the server's own rules (not a fault)."""

    def __init__(self, status: int, code: str, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close  # the body may not have been read: the connection cannot be reused


@dataclass(slots=True)
class _Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


_SETTINGS_PATH = re.compile(r"/v1/projects/([^/]+)/settings")
_SETTINGS_IN_TEXT = re.compile(r"/v1/projects/[^/\s]+/settings")


def _ok() -> _Reply:
    return _Reply(200, {"success": True})


def _error_reply(status: int, code: str, message: str, *, close: bool = False) -> _Reply:
    # {"code", "message"} is what segment-analytics-python reads into APIError.
    return _Reply(status, {"code": code, "message": message}, close=close)


def _route(raw_path: str) -> str | None:
    """The call type a path serves ("batch" for /v1/batch), or None for a 404."""
    path = urlsplit(raw_path).path
    if path == BATCH_PATH:
        return "batch"
    return SINGLE_CALL_PATHS.get(path)


def _content_length(headers: Mapping[str, str]) -> int:
    """The declared body length; chunked or missing lengths are refused (we never guess)."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        raise _RejectError(411, "length_required", "chunked bodies are not supported", close=True)
    value = headers.get("Content-Length")
    if value is None:
        raise _RejectError(411, "length_required", "Content-Length is required", close=True)
    try:
        length = int(value)
    except ValueError:
        raise _RejectError(400, "invalid_request", "Content-Length is not a number", close=True) from None
    if length < 0:
        raise _RejectError(400, "invalid_request", "Content-Length is negative", close=True)
    if length > MAX_WIRE_BYTES:
        raise _RejectError(400, "request_too_large", f"body of {length} bytes not read", close=True)
    return length


def _check_content_type(value: str | None) -> None:
    media, _, params = (value or "").partition(";")
    if media.strip().lower() != "application/json":
        raise _RejectError(
            400, "invalid_content_type", f"Content-Type must be application/json, not {value!r}"
        )
    for param in params.split(";"):
        name, _, arg = param.partition("=")
        if name.strip().lower() == "charset" and arg.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise _RejectError(400, "invalid_content_type", f"charset must be utf-8, not {arg.strip()!r}")


def _decoded_body(headers: Mapping[str, str], raw: bytes) -> bytes:
    """The request body after Content-Type and Content-Encoding checks."""
    _check_content_type(headers.get("Content-Type"))
    encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding == "identity":
        return raw
    if encoding in ("gzip", "x-gzip"):
        return _gunzip(raw, MAX_DECOMPRESSED_BYTES)
    raise _RejectError(400, "unsupported_content_encoding", f"Content-Encoding {encoding!r} is not supported")


def _gunzip(raw: bytes, limit: int) -> bytes:
    """Decompress all gzip members, refusing output above `limit` before it is produced."""
    out = bytearray()
    data = raw
    try:
        while data:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            out += inflater.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                raise _RejectError(400, "request_too_large", f"gzip body inflates beyond {limit} bytes")
            if not inflater.eof:
                raise _RejectError(400, "invalid_gzip", "gzip body is truncated")
            data = inflater.unused_data
    except zlib.error as exc:
        raise _RejectError(400, "invalid_gzip", f"gzip body cannot be decompressed: {exc}") from None
    return bytes(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(data: bytes) -> Any:
    """orjson first (fast); the stdlib as a fallback for valid JSON orjson refuses (huge ints)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise _RejectError(400, "invalid_json", f"body is not valid JSON: {exc}") from None


def _unpack(call: str, doc: Any) -> tuple[list[Any], dict[str, Any]]:
    """The messages of a request and its batch-level fields (context, integrations)."""
    if not isinstance(doc, dict):
        raise _RejectError(400, "invalid_request", "body must be a JSON object")
    if call != "batch":
        # A single call is the message itself; writeKey and sentAt belong to the request.
        message = {k: v for k, v in doc.items() if k not in ("writeKey", "sentAt")}
        message["type"] = call  # the path decides, as with Segment
        return [message], {}
    batch = doc.get("batch")
    if not isinstance(batch, list):
        raise _RejectError(400, "invalid_request", "body.batch must be an array")
    shared = {key: doc[key] for key in ("context", "integrations") if key in doc}
    for key, value in shared.items():
        if not isinstance(value, dict):
            raise _RejectError(400, "invalid_request", f"batch-level {key} must be an object")
    return batch, shared


def _basic_user(header: str) -> str:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise _RejectError(401, "invalid_authorization", f"unsupported authorization scheme {scheme!r}")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _RejectError(401, "invalid_authorization", "malformed Basic credentials") from None
    user, _, _password = decoded.partition(":")  # the password is expected empty; not checked
    return user


def _supplied_keys(headers: Mapping[str, str], doc: Mapping[str, Any]) -> list[Any]:
    """Every write key the request carries (Basic user name, body writeKey)."""
    keys: list[Any] = []
    header = headers.get("Authorization")
    if header:
        keys.append(_basic_user(header))
    if "writeKey" in doc:
        keys.append(doc["writeKey"])
    return keys


def _raw_element_sizes(text: str) -> list[int] | None:
    """Byte size of each element of the top-level "batch" array, exactly as received.

    Walks the already-validated body with the stdlib scanner; None if the shape is unexpected
    (the caller then falls back to re-serialising each message with json.dumps defaults).
    """
    decoder = json.JSONDecoder()
    ascii_only = text.isascii()  # then characters are bytes and no slice needs encoding
    sizes: list[int] | None = None
    i = _skip_ws(text, 0)
    if text[i] != "{":
        return None
    i = _skip_ws(text, i + 1)
    while text[i] != "}":
        key, i = decoder.raw_decode(text, i)
        i = _skip_ws(text, _skip_ws(text, i) + 1)  # past the colon
        if key == "batch" and text[i] == "[":
            sizes, i = _array_element_sizes(decoder, text, i, ascii_only)
        else:
            _, i = decoder.raw_decode(text, i)
        i = _skip_ws(text, i)
        if text[i] == ",":
            i = _skip_ws(text, i + 1)
    return sizes


def _array_element_sizes(
    decoder: json.JSONDecoder, text: str, i: int, ascii_only: bool
) -> tuple[list[int], int]:
    sizes: list[int] = []
    i = _skip_ws(text, i + 1)
    while text[i] != "]":
        start = i
        _, i = decoder.raw_decode(text, i)
        sizes.append(i - start if ascii_only else len(text[start:i].encode("utf-8")))
        i = _skip_ws(text, i)
        if text[i] == ",":
            i = _skip_ws(text, i + 1)
    return sizes, i + 1


def _skip_ws(text: str, i: int) -> int:
    while text[i] in " \t\n\r":
        i += 1
    return i


def _message_sizes(call: str, data: bytes, messages: list[Any]) -> list[int]:
    """Per-message sizes in bytes as received (see the module docstring)."""
    if call != "batch":
        return [len(data)]
    if len(data) <= MAX_MESSAGE_BYTES:  # no message can be larger than the whole body
        return [0] * len(messages)
    try:
        sizes = _raw_element_sizes(data.decode("utf-8"))
    except (ValueError, IndexError):
        sizes = None
    if sizes is None or len(sizes) != len(messages):
        sizes = [len(json.dumps(message).encode("utf-8")) for message in messages]
    return sizes


def _check_message_sizes(call: str, data: bytes, messages: list[Any]) -> None:
    for index, size in enumerate(_message_sizes(call, data, messages)):
        if size > MAX_MESSAGE_BYTES:
            raise _RejectError(
                400,
                "message_too_large",
                f"message {index} is {size} bytes; the limit is {MAX_MESSAGE_BYTES}",
            )


# --------------------------------------------------------------------------------------------
# Per-message validation (answered 200 either way; invalid messages are dropped)
# --------------------------------------------------------------------------------------------


def _is_id(value: Any) -> bool:
    """A usable identifier: a non-blank string or a number (bool is not a number here)."""
    if isinstance(value, str):
        return value.strip() != ""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_timestamp(value: str) -> datetime | None:
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _shape_problem(message: dict[str, Any]) -> str | None:
    for key in ID_FIELDS:
        value = message.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int | float)):
            return "invalid_field"  # null means absent; objects, arrays and booleans are bugs
    for key in OBJECT_FIELDS:
        if key in message and not isinstance(message[key], dict):
            return "invalid_field"
    for key in ("event", "name"):
        if message.get(key) is not None and not isinstance(message[key], str):
            return "invalid_field"
    return None


def _call_problem(message: dict[str, Any]) -> str | None:
    call = message["type"]
    if not (_is_id(message.get("userId")) or _is_id(message.get("anonymousId"))):
        return "missing_user"
    if call == "track" and not (isinstance(message.get("event"), str) and message["event"].strip()):
        return "missing_event"
    if call == "group" and not _is_id(message.get("groupId")):
        return "missing_group_id"
    if call == "alias" and not _is_id(message.get("previousId")):
        return "missing_previous_id"
    if call == "alias" and not _is_id(message.get("userId")):
        return "missing_user_id"
    return None


def _stamp_problem(message: dict[str, Any]) -> str | None:
    timestamp = message.get("timestamp")
    if timestamp is not None and (not isinstance(timestamp, str) or _parse_timestamp(timestamp) is None):
        return "invalid_timestamp"
    message_id = message.get("messageId")
    if message_id is not None and not (
        isinstance(message_id, str) and 0 < len(message_id) <= MESSAGE_ID_MAX_CHARS
    ):
        return "invalid_message_id"
    return None


def drop_reason(message: Any) -> str | None:
    """Why Segment would drop this message (answering 200 all the same), or None if valid."""
    if not isinstance(message, dict):
        return "not_an_object"
    if message.get("type") not in CALL_TYPES:
        return "unknown_type"
    return _shape_problem(message) or _call_problem(message) or _stamp_problem(message)


def warning_kinds(message: dict[str, Any]) -> list[str]:
    """Things Segment accepts but an importer should not send (archive leftovers, no timestamp)."""
    kinds = [f"archive_field:{key}" for key in ARCHIVE_ONLY_FIELDS if key in message]
    timestamp = message.get("timestamp")
    if timestamp is None:
        kinds.append("missing_timestamp")  # Segment would stamp it with the arrival time
    elif (parsed := _parse_timestamp(timestamp)) is not None and parsed.tzinfo is None:
        kinds.append("timestamp_without_offset")
    if message.get("messageId") is None:
        kinds.append("missing_message_id")  # Segment makes one up: redelivery cannot be deduped
    return kinds


def _merged(message: dict[str, Any], shared: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Batch-level context/integrations merged into the message; the message's keys win.
    (read/batch_shared.py does the same on the product's side: kept apart on purpose, the
    endpoint stands in for Segment and must not share the code it checks.)"""
    for key, batch_value in shared.items():
        message[key] = {**batch_value, **message.get(key, {})}
    return message


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ndjson_line(message: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(message) + b"\n"
    except TypeError:  # orjson.JSONEncodeError: ints beyond 64 bits, lone surrogates
        return json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"


@dataclass(slots=True)
class _Triage:
    """One request's messages, sorted before anything is committed."""

    valid: list[tuple[dict[str, Any], list[str]]] = field(default_factory=list)
    dropped: list[tuple[str, Any]] = field(default_factory=list)


def _triage(messages: list[Any], shared: Mapping[str, dict[str, Any]]) -> _Triage:
    triage = _Triage()
    for message in messages:
        reason = drop_reason(message)
        if reason is not None:
            triage.dropped.append((reason, message))
        else:
            triage.valid.append((_merged(message, shared), warning_kinds(message)))
    return triage
