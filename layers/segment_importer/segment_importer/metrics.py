"""Metrics the functions emit (CloudWatch EMF through Powertools Metrics in Lambda).

The domain code takes any object with Powertools' `add_metric(name, unit, value)`; code
without metrics passes `NullMetrics`.
"""

from __future__ import annotations

from typing import Protocol

NAMESPACE = "SegmentImporter"


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: str, value: float) -> None: ...


class NullMetrics:
    def add_metric(self, name: str, unit: str, value: float) -> None:
        pass
