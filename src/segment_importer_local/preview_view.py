"""How `segment-importer preview` looks in a terminal: a progress bar while the files are
read, then tables of the preview document (the JSON has everything; the terminal the top)."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

TOP_IN_TERMINAL = 10


class PreviewProgress:
    """Bytes of the files read so far (on stderr; off when not a terminal)."""

    def __init__(self, total_bytes: int, *, enabled: bool) -> None:
        self._progress = Progress(
            TextColumn("[bold]preview"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
            transient=True,
        )
        self._task = self._progress.add_task("preview", total=total_bytes)

    def __enter__(self) -> PreviewProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()

    def advance(self, size: int) -> None:
        self._progress.advance(self._task, size)


def print_preview(document: dict[str, Any], *, html: Path | None = None, mapped: Path | None = None) -> None:
    console = Console()
    console.print(_files_table(document))
    console.print(
        f"records {document['records']:,}: valid {document['valid']:,}, "
        f"rejected {document['rejected']:,}; filtered {document['filtered']:,}; "
        f"[bold]would send {document['would_send']:,}[/] (nothing was sent)"
    )
    _print_counts(console, "Reject reasons", _reasons(document))
    _print_counts(console, "Filtered (valid, not sent), by rule", document["filtered_by"])
    _print_counts(console, "Call types", document["by_type"])
    events = document["by_event"]
    _print_counts(console, f"Top events ({len(events):,} names; all in --json)", events)
    _print_time(console, document)
    _print_users(console, document["distinct_users"])
    for kind in ("properties", "traits"):
        _print_coverage(console, kind, document["coverage"][kind])
    for message in document["samples"]:
        console.print_json(orjson.dumps(message).decode())
    if html:
        console.print(f"Page written to {html}")
    if mapped:
        console.print(f"Mapped messages written to {mapped}")


def _files_table(document: dict[str, Any]) -> Table:
    table = Table(title="Preview: nothing sent")
    table.add_column("file", overflow="fold")
    table.add_column("format")
    for column in ("records", "rejected", "filtered", "would send"):
        table.add_column(column, justify="right")
    table.add_column("job file", overflow="fold")  # the one that governed the file, as in `run`
    for entry in document["files"]:
        gzip = "+gzip" if entry["compression"] == "gzip" else ""
        name = entry["file"] if not entry["error"] else f"{entry['file']} [red]{entry['error']}"
        if not entry["read_to_its_end"]:
            name += " [red](not read to its end: see file_unreadable)"
        counts = (entry["records"], entry["rejected"], entry["filtered"], entry["would_send"])
        job_file = entry.get("job_file") or "(defaults)"
        table.add_row(name, f"{entry['format']}{gzip}", *(f"{count:,}" for count in counts), job_file)
    return table


def _reasons(document: dict[str, Any]) -> dict[str, int]:
    return {reason: entry["count"] for reason, entry in document["by_reason"].items()}


def _print_counts(console: Console, title: str, counts: dict[str, int]) -> None:
    if not counts:
        return
    table = Table(title=title, title_justify="left")
    table.add_column("name", overflow="fold")
    table.add_column("count", justify="right")
    ordered = sorted(counts.items(), key=lambda item: -item[1])
    for name, count in ordered[:TOP_IN_TERMINAL]:
        table.add_row(name, f"{count:,}")
    if len(ordered) > TOP_IN_TERMINAL:
        rest = sum(count for _, count in ordered[TOP_IN_TERMINAL:])
        table.add_row(f"({len(ordered) - TOP_IN_TERMINAL:,} more)", f"{rest:,}")
    console.print(table)


def _print_time(console: Console, document: dict[str, Any]) -> None:
    if document["first_timestamp"]:
        months = len(document["by_month"])
        console.print(
            f"event times {document['first_timestamp']} to {document['last_timestamp']} (UTC), "
            f"in {months:,} months"
        )


def _print_users(console: Console, distinct: dict[str, Any]) -> None:
    parts = []
    for name, found in distinct.items():
        about = "" if found["exact"] else f" (estimate, ±{found['relative_standard_error']:.1%})"
        parts.append(f"{name} {found['count']:,}{about}")
    console.print("distinct " + ", ".join(parts))


def _print_coverage(console: Console, kind: str, coverage: dict[str, Any]) -> None:
    fields = coverage["fields"]
    if not fields:
        return
    table = Table(title=f"{kind} (of {coverage['messages']:,} messages)", title_justify="left")
    for column in ("name", "share", "types"):
        table.add_column(column, justify="right" if column == "share" else "left")
    for name, entry in list(fields.items())[:TOP_IN_TERMINAL]:
        table.add_row(name, f"{entry['share']:.1%}", ", ".join(entry["types"]))
    console.print(table)
