"""What `segment-importer status` shows: ledger items -> progress, rates and ETAs.

Sources: a deployed stack's imports table (by stack name or table name), or the local run's
ledger snapshot (see local/snapshots.py). Rendering lives in status_view.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from segment_importer.split.archives import MEMBER_SEPARATOR
from segment_importer.track.ledger import (
    COMPLETE,
    COMPLETE_WITH_ERRORS,
    FAILED,
    FINAL_STATUSES,
    SENDING,
    SPLITTING,
    Ledger,
)
from segment_importer_local.snapshots import latest_run_dir, read_snapshot

ImportsReader = Callable[[], list[dict[str, Any]]]
# An archive's status is its members' least advanced one (any still splitting: splitting...).
_STATUS_ORDER = (SPLITTING, SENDING, FAILED, COMPLETE_WITH_ERRORS, COMPLETE)
_SUMMED = (
    "records_read",
    "messages_queued",
    "batches_queued",
    "rejected",
    "batches_delivered",
    "messages_delivered",
    "messages_refused",
    "batches_failed",
    "messages_failed",
)


def with_archive_totals(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items, each archive's (a ZIP: its members are imports of their own, keyed
    `<archive>!<member>`) replaced by its members' totals and least advanced status."""
    return [_archive_totals(item, items) if item.get("members") else item for item in items]


def _archive_totals(archive: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    prefix = f"{archive['key']}{MEMBER_SEPARATOR}"
    members = [item for item in items if str(item.get("key", "")).startswith(prefix)]
    totals = {**archive, **{name: sum(int(m.get(name, 0)) for m in members) for name in _SUMMED}}
    reasons: dict[str, int] = {}
    for member in members:
        for reason, count in (member.get("rejected_by_reason") or {}).items():
            reasons[reason] = reasons.get(reason, 0) + int(count)
    totals["rejected_by_reason"] = reasons
    statuses = [archive.get("status", ""), *(m.get("status", "") for m in members)]
    totals["status"] = min(statuses, key=lambda s: _STATUS_ORDER.index(s) if s in _STATUS_ORDER else 0)
    totals["members_listed"] = len(members)  # fewer than `members` while the archive is split
    if archive.get("status") != SPLITTING and len(members) < int(archive.get("members", 0)):
        totals["status"] = min(totals["status"], SENDING, key=_STATUS_ORDER.index)
    # The drop ends with its last member (the archive's own item ends when it is split).
    ends = [member.get("finished_at") for member in members]
    final = totals["status"] in FINAL_STATUSES and all(ends)
    totals["finished_at"] = max([archive.get("finished_at"), *ends], key=str) if final else None
    return totals


def describe(item: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """One import's status for people and scripts: counts, progress, rate and ETA."""
    now = now or datetime.now(UTC)
    queued = int(item.get("messages_queued", 0))
    delivered = int(item.get("messages_delivered", 0))
    failed = int(item.get("messages_failed", 0))
    refused = int(item.get("messages_refused", 0))
    elapsed = _seconds_between(item.get("started_at"), item.get("finished_at"), now)
    rate = delivered / elapsed if elapsed else 0.0
    remaining = max(queued - delivered - failed - refused, 0)
    status = item.get("status", "")
    return {
        "key": item.get("key"),
        "status": status,
        "records_read": int(item.get("records_read", 0)),
        "messages_queued": queued,
        "batches_queued": int(item.get("batches_queued", 0)),
        "rejected": int(item.get("rejected", 0)),
        "rejected_by_reason": item.get("rejected_by_reason", {}),
        "filtered": int(item.get("filtered", 0)),  # valid, left out by the job's shaping rules
        "filtered_by": item.get("filtered_by", {}),
        "messages_delivered": delivered,
        "batches_delivered": int(item.get("batches_delivered", 0)),
        "messages_refused": refused,
        "messages_failed": failed,
        "batches_failed": int(item.get("batches_failed", 0)),
        "progress": _progress(item),
        "split_progress": _split_progress(item),
        "spans": _spans(item),
        "events_per_second": round(rate, 1),
        "eta_seconds": None if status in FINAL_STATUSES or not rate else round(remaining / rate, 1),
        "elapsed_seconds": round(elapsed, 1),
        "first_error": item.get("first_error"),
        "last_error": item.get("last_error"),
        "started_at": item.get("started_at"),
        "finished_at": item.get("finished_at"),
    }


def _spans(item: dict[str, Any]) -> dict[str, Any] | None:
    """A file split in byte ranges: how many are surveyed, then split (see parallel_split);
    None for a file split in one chain of parts (including one whose survey chose that)."""
    count = int(item.get("span_count", 0))
    surveyed, done = int(item.get("spans_surveyed", 0)), int(item.get("spans_done", 0))
    if not count or (surveyed >= count and item.get("split_mode") != "spans"):
        return None
    return {"count": count, "surveyed": surveyed, "done": done}


def ledger_reader(dynamodb: Any, table: str, key_prefix: str) -> ImportsReader:
    ledger = Ledger(dynamodb, table, batches_table="")
    return lambda: with_archive_totals(ledger.list_imports(key_prefix))


def snapshot_reader(run_dir: Path, key_prefix: str) -> ImportsReader:
    return lambda: with_archive_totals(
        [item for item in read_snapshot(run_dir) if item["key"].startswith(key_prefix)]
    )


def local_run_dir(out_dir: Path, run_dir: Path | None) -> Path:
    """The run to read: the one given, else the latest under `out_dir`."""
    chosen = run_dir or latest_run_dir(out_dir)
    if chosen is None:
        raise FileNotFoundError(f"no local run found under {out_dir}; run `segment-importer run` first")
    return chosen


def table_of_stack(cloudformation: Any, stack_name: str) -> str:
    resource = cloudformation.describe_stack_resource(StackName=stack_name, LogicalResourceId="ImportsTable")
    return resource["StackResourceDetail"]["PhysicalResourceId"]


def all_final(statuses: list[dict[str, Any]]) -> bool:
    return bool(statuses) and all(status["status"] in FINAL_STATUSES for status in statuses)


def _progress(item: dict[str, Any]) -> float | None:
    """Share of queued batches resolved; None while the splitter is still counting them."""
    if item.get("status") == SPLITTING:
        return None
    batches = int(item.get("batches_queued", 0))
    if not batches:
        return 1.0 if item.get("status") in FINAL_STATUSES else None
    return round((int(item.get("batches_delivered", 0)) + int(item.get("batches_failed", 0))) / batches, 4)


def _split_progress(item: dict[str, Any]) -> float | None:
    """Share of the file's stored bytes the splitter has read; None before it first reports
    (every 100,000 records) and for imports recorded before it counted bytes."""
    size, read = int(item.get("size_bytes", 0)), int(item.get("bytes_read", 0))
    if not size or not read:
        return None
    return round(min(read / size, 1.0), 4)


def _seconds_between(start: str | None, end: str | None, now: datetime) -> float:
    if not start:
        return 0.0
    finish = _parse(end) if end else now
    return max((finish - _parse(start)).total_seconds(), 0.0)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
