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


def test_a_413_from_a_proxy_is_reported_as_413_not_400(cli, tmp_path: Path) -> None:
    """A proxy in front of Segment that takes at most 8 KB a request: the batch is halved, the
    messages over its limit are refused with 413, and the summary and the rejects say 413."""
    events = [
        {"type": "track", "event": "Viewed", "userId": f"u-{i}", "timestamp": "2024-01-01T00:00:00Z"}
        for i in range(20)
    ]
    for event in events[::10]:  # two messages of 12 KB: under Segment's 32 KB, over the proxy's 8 KB
        event["properties"] = {"blob": "x" * 12_000}
    (tmp_path / "events.ndjson").write_bytes(b"\n".join(map(orjson.dumps, events)) + b"\n")

    def proxy(host: StandinHost) -> tuple[int, dict[str, str], bytes]:
        if host.last_body_bytes > 8_000:
            return 413, {"Content-Type": "text/html"}, b"<html>413 Request Entity Too Large</html>"
        return 200, {"Content-Type": "application/json"}, b'{"success": true}'

    with StandinHost(proxy) as host:
        done = _run(cli, host, "SegmentGzip=false")

    assert done.code == 3, done.both  # finished, with rejects
    out = " ".join(done.out.split())
    assert "top reject reason rejected_by_segment (2): the host answered HTTP 413 (Payload Too Large" in out
    assert "answered 400" not in out
    assert "DONE WITH REJECTS: sent 18 of 20 records" in out
    refused = [path for path in (tmp_path / "out").rglob("*.ndjson") if ".refused" in str(path)]
    lines = [orjson.loads(line) for path in refused for line in path.read_bytes().splitlines()]
    assert len(lines) == 2, refused
    assert all("HTTP 413" in str(line) for line in lines)
    no_traceback(done)


def test_a_host_that_answers_413_to_everything_fails_the_batch_naming_413(cli, tmp_path: Path) -> None:
    _events(tmp_path / "events.ndjson", 5)
    with StandinHost(always(413, b"<html>413 Request Entity Too Large</html>", "text/html")) as host:
        done = _run(cli, host, "MaxReceiveCount=1")

    assert done.code == 1, done.both
    out = " ".join(done.out.split())
    assert (
        "5 messages not delivered: the host refused every message of the batch, one by one too (HTTP 413)"
        in out
    )
    assert "answered 400" not in out
    assert "NOT OK: sent 0 of 5 records" in out
    no_traceback(done)


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
