"""A strict local HTTP server that speaks Segment's Tracking API, on loopback only.

Used as the CLI's embedded default destination and by the integration tests, which inject
faults and then look at what arrived. It follows Segment where Segment is strict (32 KB per
message, 500 KB per request, 400 for both; over 2,500 messages answered 200 and dropped;
invalid messages answered 200 and dropped; dedupe on `messageId`) and is stricter where a
test has to see a bug that real Segment would hide: a missing or wrong write key is answered
401 instead of a silent 200, and archive-only fields or missing timestamps are recorded as
warnings.

Standard library plus orjson. Nothing here ever sends traffic: the server binds to an IPv4
loopback address and refuses any other.

Message size is measured on the raw bytes of the message as received (its span in the
decompressed request body), not on a re-serialisation: a sender whose serialiser pads or
escapes differently is judged on what it actually put on the wire. For bodies produced by
`json.dumps` (segment-analytics-python) the two are the same number.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import logging
import random
import re
import socket
import struct
import threading
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from typing import IO, Any
from urllib.parse import unquote, urlsplit

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

FAULT_KINDS = ("status", "rate_limit", "reset", "stall", "accept_then_fail")  # draw order: fixed
_ALL_FAULT_KINDS = frozenset({"ok", *FAULT_KINDS})


# --------------------------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    """What the server does with one request.

    kinds: `ok`; `status` (answer `status_code` with a JSON error); `rate_limit` (429 with
    `Retry-After`/`X-RateLimit-Reset` = `retry_after` seconds); `reset` (read the request, then
    drop the TCP connection with an RST and no answer); `stall` (wait `stall_seconds`, then
    handle normally: the messages are stored even if the client gave up); `accept_then_fail`
    (handle normally, then answer 500 instead of 200: Segment got it, the answer was lost).
    """

    kind: str = "ok"
    status_code: int = 500
    retry_after: int = 1
    stall_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in _ALL_FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(_ALL_FAULT_KINDS)}")

    @classmethod
    def ok(cls) -> Fault:
        """Handle the request normally."""
        return cls("ok")

    @classmethod
    def status(cls, code: int = 500) -> Fault:
        """Answer `code` with a JSON error body, storing nothing."""
        return cls("status", status_code=code)

    @classmethod
    def rate_limit(cls, retry_after: int = 1) -> Fault:
        """Answer 429 with Retry-After, storing nothing."""
        return cls("rate_limit", status_code=429, retry_after=retry_after)

    @classmethod
    def reset(cls) -> Fault:
        """Drop the connection without an answer, storing nothing."""
        return cls("reset")

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Answer normally, but only after `seconds`."""
        return cls("stall", stall_seconds=seconds)

    @classmethod
    def accept_then_fail(cls) -> Fault:
        """Store the messages, then answer 500."""
        return cls("accept_then_fail")

    @classmethod
    def coerce(cls, item: Fault | str | int) -> Fault:
        """A script item: a Fault, a kind name with default parameters, or an HTTP status.

        An int is a `status` fault with that code (200 means ok); 429 given as an int is a
        bare 429 *without* Retry-After, which is a fault worth testing on its own.
        """
        if isinstance(item, Fault):
            return item
        if isinstance(item, bool):  # bool is an int: refuse it rather than answer "status 1"
            raise TypeError(f"not a fault: {item!r}")
        if isinstance(item, int):
            return cls.ok() if item == 200 else cls.status(item)
        if isinstance(item, str):
            return cls(item)
        raise TypeError(f"not a fault: {item!r}")


class FaultPlan:
    """Decides, per request and thread-safely, which Fault the server applies.

    Deterministic: a script is a fixed sequence; a random plan draws from `random.Random(seed)`,
    so the n-th request always gets the same decision for a given seed (under concurrency the
    sequence of decisions is the same, only which request gets which may vary).
    """

    def __init__(
        self,
        *,
        script: Iterable[Fault | str | int] = (),
        seed: int | None = None,
        rates: Mapping[str, float] | None = None,
        retry_after: int = 1,
        stall_seconds: float = 1.0,
        statuses: tuple[int, ...] = (500, 502, 503),
    ) -> None:
        self._lock = threading.Lock()
        self._script: deque[Fault] = deque(Fault.coerce(item) for item in script)
        self._rng = random.Random(seed) if rates is not None else None
        self._rates = _checked_rates(rates or {})
        self._retry_after = retry_after
        self._stall_seconds = stall_seconds
        self._statuses = statuses
        self._decided: list[Fault] = []

    @classmethod
    def script(cls, items: Iterable[Fault | str | int]) -> FaultPlan:
        """A fixed sequence of faults, then ok forever."""
        return cls(script=items)

    @classmethod
    def random(
        cls,
        seed: int,
        rates: Mapping[str, float],
        *,
        retry_after: int = 1,
        stall_seconds: float = 1.0,
        statuses: tuple[int, ...] = (500, 502, 503),
    ) -> FaultPlan:
        """Each request independently gets fault kind k with probability rates[k] (rest: ok)."""
        return cls(
            seed=seed, rates=rates, retry_after=retry_after, stall_seconds=stall_seconds, statuses=statuses
        )

    def next_fault(self) -> Fault:
        """The decision for the next request."""
        with self._lock:
            fault = self._draw()
            self._decided.append(fault)
            return fault

    @property
    def decided(self) -> list[Fault]:
        """Every decision so far, in order (for reproducibility checks)."""
        with self._lock:
            return list(self._decided)

    def _draw(self) -> Fault:
        if self._script:
            return self._script.popleft()
        if self._rng is None:
            return Fault.ok()
        roll = self._rng.random()
        cumulative = 0.0
        for kind in FAULT_KINDS:  # fixed order, so the same roll always maps to the same kind
            cumulative += self._rates.get(kind, 0.0)
            if roll < cumulative:
                return self._random_fault(kind)
        return Fault.ok()

    def _random_fault(self, kind: str) -> Fault:
        if kind == "status":
            return Fault.status(self._rng.choice(self._statuses))  # type: ignore[union-attr]
        if kind == "rate_limit":
            return Fault.rate_limit(self._retry_after)
        if kind == "stall":
            return Fault.stall(self._stall_seconds)
        return Fault(kind)


def _checked_rates(rates: Mapping[str, float]) -> dict[str, float]:
    """Refuse unknown kinds and impossible probabilities up front, not mid-test."""
    unknown = set(rates) - set(FAULT_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; expected some of {FAULT_KINDS}")
    if any(not 0.0 <= rate <= 1.0 for rate in rates.values()) or sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError(f"fault rates must each be in [0, 1] and sum to at most 1: {dict(rates)}")
    return dict(rates)


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
    """Batch-level context/integrations merged into the message; the message's keys win."""
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


# --------------------------------------------------------------------------------------------
# The endpoint
# --------------------------------------------------------------------------------------------


class SegmentEndpoint:
    """A strict local Segment Tracking API on 127.0.0.1 (see the module docstring).

    Use as a context manager or call start()/stop(); `url` is the `host` to give
    segment-analytics-python. State (`accepted`, `by_message_id`, `dropped`, `warnings`,
    `stats()`) is safe to read from other threads while requests arrive. `faults` may be
    replaced at any time; it is consulted once per request that reaches a known endpoint with
    a readable body.
    """

    def __init__(
        self,
        write_key: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultPlan | None = None,
        output_path: str | Path | None = None,
        accept_any_write_key: bool = False,
    ) -> None:
        _require_loopback(host)
        self.write_key = write_key
        self.host = host
        self.port = port
        self.faults = faults
        self.output_path = Path(output_path) if output_path is not None else None
        self.accept_any_write_key = accept_any_write_key
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._output: IO[bytes] | None = None
        self._clear()

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SegmentEndpoint:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("SegmentEndpoint is already running")
        self._stopping.clear()
        if self.output_path is not None:
            self._output = self.output_path.open("ab")
        self._server = _Server((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # stop() waits up to one poll interval
            name=f"segment-endpoint-{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections, wake stalled requests; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            if self._output is not None:
                self._output.close()
                self._output = None

    def __enter__(self) -> SegmentEndpoint:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """e.g. http://127.0.0.1:54321 (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("SegmentEndpoint is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---- state -------------------------------------------------------------------------------

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """Accepted messages in arrival order, each with the server's `receivedAt`."""
        with self._lock:
            return list(self._accepted)

    @property
    def by_message_id(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._by_message_id)

    @property
    def dropped(self) -> list[dict[str, Any]]:
        """Messages answered 200 but dropped: {"reason", "message", "receivedAt"}."""
        with self._lock:
            return list(self._dropped)

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """Accepted messages that carried something suspicious: {"kind", "messageId"}."""
        with self._lock:
            return list(self._warnings)

    def stats(self) -> dict[str, Any]:
        """Counters as a plain dict (status codes are int keys)."""
        with self._lock:
            return {
                "requests": self._counts["requests"],
                "settings_requests": self._counts["settings_requests"],
                "connections": self._counts["connections"],
                "batches_accepted": self._counts["batches_accepted"],
                "messages_accepted": len(self._accepted),
                "duplicates": self._counts["duplicates"],
                "dropped": dict(self._drop_counts),
                "rejected_requests": dict(self._rejected),
                "faults": dict(self._fault_counts),
                "warnings": dict(self._warning_counts),
                "max_request_bytes": self._counts["max_request_bytes"],
                "max_batch_messages": self._counts["max_batch_messages"],
            }

    def reset(self) -> None:
        """Forget everything received (not the fault plan; the output file is not truncated)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._accepted: list[dict[str, Any]] = []
        self._by_message_id: dict[str, dict[str, Any]] = {}
        self._dropped: list[dict[str, Any]] = []
        self._warnings: list[dict[str, Any]] = []
        self._counts: Counter[str] = Counter()
        self._drop_counts: Counter[str] = Counter()
        self._rejected: Counter[int] = Counter()
        self._fault_counts: Counter[str] = Counter()
        self._warning_counts: Counter[str] = Counter()

    # ---- called by the request handler -------------------------------------------------------

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _count_fault(self, kind: str) -> None:
        with self._lock:
            self._fault_counts[kind] += 1

    def _rejection(self, exc: _RejectError) -> _Reply:
        with self._lock:
            self._rejected[exc.status] += 1
        return _error_reply(exc.status, exc.code, exc.message, close=exc.close)

    def _next_fault(self) -> Fault:
        plan = self.faults  # read once: the attribute may be swapped concurrently
        return plan.next_fault() if plan is not None else Fault.ok()

    def _pause(self, seconds: float) -> None:
        self._stopping.wait(seconds)  # stop() must not wait out a stall

    def _handle(self, call: str, headers: Mapping[str, str], raw: bytes) -> _Reply:
        """Apply Segment's rules to one request; state changes happen only on success."""
        try:
            return self._accept(call, headers, raw)
        except _RejectError as exc:
            return self._rejection(exc)

    def _accept(self, call: str, headers: Mapping[str, str], raw: bytes) -> _Reply:
        data = _decoded_body(headers, raw)
        self._note_max("max_request_bytes", len(data))
        if len(data) > MAX_REQUEST_BYTES:
            raise _RejectError(
                400, "request_too_large", f"body is {len(data)} bytes; the limit is {MAX_REQUEST_BYTES}"
            )
        doc = _parse_json(data)
        messages, shared = _unpack(call, doc)
        self._check_auth(headers, doc)
        self._note_max("max_batch_messages", len(messages))
        _check_message_sizes(call, data, messages)
        received_at = _now_iso()
        if len(messages) > MAX_BATCH_MESSAGES:
            self._commit(_Triage(dropped=[("batch_too_many_messages", m) for m in messages]), received_at)
        else:
            self._commit(_triage(messages, shared), received_at, batch=True)
        return _ok()

    def _check_auth(self, headers: Mapping[str, str], doc: Mapping[str, Any]) -> None:
        keys = _supplied_keys(headers, doc)
        if not keys or any(key in ("", None) for key in keys):
            raise _RejectError(401, "missing_write_key", "no write key: use Basic auth or body.writeKey")
        if not self.accept_any_write_key and any(key != self.write_key for key in keys):
            raise _RejectError(401, "invalid_write_key", "the write key does not match this source")

    def _note_max(self, key: str, value: int) -> None:
        with self._lock:
            self._counts[key] = max(self._counts[key], value)

    def _commit(self, triage: _Triage, received_at: str, *, batch: bool = False) -> None:
        """Store one request's outcome atomically (dedupe needs the lock anyway)."""
        with self._lock:
            if batch:
                self._counts["batches_accepted"] += 1
            for reason, message in triage.dropped:
                self._drop_counts[reason] += 1
                self._dropped.append({"reason": reason, "message": message, "receivedAt": received_at})
            stored = [m for m, kinds in triage.valid if self._store(m, kinds, received_at)]
            self._write(stored)

    def _store(self, message: dict[str, Any], kinds: list[str], received_at: str) -> bool:
        message_id = message.get("messageId")
        if message_id is not None and message_id in self._by_message_id:
            self._counts["duplicates"] += 1
            return False
        message["receivedAt"] = received_at  # Segment's own; an archived receivedAt is overwritten
        self._accepted.append(message)
        if message_id is not None:
            self._by_message_id[message_id] = message
        for kind in kinds:
            self._warning_counts[kind] += 1
            self._warnings.append({"kind": kind, "messageId": message_id})
        return True

    def _write(self, stored: list[dict[str, Any]]) -> None:
        if self._output is None or not stored:
            return
        self._output.write(b"".join(_ndjson_line(m) for m in stored))
        self._output.flush()  # once per request, so a CLI user can tail the file


def _require_loopback(host: str) -> None:
    """Refuse to bind anywhere but IPv4 loopback: this server must never be reachable."""
    if host == "localhost":
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host must be an IPv4 loopback address, not {host!r}") from None
    if address.version != 4 or not address.is_loopback:
        raise ValueError(f"host must be an IPv4 loopback address, not {host!r}")


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes connections itself; never wait on a client

    def __init__(self, address: tuple[str, int], endpoint: SegmentEndpoint) -> None:
        self.endpoint = endpoint
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can stall.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("segment endpoint: error handling a request from %s", client_address, exc_info=True)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries Content-Length
    server_version = "segment-local-endpoint"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection releases its thread eventually
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without NODELAY, Nagle plus the client's
        # delayed ACK adds ~40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)
        self.server.endpoint._count("connections")

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # Never print; and the settings path holds a write key, so request lines are redacted.
        redacted = tuple(_SETTINGS_IN_TEXT.sub("/v1/projects/***/settings", str(arg)) for arg in args)
        _log.debug("segment endpoint: " + format, *redacted)

    def do_POST(self) -> None:  # BaseHTTPRequestHandler's naming
        endpoint = self.server.endpoint
        endpoint._count("requests")
        call = _route(self.path)
        raw = self._read_body()
        if raw is None:
            return
        if call is None:
            self._send(endpoint._rejection(_RejectError(404, "not_found", f"no endpoint {self.path}")))
            return
        self._serve(endpoint, call, raw)

    def do_GET(self) -> None:
        # Segment's settings CDN (cdn.segment.com/v1/projects/KEY/settings): 200 for a known
        # write key, 404 otherwise. The importer's pre-flight check asks it.
        match = _SETTINGS_PATH.fullmatch(self.path.split("?", 1)[0])
        if match is None:
            self._not_found()
            return
        endpoint = self.server.endpoint
        endpoint._count("settings_requests")
        if self._read_body(required=False) is None:
            return
        if endpoint.accept_any_write_key or unquote(match.group(1)) == endpoint.write_key:
            self._send(_Reply(200, {"integrations": {}, "plan": {}}))
        else:
            self._send(_Reply(404, {"message": "Not Found"}))

    def do_HEAD(self) -> None:
        self._not_found(head=True)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET  # noqa: N815

    def _not_found(self, *, head: bool = False) -> None:
        endpoint = self.server.endpoint
        endpoint._count("requests")
        if self._read_body(required=False) is None:
            return
        reply = endpoint._rejection(_RejectError(404, "not_found", f"no endpoint {self.command} {self.path}"))
        self._send(reply, head=head)

    def _serve(self, endpoint: SegmentEndpoint, call: str, raw: bytes) -> None:
        fault = endpoint._next_fault()
        if fault.kind != "ok":
            endpoint._count_fault(fault.kind)
        if fault.kind == "reset":
            self._reset_connection()
            return
        if fault.kind in ("status", "rate_limit"):
            self._send(_fault_reply(fault))
            return
        if fault.kind == "stall":
            endpoint._pause(fault.stall_seconds)
        reply = endpoint._handle(call, self.headers, raw)
        if fault.kind == "accept_then_fail" and reply.status == 200:
            # Only a 200 is replaced: a request the rules reject stored nothing to "lose".
            reply = _error_reply(500, "injected_fault", "accepted, then failed (injected)")
        self._send(reply)

    def _read_body(self, *, required: bool = True) -> bytes | None:
        """The raw body, or None when an error was answered or the client went away."""
        if not required and "Content-Length" not in self.headers and "Transfer-Encoding" not in self.headers:
            return b""
        try:
            length = _content_length(self.headers)
        except _RejectError as exc:
            self._send(self.server.endpoint._rejection(exc))
            return None
        try:
            raw = self.rfile.read(length)
        except OSError:
            raw = b""
        if len(raw) != length:  # the client closed or timed out mid-body
            self.close_connection = True
            return None
        return raw

    def _send(self, reply: _Reply, *, head: bool = False) -> None:
        payload = orjson.dumps(reply.body)
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.close:
                self.send_header("Connection", "close")
            self.end_headers()
            if not head:
                self.wfile.write(payload)
        except OSError:  # the client gave up (e.g. after a stall): nothing left to tell it
            self.close_connection = True

    def _reset_connection(self) -> None:
        """Close with SO_LINGER 0: the client gets an RST and no answer at all."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


def _fault_reply(fault: Fault) -> _Reply:
    if fault.kind == "rate_limit":
        seconds = str(fault.retry_after)
        reply = _error_reply(429, "rate_limited", "too many requests (injected)")
        reply.headers = {"Retry-After": seconds, "X-RateLimit-Reset": seconds}
        return reply
    return _error_reply(fault.status_code, "injected_fault", f"injected HTTP {fault.status_code}")
