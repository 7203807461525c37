"""Rendering of import statuses: a table with progress bars, for once or for --watch."""

from __future__ import annotations

from typing import Any

from rich.progress_bar import ProgressBar
from rich.table import Table

_STATUS_STYLE = {
    "COMPLETE": "green",
    "COMPLETE_WITH_ERRORS": "yellow",
    "FAILED": "red",
    "SENDING": "cyan",
    "SPLITTING": "cyan",
}


def status_table(statuses: list[dict[str, Any]]) -> Table:
    table = Table(title="Imports")
    table.add_column("key", overflow="fold", ratio=2)
    table.add_column("status", overflow="fold", ratio=1)
    table.add_column("progress", min_width=10)
    for name in ("delivered / queued", "rejected", "failed", "rate/s", "ETA"):
        table.add_column(name, justify="right")
    for status in statuses:
        table.add_row(
            str(status["key"]),
            f"[{_STATUS_STYLE.get(status['status'], 'white')}]{status['status']}{_spans(status)}",
            _bar(status["progress"], status.get("split_progress")),
            f"{status['messages_delivered']:,} / {status['messages_queued']:,}",
            f"{status['rejected']:,}",
            f"{status['messages_failed'] + status['messages_refused']:,}",
            f"{status['events_per_second']:,.0f}",
            _eta(status["eta_seconds"]),
        )
    return table


def summary_lines(statuses: list[dict[str, Any]]) -> list[str]:
    """One line per import with errors (what went wrong, by reason code) or filtered messages."""
    lines = []
    for status in statuses:
        if status["rejected_by_reason"]:
            reasons = ", ".join(
                f"{code} {count}" for code, count in sorted(status["rejected_by_reason"].items())
            )
            lines.append(f"{status['key']}: rejected {reasons}")
        if status.get("filtered"):
            rules = ", ".join(f"{rule} {count}" for rule, count in sorted(status["filtered_by"].items()))
            lines.append(
                f"{status['key']}: filtered {status['filtered']:,} (not sent, not rejected): {rules}"
            )
        if status["first_error"]:
            lines.append(
                f"{status['key']}: first error: {status['first_error']}; last: {status['last_error']}"
            )
    return lines


def _spans(status: dict[str, Any]) -> str:
    spans = status.get("spans")
    if not spans or status["status"] != "SPLITTING":
        return ""
    if spans["surveyed"] < spans["count"]:
        return f" (surveying {spans['surveyed']}/{spans['count']} ranges)"
    return f" ({spans['done']}/{spans['count']} ranges)"


def _bar(progress: float | None, split_progress: float | None) -> ProgressBar | str:
    if progress is None:
        return "splitting…" if split_progress is None else f"reading {split_progress:.0%}"
    return ProgressBar(total=1.0, completed=progress, width=10)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
