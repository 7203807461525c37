"""What `segment-importer status` shows: ledger items -> progress, rates and ETAs.

Sources: a deployed stack's imports table (by stack name or table name), or the local run's
ledger snapshot (see local/snapshots.py). Rendering lives in status_view.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from segment_importer.track.ledger import FINAL_STATUSES, SPLITTING, Ledger
from segment_importer_local.snapshots import latest_run_dir, read_snapshot

ImportsReader = Callable[[], list[dict[str, Any]]]


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
    return lambda: ledger.list_imports(key_prefix)


def snapshot_reader(run_dir: Path, key_prefix: str) -> ImportsReader:
    return lambda: [item for item in read_snapshot(run_dir) if item["key"].startswith(key_prefix)]


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
