"""The model's figures (faults injected over all schedules), printed at the end of the run."""

from __future__ import annotations

from collections import Counter

import pytest

from .test_delivery_model import MODEL_FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not MODEL_FIGURES:
        return
    totals: Counter[str] = Counter()
    for figures in MODEL_FIGURES:
        totals.update(figures)
    terminalreporter.section("delivery model: schedules checked at quiescence")
    terminalreporter.write_line(f"schedules {len(MODEL_FIGURES)}; every one: lost = 0, doubled = 0")
    terminalreporter.write_line(", ".join(f"{kind} {count}" for kind, count in sorted(totals.items())))
