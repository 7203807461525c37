"""The write-key pre-flight against the embedded endpoint's settings route, over real HTTP."""

from __future__ import annotations

import socket

from segment_importer.deliver.preflight import WriteKeyPreflight
from segment_importer_local.segment_endpoint import SegmentEndpoint

from ..conftest import WRITE_KEY


def test_a_known_key_passes(endpoint: SegmentEndpoint) -> None:
    assert WriteKeyPreflight(endpoint.url, lambda: WRITE_KEY).check().verdict == "ok"


def test_an_unknown_key_is_caught_and_the_detail_does_not_hold_it(endpoint: SegmentEndpoint) -> None:
    result = WriteKeyPreflight(endpoint.url, lambda: "typo-in-the-key").check()
    assert result.verdict == "unknown_key"
    assert "typo-in-the-key" not in result.detail


def test_an_unreachable_host_is_unverified_not_fatal() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = WriteKeyPreflight(f"http://127.0.0.1:{port}", lambda: WRITE_KEY, timeout=1).check()
    assert result.verdict == "unverified"


def test_each_key_is_asked_once(endpoint: SegmentEndpoint) -> None:
    preflight = WriteKeyPreflight(endpoint.url, lambda: WRITE_KEY)
    for _ in range(3):
        preflight.check()
    assert endpoint.stats()["settings_requests"] == 1
