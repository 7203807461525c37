"""Metrics the functions emit (CloudWatch EMF through Powertools Metrics in Lambda).

The domain code takes any object with Powertools' `add_metric(name, unit, value)`; tests
and the local runner may pass `NullMetrics`.
"""

from __future__ import annotations

from typing import Protocol

NAMESPACE = "SegmentImporter"


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: str, value: float) -> None: ...


class NullMetrics:
    def add_metric(self, name: str, unit: str, value: float) -> None:
        pass


class RecordingMetrics:
    """Keeps what was added, for tests."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.values[name] = self.values.get(name, 0) + value
