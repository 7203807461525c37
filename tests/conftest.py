"""Shared fixtures: fake AWS credentials for moto, and a running Segment-compatible endpoint."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from segment_importer_local.segment_endpoint import SegmentEndpoint

WRITE_KEY = "test-write-key"
FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # botocore never asks the EC2 metadata service (a link-local address) for credentials.
    "AWS_EC2_METADATA_DISABLED": "true",
    # nor reads the developer's own ~/.aws files.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
# For the whole session and every process it starts (subprocess tests, xdist workers), not only
# inside tests: a fixture, a collection hook or a child process must not find real credentials.
os.environ.update(FAKE_AWS_ENVIRONMENT)
for _name in ("AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach AWS: moto answers, with placeholder credentials."""
    for name, value in FAKE_AWS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def endpoint() -> Iterator[SegmentEndpoint]:
    with SegmentEndpoint(WRITE_KEY) as running:
        yield running


# Figures of the fault-injection suite, printed at the end of the run (quoted in
# docs/delivery-and-ledger.md).
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


# Property tests draw the same examples on every run (CI and laptops alike): a red run is then
# a regression of the code, never a new draw. Exploring further: HYPOTHESIS_PROFILE=explore.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("deterministic", derandomize=True, database=None)
_hypothesis_settings.register_profile("explore", derandomize=False)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
