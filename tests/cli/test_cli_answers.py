"""`segment-importer run --host` at hosts that are not Segment, as QA found them: the verdict,
the exit code and the counts say what really happened, and the summary names host and why."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from tests.cli.conftest import no_traceback
from tests.standin_host import StandinHost, always

RECORDS = 1000


def _events(path: Path, count: int = RECORDS) -> Path:
    lines = (
        orjson.dumps(
            {
                "type": "track",
                "event": "Viewed",
                "userId": f"user-{i}",
                "timestamp": "2024-01-01T00:00:00Z",
                "messageId": f"qa-{i}",
            }
        )
        for i in range(count)
    )
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _run(cli, host: StandinHost, *parameters: str):
    options = [option for parameter in parameters for option in ("--parameter", parameter)]
    return cli("run", "events.ndjson", "--write-key", "K", "--host", host.url, "--no-progress", *options)


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (always(200, b'{"success": false}'), "success is false"),
        (always(200, b"<html><body>Please log in</body></html>", "text/html"), "the body is HTML"),
    ],
)
def test_a_200_that_is_not_segments_answer_is_not_ok(cli, tmp_path: Path, answer, says: str) -> None:
    _events(tmp_path / "events.ndjson")
    with StandinHost(answer) as host:
        done = _run(cli, host)

    assert done.code == 1, done.both
    out = " ".join(done.out.split())  # rich wraps the summary's lines
    assert f"{RECORDS:,} messages not delivered: " in out
    assert f"host answered HTTP 200 but not as Segment does: {says}" in out
    assert f"(host {host.url})" in out
    assert f"NOT OK: sent 0 of {RECORDS:,} records to {host.url}" in out
    assert "OK: sent 1,000" not in out
    no_traceback(done)


@pytest.mark.parametrize("status", [301, 302])
def test_a_redirect_is_not_counted_delivered(cli, tmp_path: Path, status: int) -> None:
    """The redirect's target answers 200 {"success": true} to a GET: followed, the batch
    counted delivered with nothing received."""
    _events(tmp_path / "events.ndjson")

    def redirect(host: StandinHost) -> tuple[int, dict[str, str], bytes]:
        return status, {"Location": f"{host.url}/elsewhere/v1/batch?session=abc"}, b""

    with StandinHost(redirect) as host:
        done = _run(cli, host, "MaxReceiveCount=2")
        gets, posts = host.gets, host.posts

    assert done.code == 1, done.both
    out = " ".join(done.out.split())
    assert f"HTTP {status}: the host redirects: use the final URL (Location: {host.url})" in out
    assert "session=abc" not in done.both
    assert f"NOT OK: sent 0 of {RECORDS:,} records" in out
    assert gets == 0
    assert posts == 2  # once per receive: never retried within one
    no_traceback(done)


def test_a_413_is_reported_as_413(cli, tmp_path: Path) -> None:
    _events(tmp_path / "events.ndjson", 3)
    with StandinHost(always(413, b"<html>413 Request Entity Too Large</html>", "text/html")) as host:
        done = _run(cli, host)

    assert done.code == 1, done.both
    out = " ".join(done.out.split())
    assert "the host answered HTTP 413 (Payload Too Large" in out
    assert "answered 400" not in out
    no_traceback(done)
    refused = list((tmp_path / "out").glob("*/bucket/**/*.refused/*.ndjson")) or list(
        (tmp_path / "out").rglob("*refused*")
    )
    text = "".join(path.read_text() for path in refused if path.is_file())
    assert text.count("HTTP 413") == 3, refused


def test_a_host_that_never_answers_says_so_on_each_retry_and_ends_not_ok(cli, tmp_path: Path) -> None:
    """It accepts the connection and the request, and never answers: a line on stderr for each
    retry, then NOT OK naming the host and the timeout, after MaxReceiveCount x
    SegmentMaxAttempts posts."""
    _events(tmp_path / "events.ndjson")
    with StandinHost(lambda _host: None) as host:
        done = _run(cli, host, "SegmentTimeoutSeconds=1", "SegmentMaxAttempts=2", "MaxReceiveCount=2")
        posts = host.posts

    assert done.code == 1, done.both
    retry_lines = re.findall(
        rf"^retrying {re.escape(host.url)}: .*no answer within 1 s\)? \(attempt 2, next try in [\d.]+ s\)$",
        done.err,
        flags=re.MULTILINE,
    )
    assert len(retry_lines) == 2, done.err  # one retry in each of the two receives
    assert posts == 4
    out = " ".join(done.out.split())
    assert f"{RECORDS:,} messages not delivered: gave up after 2 attempts; last: " in out
    assert "no answer within 1 s" in out
    assert f"(host {host.url})" in out
    assert f"NOT OK: sent 0 of {RECORDS:,} records" in out
    no_traceback(done)
