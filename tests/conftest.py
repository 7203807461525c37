"""Shared fixtures: fake AWS credentials for moto, and a running Segment-compatible endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from segment_importer_local.segment_endpoint import SegmentEndpoint

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


# Figures of the fault-injection suite, printed at the end of the run (and quoted in README).
FAULT_FIGURES: list[dict] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FAULT_FIGURES:
        return
    terminalreporter.section("fault injection: nothing lost, nothing doubled")
    for figures in FAULT_FIGURES:
        faults = ", ".join(f"{kind} {count}" for kind, count in sorted(figures["faults"].items()))
        if figures.get("case"):
            terminalreporter.write_line(f"case: {figures['case']}")
        terminalreporter.write_line(
            f"records {figures['records']} (valid {figures['valid']}, rejected {figures['rejected']}); "
            f"splitter parts {figures['splitter_parts']} (byte ranges {figures['byte_ranges']}); "
            f"Segment requests {figures['segment_requests']}; "
            f"duplicates absorbed by messageId {figures['duplicates_absorbed_by_message_id']}; "
            f"SQS redeliveries {figures['sqs_redeliveries']}"
        )
        terminalreporter.write_line(f"faults injected: {faults}")
        terminalreporter.write_line(f"lost = {figures['lost']}, doubled = {figures['doubled']}")
