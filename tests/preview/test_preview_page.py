"""The preview's HTML page in a real headless browser (Debian's chromium): it renders, each
chart has one bar per entry, data is escaped, and nothing is fetched from anywhere."""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from segment_importer.track.report_page import TOP_EVENTS
from segment_importer_local import cli

from .conftest import EXAMPLES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium) to render the page"
)
# The browser's own background requests (updates, accounts) resolve nowhere: tests stay on loopback.
LOOPBACK_ONLY = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
EXTERNAL_IMAGE = "http://203.0.113.9/pixel.png"  # TEST-NET-3: never routed
HOSTILE = '<script>alert("x")</script><img src="https://example.com/pixel.gif">'


def chromium(page: Path, *arguments: str, url: str | None = None) -> str:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                f"--user-data-dir={profile}", LOOPBACK_ONLY, *arguments, url or page.as_uri(),
            ],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
    return done.stdout


class Rendered(HTMLParser):
    """What the browser built: bars per chart, element counts, and every fetching attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: Counter[str] = Counter()
        self.tags: Counter[str] = Counter()
        self.fetching: list[str] = []
        self._chart = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags[tag] += 1
        if tag == "svg":
            self._chart = found.get("data-chart") or ""
        if tag == "rect" and "bar" in (found.get("class") or "").split():
            self.bars[self._chart] += 1
        self.fetching += [
            f"{tag} {name}={value}"
            for name, value in attrs
            if name in ("src", "href", "srcset") and not (value or "").startswith("data:")
        ]


def hostile_file(path: Path) -> Path:
    lines = [
        {
            "type": "track",
            "event": f"Event {n % 20:02d}",
            "userId": f"u{n}",
            "timestamp": f"20{20 + n % 3}-0{1 + n % 9}-01",
        }
        for n in range(300)
    ]
    lines.append(
        # A plausible time: the hostile name must reach the page (a time of 0 is rejected).
        {
            "type": "track",
            "event": HOSTILE,
            "userId": "x",
            "properties": {HOSTILE: HOSTILE},
            "timestamp": "2021-01-01",
        }
    )
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def preview_with_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *files: Path
) -> tuple[Path, dict[str, Any]]:
    page = tmp_path / "preview.html"
    arguments = ["preview", *map(str, files), "--html", str(page), "--json", "--no-progress"]
    assert cli.main(arguments) == 0
    return page, json.loads(capsys.readouterr().out)


def test_the_page_renders_with_one_bar_per_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page, document = preview_with_page(tmp_path, capsys, EXAMPLES, hostile_file(tmp_path / "hostile.ndjson"))
    rendered = Rendered()
    rendered.feed(chromium(page, "--dump-dom"))
    assert rendered.bars["by_month"] == len(document["by_month"]) > 12
    assert rendered.bars["by_event"] == min(TOP_EVENTS, len(document["by_event"])) == TOP_EVENTS
    assert rendered.bars["by_type"] == len(document["by_type"]) == 3
    assert rendered.bars["by_reason"] == len(document["by_reason"]) == 4
    assert rendered.bars["filtered_by"] == 0
    assert rendered.tags["pre"] == len(document["samples"]) == 5
    assert rendered.tags["script"] == 0, "an event name became markup"
    assert rendered.tags["img"] == 0
    assert rendered.fetching == []


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def fetched_by(page: Path) -> set[str]:
    """The URLs a page asked for, from Chromium's own network log: the page is served on
    loopback, and every request the log shows the page's origin starting is the page's."""
    handler = functools.partial(_QuietHandler, directory=str(page.parent))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        net_log = page.with_suffix(".net-log.json")
        try:
            chromium(page, f"--log-net-log={net_log}", "--net-log-capture-mode=Everything", "--dump-dom",
                     url=f"{origin}/{page.name}")  # fmt: skip
        finally:
            server.shutdown()
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    started = [event.get("params", {}) for event in log["events"] if event["type"] == start]
    started = [params for params in started if "url" in params]  # the job's end has no URL
    assert any(params["url"] == f"{origin}/{page.name}" for params in started), "the page load is not logged"
    return {params["url"] for params in started if params.get("initiator") == origin}


def test_nothing_is_fetched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page, _ = preview_with_page(tmp_path, capsys, hostile_file(tmp_path / "hostile.ndjson"))
    assert fetched_by(page) == set()
    # The check sees fetches: an external image in a copy of the page without its policy.
    html = page.read_text().replace("<body>", f'<body><img src="{EXTERNAL_IMAGE}">', 1)
    unguarded = tmp_path / "unguarded.html"
    unguarded.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html))
    assert EXTERNAL_IMAGE in fetched_by(unguarded)
    # And the page's Content-Security-Policy stops such an image, should one ever get in.
    guarded = tmp_path / "guarded.html"
    guarded.write_text(html)
    assert fetched_by(guarded) == set()


def test_the_screenshot_shows_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page, _ = preview_with_page(tmp_path, capsys, EXAMPLES)
    screenshot = tmp_path / "preview.png"
    chromium(page, f"--screenshot={screenshot}", "--window-size=1100,2600")
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 50_000, "a blank page compresses to a few kB; bars, tables and text do not"
