"""Rendering of import statuses: a table with progress bars, for once or for --watch."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table

_STATUS_STYLE = {
    "COMPLETE": "green",
    "COMPLETE_WITH_ERRORS": "yellow",
    "FAILED": "red",
    "SENDING": "cyan",
    "SPLITTING": "cyan",
    "STOPPED": "yellow",  # a stopped local run left it unfinished (cli_inspect)
}


# The columns besides the key take about this much at their widest (80-column terminals
# leave the key 25 characters: a long key is cut at its start, keeping the file name).
_OTHER_COLUMNS_WIDTH = 55
_MIN_KEY_WIDTH = 16


def status_table(statuses: list[dict[str, Any]], width: int = 80) -> Table:
    """One line per import at any width from 80 columns: the key, cut at its start to fit."""
    key_width = max(width - _OTHER_COLUMNS_WIDTH, _MIN_KEY_WIDTH)
    # No borders or padding: one space between columns is the whole frame.
    table = Table(title="Imports", box=box.SIMPLE_HEAD, show_edge=False, padding=0)
    table.add_column("key", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("progress", no_wrap=True)
    for name in ("sent/queued", "rej", "fail", "msg/s", "ETA"):
        table.add_column(name, justify="right", no_wrap=True)
    for status in statuses:
        table.add_row(
            fit_key(str(status["key"]), key_width),
            f"[{_STATUS_STYLE.get(status['status'], 'white')}]{_short_status(status)}",
            _bar(status["progress"], status.get("split_progress")),
            f"{_count(status['messages_delivered'])}/{_count(status['messages_queued'])}",
            _count(status["rejected"]),
            _count(status["messages_failed"] + status["messages_refused"]),
            _count(status["events_per_second"]),
            _eta(status["eta_seconds"]),
        )
    return table


def fit_key(key: str, width: int) -> str:
    """The key (what `rejects` takes), cut at its start to `width`, keeping the file name."""
    return key if len(key) <= width else "…" + key[-(width - 1) :]


def _short_status(status: dict[str, Any]) -> str:
    """COMPLETE_WITH_ERRORS is the longest status: `DONE+ERR` says the same in a column."""
    text = {"COMPLETE_WITH_ERRORS": "DONE+ERR", "COMPLETE": "DONE"}.get(status["status"], status["status"])
    return f"{text}{_spans(status)}"


def _count(value: float) -> str:
    """3 to 5 characters: 950, 12.3k, 4.56M."""
    for limit, unit, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if value >= limit:
            return f"{value / unit:.3g}{suffix}"
    return f"{value:,.0f}"


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
        return f" survey {spans['surveyed']}/{spans['count']}"
    return f" {spans['done']}/{spans['count']}"


def _bar(progress: float | None, split_progress: float | None) -> str:
    if progress is None:
        return "reading" if split_progress is None else f"read {split_progress:.0%}"
    return f"{progress:.0%}"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
