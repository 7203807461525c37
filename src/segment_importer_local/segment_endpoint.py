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

import ipaddress
import threading
from collections import Counter
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import IO, Any

from segment_importer_local.endpoint_checks import (  # the rules; names kept importable from here
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    MAX_REQUEST_BYTES,
    _check_message_sizes,
    _decoded_body,
    _error_reply,
    _ndjson_line,
    _now_iso,
    _ok,
    _parse_json,
    _raw_element_sizes,
    _RejectError,
    _Reply,
    _supplied_keys,
    _Triage,
    _triage,
    _unpack,
    drop_reason,
    warning_kinds,
)
from segment_importer_local.endpoint_faults import Fault, FaultPlan
from segment_importer_local.endpoint_http import _Handler, _Server

__all__ = [
    "MAX_BATCH_MESSAGES",
    "MAX_MESSAGE_BYTES",
    "MAX_REQUEST_BYTES",
    "Fault",
    "FaultPlan",
    "SegmentEndpoint",
    "_Handler",
    "_raw_element_sizes",
    "drop_reason",
    "warning_kinds",
]


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
        other_write_keys: Collection[str] = (),
        keep_messages: bool = True,
    ) -> None:
        _require_loopback(host)
        # False (the CLI's run): only message ids (for dedupe) and counts stay in memory, not
        # the messages: they are in `output_path`, and a large import would not fit.
        self.keep_messages = keep_messages
        self.write_key = write_key
        # The keys of further sources it stands in for (jobs that name their own write key).
        self.write_keys = frozenset({write_key, *other_write_keys})
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
            # Unbuffered: a write the disk refuses leaves nothing behind to fail again at close.
            self._output = self.output_path.open("ab", buffering=0)
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

    def accepted_by_write_key(self) -> dict[str, int]:
        """Messages accepted per write key (the Basic auth user or body.writeKey)."""
        with self._lock:
            return dict(self._by_write_key)

    def stats(self) -> dict[str, Any]:
        """Counters as a plain dict (status codes are int keys)."""
        with self._lock:
            return {
                "requests": self._counts["requests"],
                "settings_requests": self._counts["settings_requests"],
                "connections": self._counts["connections"],
                "batches_accepted": self._counts["batches_accepted"],
                "messages_accepted": self._counts["messages_accepted"],
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
        self._seen_ids: set[str] = set()  # keep_messages=False: dedupe without the messages
        self._dropped: list[dict[str, Any]] = []
        self._warnings: list[dict[str, Any]] = []
        self._counts: Counter[str] = Counter()
        self._drop_counts: Counter[str] = Counter()
        self._rejected: Counter[int] = Counter()
        self._fault_counts: Counter[str] = Counter()
        self._warning_counts: Counter[str] = Counter()
        self._by_write_key: Counter[str] = Counter()

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
        write_key = self._check_auth(headers, doc)
        self._note_max("max_batch_messages", len(messages))
        _check_message_sizes(call, data, messages)
        received_at = _now_iso()
        if len(messages) > MAX_BATCH_MESSAGES:
            self._commit(_Triage(dropped=[("batch_too_many_messages", m) for m in messages]), received_at)
        else:
            self._commit(_triage(messages, shared), received_at, batch=True, write_key=write_key)
        return _ok()

    def _check_auth(self, headers: Mapping[str, str], doc: Mapping[str, Any]) -> str:
        """The request's write key, if it is one of this endpoint's sources'."""
        keys = _supplied_keys(headers, doc)
        if not keys or any(key in ("", None) for key in keys):
            raise _RejectError(401, "missing_write_key", "no write key: use Basic auth or body.writeKey")
        if not self.accept_any_write_key and any(key not in self.write_keys for key in keys):
            raise _RejectError(401, "invalid_write_key", "the write key does not match this source")
        return str(keys[0])

    def _note_max(self, key: str, value: int) -> None:
        with self._lock:
            self._counts[key] = max(self._counts[key], value)

    def _commit(self, triage: _Triage, received_at: str, *, batch: bool = False, write_key: str = "") -> None:
        """Store one request's outcome atomically (dedupe needs the lock anyway). The messages
        are written to the output before anything is counted or remembered: a write that
        fails (a full disk) answers 500 with nothing registered, so the sender's retry is
        stored, not absorbed as a duplicate of what never reached the file (fault QA)."""
        with self._lock:
            fresh = self._fresh(triage.valid)
            for message, _kinds in fresh:  # Segment's own; an archived receivedAt is overwritten
                message["receivedAt"] = received_at
            try:
                self._write([message for message, _kinds in fresh])
            except OSError as error:
                raise _RejectError(
                    500, "storage_failed", f"the received file cannot be written: {error.strerror}"
                ) from None
            if batch:
                self._counts["batches_accepted"] += 1
            for reason, message in triage.dropped:
                self._drop_counts[reason] += 1
                if self.keep_messages:
                    self._dropped.append({"reason": reason, "message": message, "receivedAt": received_at})
            self._counts["duplicates"] += len(triage.valid) - len(fresh)
            for message, kinds in fresh:
                self._store(message, kinds)
            if write_key:
                self._by_write_key[write_key] += len(fresh)

    def _fresh(self, valid: list[tuple[dict[str, Any], list[str]]]) -> list[tuple[dict[str, Any], list[str]]]:
        """The messages whose messageId this endpoint has not stored (nor an earlier one of
        the same request)."""
        fresh, in_request = [], set()
        for message, kinds in valid:
            message_id = message.get("messageId")
            if message_id is not None:
                if (
                    message_id in self._by_message_id
                    or message_id in self._seen_ids
                    or message_id in in_request
                ):
                    continue
                in_request.add(message_id)
            fresh.append((message, kinds))
        return fresh

    def _store(self, message: dict[str, Any], kinds: list[str]) -> None:
        message_id = message.get("messageId")
        self._counts["messages_accepted"] += 1
        for kind in kinds:
            self._warning_counts[kind] += 1
        if not self.keep_messages:
            if message_id is not None:
                self._seen_ids.add(message_id)
            return
        self._accepted.append(message)
        if message_id is not None:
            self._by_message_id[message_id] = message
        self._warnings.extend({"kind": kind, "messageId": message_id} for kind in kinds)

    def _write(self, stored: list[dict[str, Any]]) -> None:
        if self._output is None or not stored:
            return
        lines = memoryview(b"".join(_ndjson_line(message) for message in stored))
        while lines:  # one request's lines in one write, so a CLI user can tail the file
            lines = lines[self._output.write(lines) :]


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
