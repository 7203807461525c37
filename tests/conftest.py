"""Shared fixtures: fake AWS credentials for moto, and a running Segment-compatible endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from segment_importer.local.segment_endpoint import SegmentEndpoint

WRITE_KEY = "test-write-key"


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach AWS: moto answers, with placeholder credentials."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def endpoint() -> Iterator[SegmentEndpoint]:
    with SegmentEndpoint(WRITE_KEY) as running:
        yield running
