"""What `run` prints when it is done (stdout): the imports' table, then what went wrong where.

The verdict line and exit code come from verdict.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table

from segment_importer.track.ledger import FAILED
from segment_importer_local.run_state import FUNCTIONS_LOG
from segment_importer_local.status_view import fit_key

if TYPE_CHECKING:
    from segment_importer_local.runner import RunResult


def print_result(result: RunResult, console: Console, *, dry_run: bool) -> None:
    if not dry_run and all(outcome.ledger for outcome in result.files):
        _print_ledger_summary(result, console)
    else:
        _print_split_table(result, console, dry_run=dry_run)
    _print_details(result, console, dry_run=dry_run)


def _print_ledger_summary(result: RunResult, console: Console) -> None:
    """The same table `segment-importer status` shows, from the run's final ledger."""
    from segment_importer_local.status import describe
    from segment_importer_local.status_view import status_table

    statuses = [
        describe(item)
        for outcome in result.files
        if outcome.ledger
        for item in (outcome.ledger, *outcome.members)  # an archive, then each member's own line
    ]
    table = status_table(statuses, width=console.width)
    table.title = f"Imports to {result.destination}"
    console.print(table)


def _print_split_table(result: RunResult, console: Console, *, dry_run: bool) -> None:
    """Per file: what the splitter read, rejected and queued (the ledger is not whole here)."""
    title = "Dry run: nothing sent" if dry_run else f"Import to {result.destination}"
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, padding=0)
    key_width = max(console.width - 50, 16)
    table.add_column("file", no_wrap=True)
    table.add_column("format", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for column in ("read", "rej", "would send" if dry_run else "sent/queued", "DLQ"):
        table.add_column(column, justify="right", no_wrap=True)
    for outcome in result.files:
        report = outcome.report
        status = (outcome.ledger or {}).get("status", report["status"])
        table.add_row(
            fit_key(outcome.key, key_width),
            f"{report.get('format', '')}{'+gzip' if report.get('compression') == 'gzip' else ''}",
            status if outcome.complete or dry_run else f"[red]{status} (incomplete)",
            f"{report['records_read']:,}",
            f"{report['rejected']:,}",
            f"{report['messages_queued']:,}"
            if dry_run
            else f"{outcome.messages_delivered:,}/{report['messages_queued']:,}",
            "-" if dry_run else f"{outcome.batches_dead_lettered:,}",
        )
    console.print(table)


def _rejects_files(result: RunResult, report: dict[str, Any]) -> str:
    """Where an import's rejects are: one file per part, listed in file order (three at most)."""
    files = report.get("rejects_keys") or ([report["rejects_key"]] if report.get("rejects_key") else [])
    where = ", ".join(str(Path(result.bucket_copy or "") / key) for key in files[:3]) or "no file"
    return where + (f" and {len(files) - 3} more" if len(files) > 3 else "")


def _print_member(member: dict[str, Any], result: RunResult, console: Console) -> None:
    if member.get("status") == FAILED:
        console.print(f"[red]{member['key']}: {member.get('last_error')}")
    if int(member.get("rejected", 0)) and member.get("rejects_key"):
        reasons = ", ".join(f"{r} {c}" for r, c in sorted((member.get("rejected_by_reason") or {}).items()))
        console.print(f"{member['key']}: rejected {reasons} (see {_rejects_files(result, member)})")


def _print_details(result: RunResult, console: Console, *, dry_run: bool) -> None:
    for outcome in result.files:
        report = outcome.report
        for member in outcome.members:  # an archive's members: each an import of its own
            _print_member(member, result, console)
        if report["rejected"] and report.get("rejects_key"):
            reasons = ", ".join(
                f"{reason} {count}" for reason, count in sorted(report["rejected_by_reason"].items())
            )
            console.print(f"{outcome.key}: rejected {reasons} (see {_rejects_files(result, report)})")
        for warning in report.get("warnings", []):  # tolerated, and how: worth a look
            console.print(f"{outcome.key}: warning: {warning}", style="yellow", markup=False)
    if result.endpoint_stats is not None and not dry_run:
        stats = result.endpoint_stats
        console.print(
            f"Embedded Segment endpoint accepted {stats['messages_accepted']} messages in "
            f"{stats['batches_accepted']} batches ({stats['duplicates']} duplicates, "
            f"dropped {sum(stats['dropped'].values())}); received events written to {result.received_path}"
        )
    console.print(f"Reports and rejects copied to {result.bucket_copy}")
    if result.run_dir:
        console.print(
            f"The functions' log lines (JSON) are in {Path(result.run_dir) / FUNCTIONS_LOG} "
            "(--verbose also shows them here)",
            markup=False,
        )
