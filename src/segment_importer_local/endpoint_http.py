"""The embedded Segment endpoint's HTTP plumbing: the loopback-only server and its request handler."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson

from segment_importer_local.endpoint_checks import (
    _SETTINGS_IN_TEXT,
    _SETTINGS_PATH,
    _content_length,
    _error_reply,
    _RejectError,
    _Reply,
    _route,
)
from segment_importer_local.endpoint_faults import Fault

if TYPE_CHECKING:
    from segment_importer_local.segment_endpoint import SegmentEndpoint

_log = logging.getLogger("segment_importer_local.segment_endpoint")

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
        if endpoint.accept_any_write_key or unquote(match.group(1)) in endpoint.write_keys:
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
