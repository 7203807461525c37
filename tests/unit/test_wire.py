"""deliver/wire.py sends what segment-analytics-python's `request.post` sends: the same
request line, headers and body (but `sentAt`), plain and gzipped, and the same APIError."""

from __future__ import annotations

import gzip
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from segment.analytics import request as segment_request

from segment_importer.deliver import wire

from ..conftest import WRITE_KEY
from .test_sending import _messages


class Capture(http.server.ThreadingHTTPServer):
    """Keeps each request's path, headers and body; answers with `self.answer`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: tuple[int, bytes] = (200, b'{"success": true}')
        capture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                capture.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, text = capture.answer
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def capture() -> Iterator[Capture]:
    server = Capture()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _document(request: dict[str, Any]) -> dict[str, Any]:
    body = request["body"]
    if request["headers"].get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    document = json.loads(body)
    document.pop("sentAt")  # the time each was sent
    return document


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("retry_count", [0, 2])
def test_the_same_request_as_the_library(capture: Capture, compress: bool, retry_count: int) -> None:
    messages = _messages(5)
    messages[0]["properties"] = {"city": "Zürich", "emoji": "\U0001f600", "quote": 'a "b"'}
    segment_request.post(
        WRITE_KEY, host=capture.url, gzip=compress, timeout=5, retry_count=retry_count, batch=messages
    )
    wire.post_batch(
        WRITE_KEY,
        host=capture.url,
        gzip=compress,
        timeout=5,
        retry_count=retry_count,
        batch=orjson.dumps(messages),
    )
    library, ours = capture.requests
    assert ours["path"] == library["path"] == "/v1/batch"
    skip = {"Content-Length"}  # the library's json.dumps escapes non-ASCII and adds spaces
    assert {k: v for k, v in ours["headers"].items() if k not in skip} == {
        k: v for k, v in library["headers"].items() if k not in skip
    }
    assert _document(ours) == _document(library)
    assert list(_document(ours)) == ["batch", "writeKey"]


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ((400, b'{"code": "invalid_request", "message": "bad"}'), "invalid_request"),
        ((401, b"not json"), "unknown"),
        ((500, b"[1, 2]"), "unknown"),
    ],
)
def test_the_same_error_as_the_library(capture: Capture, answer: tuple[int, bytes], code: str) -> None:
    capture.answer = answer
    errors = []
    for post, batch in ((segment_request.post, _messages(1)), (wire.post_batch, orjson.dumps(_messages(1)))):
        with pytest.raises(segment_request.APIError) as caught:
            post(WRITE_KEY, host=capture.url, timeout=5, batch=batch)
        errors.append((caught.value.status, caught.value.code, caught.value.message))
    assert errors[0] == errors[1]
    assert errors[1][:2] == (answer[0], code)
