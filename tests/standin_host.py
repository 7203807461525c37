"""A loopback HTTP host that answers POST /v1/batch however a test says: what QA pointed the CLI
at instead of Segment (a captive portal, a proxy, a redirector, a host that never answers).

`StandinHost(answer)` serves on 127.0.0.1; `answer(handler)` returns (status, headers, body),
or None to never answer (the connection is held open until the host stops). GETs are counted
apart from POSTs: a redirected POST that `requests` follows arrives as a GET.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, str], bytes] | None
SEGMENT_OK: Answer = (200, {"Content-Type": "application/json"}, b'{"success": true}')


class StandinHost:
    def __init__(self, answer: Callable[[StandinHost], Answer]) -> None:
        self.answer = answer
        self.posts = 0
        self.gets = 0
        self.last_body_bytes = 0  # of the POST being answered
        self._lock = threading.Lock()
        self._stop = threading.Event()
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # BaseHTTPRequestHandler's naming
                size = len(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with host._lock:
                    host.posts += 1
                    host.last_body_bytes = size
                self._reply(host.answer(host))

            def do_GET(self) -> None:
                with host._lock:
                    host.gets += 1
                self._reply(SEGMENT_OK)  # a redirect's target, or a settings CDN: "fine"

            def _reply(self, answer: Answer) -> None:
                if answer is None:  # accept, read, never answer
                    host._stop.wait()
                    self.close_connection = True
                    return
                status, headers, body = answer
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if status != 204 and "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 204:
                    self.wfile.write(body)
                if headers.get("Connection") == "close":  # a short body then ends here
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StandinHost:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


def always(status: int, body: bytes = b"", content_type: str = "application/json", **headers: str) -> Any:
    """An `answer` giving the same reply to every POST."""
    return lambda _host: (status, {"Content-Type": content_type, **headers}, body)
