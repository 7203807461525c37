"""Issue 12, failing fast with the reason; issue 11.8, the write-key pre-flight without Segment's host."""

from __future__ import annotations

from pathlib import Path

import pytest

from segment_importer_local.destination import preflight_host
from segment_importer_local.segment_endpoint import FaultPlan, SegmentEndpoint
from tests.cli.conftest import no_traceback, signups
from tests.conftest import WRITE_KEY

CDN = "https://cdn.segment.com"


def test_a_host_nobody_answers_on_fails_at_once_naming_host_and_error(cli, tmp_path: Path) -> None:
    signups(tmp_path / "signups.csv")
    done = cli("run", "signups.csv", "--write-key", "K", "--host", "http://127.0.0.1:9", "--no-progress")

    assert done.code == 1, done.both
    assert "cannot reach http://127.0.0.1:9: connection refused; nothing was queued" in done.err
    assert not (tmp_path / "out").exists()  # checked before the local stack (and its run folder) existed
    no_traceback(done)


def test_a_host_that_does_not_speak_tls_fails_the_tls_check(cli, tmp_path: Path) -> None:
    signups(tmp_path / "signups.csv")
    with SegmentEndpoint(WRITE_KEY) as endpoint:  # plain HTTP
        https = endpoint.url.replace("http://", "https://")
        done = cli("run", "signups.csv", "--write-key", WRITE_KEY, "--host", https, "--no-progress")
        stats = endpoint.stats()

    assert done.code == 1, done.both
    assert f"cannot reach {https}: TLS handshake failed" in done.err
    assert stats["batches_accepted"] == 0
    no_traceback(done)


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["--write-key", "K", "--host", "not a url"], "--host 'not a url' is not a URL"),
        (["--write-key", "K", "--host", "https://api.segment.io/v1/batch"], "give the host only"),
        (["--host", "https://api.segment.io"], "--host needs --write-key"),
        (["--preflight-host", CDN], "--preflight-host needs --write-key"),
        (["--write-key", ""], "--write-key is empty"),
        (["--write-key", "   "], "--write-key is empty"),
    ],
)
def test_impossible_destinations_are_refused_with_exit_2(cli, tmp_path: Path, arguments, says) -> None:
    signups(tmp_path / "signups.csv")
    done = cli("run", "signups.csv", *arguments, "--no-progress")

    assert done.code == 2, done.both
    assert says in done.err
    assert not (tmp_path / "out").exists()
    no_traceback(done)


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("BatchMaxMessages=abc", "BatchMaxMessages must be a number, not 'abc'"),
        ("BatchMaxMessages=5000", "BatchMaxMessages must be between 1 and 2500"),
        ("BatchMaxMessages=0", "BatchMaxMessages must be between 1 and 2500"),
        ("SegmentGzip=yes", "SegmentGzip must be one of true, false"),
        ("SegmentHost=http://plain.example", "SegmentHost must match"),
        ("NoSuchParameter=1", "the template has no parameter NoSuchParameter"),
        ("BatchMaxMessages", "expected NAME=VALUE"),
    ],
)
def test_parameter_overrides_obey_the_template_constraints(cli, tmp_path: Path, override, says) -> None:
    signups(tmp_path / "signups.csv")
    done = cli("run", "signups.csv", "--parameter", override, "--no-progress")

    assert done.code == 2, done.both
    assert says in done.err
    no_traceback(done)


def test_an_unknown_write_key_fails_before_anything_is_queued(cli, tmp_path: Path) -> None:
    signups(tmp_path / "signups.csv")
    with SegmentEndpoint(WRITE_KEY) as endpoint:
        url = endpoint.url
        done = cli(
            "run", "signups.csv", "--write-key", "wrong-key", "--host", url, "--preflight-host", url,
            "--no-progress",
        )  # fmt: skip
        stats = endpoint.stats()

    assert done.code == 1, done.both
    assert "Segment does not know this write key" in done.err
    assert f"asked {url}" in done.err
    assert stats["settings_requests"] == 1
    assert stats["batches_accepted"] == 0
    assert stats["messages_accepted"] == 0
    assert not (tmp_path / "out").exists()


def test_a_host_that_is_not_segment_says_the_key_was_not_checked(cli, tmp_path: Path) -> None:
    signups(tmp_path / "signups.csv", 4)
    with SegmentEndpoint(WRITE_KEY) as endpoint:
        url = endpoint.url
        done = cli("run", "signups.csv", "--write-key", WRITE_KEY, "--host", url, "--no-progress")
        stats = endpoint.stats()

    assert done.code == 0, done.both
    assert f"the write key could not be checked: {url} is not Segment's host" in done.err
    assert "--preflight-host" in done.err
    assert stats["settings_requests"] == 0
    assert stats["messages_accepted"] == 4


@pytest.mark.parametrize("host", ["https://api.segment.io", "https://events.eu1.segmentapis.com"])
def test_segment_hosts_us_and_eu_keep_the_preflight(host: str) -> None:
    """Before: any --host switched the pre-flight off, the EU host too (issue 11.8)."""
    assert preflight_host(host, None, CDN) == CDN
    assert preflight_host("https://proxy.example", None, CDN) == ""
    assert (
        preflight_host("https://proxy.example", "https://settings.example", CDN) == "https://settings.example"
    )


def test_a_refused_delivery_says_why_and_keeps_library_noise_out(cli, tmp_path: Path) -> None:
    """A key the host refuses (401), sent without a pre-flight: the summary says HTTP 401 and
    the host; `ERROR segment: ...` and Powertools' UserWarning stay in functions.log."""
    signups(tmp_path / "signups.csv", 3)
    with SegmentEndpoint(WRITE_KEY) as endpoint:
        url = endpoint.url
        done = cli("run", "signups.csv", "--write-key", "not-this-one", "--host", url, "--no-progress")

    assert done.code == 1, done.both
    assert "3 messages not delivered: Segment answered HTTP 401" in done.out
    assert f"(host {url})" in done.out
    assert "NOT OK: sent 0 of 3 records" in done.out
    assert "ERROR segment" not in done.both
    assert "UserWarning" not in done.both
    no_traceback(done)


def test_retries_show_on_the_progress_line(cli, tmp_path: Path) -> None:
    signups(tmp_path / "signups.csv", 5)
    with SegmentEndpoint(WRITE_KEY, faults=FaultPlan.script([503, 503])) as endpoint:
        url = endpoint.url
        done = cli("run", "signups.csv", "--write-key", WRITE_KEY, "--host", url)

    assert done.code == 0, done.both
    # rich draws the last state of the bars when stderr is not a terminal
    assert f"2 retries (last: {url}: HTTP 503)" in done.err
    assert "OK: sent 5 of 5 records" in done.out
    assert "retries" not in done.out
