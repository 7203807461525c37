"""An import's end as an event others can act on: one EventBridge event, and its duration as a metric.

The event is announced when the import's final report is written: COMPLETE, COMPLETE_WITH_ERRORS or
FAILED. It names the file, the status, the counts and where the report is, never record content. An
event that cannot be put is logged and counted; it never fails the import it describes, which is done.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from segment_importer.metrics import MetricsSink, NullMetrics

logger = logging.getLogger(__name__)

DETAIL_TYPE = "Import Finished"
# The counts an event carries: what a subscriber needs to decide (page someone, start the next file).
EVENT_COUNTS = (
    "records_read", "messages_queued", "rejected", "messages_delivered", "messages_refused",
    "messages_failed", "batches_failed",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ImportEventsSettings:
    bus: str = ""  # empty: no events (a local run, a test)
    source: str = "segment-importer"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ImportEventsSettings:
        return cls(bus=env.get("IMPORT_EVENTS_BUS", ""), source=env.get("IMPORT_EVENTS_SOURCE", cls.source))


def import_finished_detail(report: Mapping[str, Any], report_key: str) -> dict[str, Any]:
    """The event's detail: the file, its outcome, its counts, and the report to read for more."""
    detail: dict[str, Any] = {
        "bucket": report.get("bucket"),
        "key": report.get("key"),
        "etag": report.get("etag"),
        "status": report.get("status"),
        "report": f"s3://{report.get('bucket')}/{report_key}",
        "started_at": report.get("started_at"),
        "finished_at": report.get("finished_at"),
        "duration_seconds": import_duration_seconds(report),
        "error": report.get("last_error") or report.get("error"),
    }
    detail.update({name: report.get(name) or 0 for name in EVENT_COUNTS})
    return detail


def import_duration_seconds(report: Mapping[str, Any]) -> float | None:
    started, finished = report.get("started_at"), report.get("finished_at")
    if not started or not finished:
        return None
    try:
        elapsed = datetime.fromisoformat(str(finished)) - datetime.fromisoformat(str(started))
    except ValueError:
        return None
    return round(elapsed.total_seconds(), 3)


class ImportEvents:
    """Announces import ends on an EventBridge bus through the `events` client it is given."""

    def __init__(
        self, client: Any, settings: ImportEventsSettings, metrics: MetricsSink | None = None
    ) -> None:
        self._client = client
        self._settings = settings
        self._metrics = metrics or NullMetrics()

    def import_finished(self, report: Mapping[str, Any], report_key: str) -> bool:
        """Put one event for a finished import; True when EventBridge took it."""
        detail = import_finished_detail(report, report_key)
        if detail["duration_seconds"] is not None:
            self._metrics.add_metric("ImportDurationSeconds", "Seconds", detail["duration_seconds"])
        if not self._settings.bus or self._client is None:
            return False
        entry = {
            "Source": self._settings.source,
            "DetailType": DETAIL_TYPE,
            "Detail": orjson.dumps(detail, default=str).decode(),
            "EventBusName": self._settings.bus,
            "Resources": [],
        }
        try:
            answer = self._client.put_events(Entries=[entry])
        except Exception as error:  # the import is finished either way: say so, count it, go on
            logger.warning(
                "import event not put", extra={"key": detail["key"], "error": type(error).__name__}
            )
            self._metrics.add_metric("ImportEventsFailed", "Count", 1)
            return False
        if answer.get("FailedEntryCount"):
            code = (answer.get("Entries") or [{}])[0].get("ErrorCode")
            logger.warning("import event refused", extra={"key": detail["key"], "error": code})
            self._metrics.add_metric("ImportEventsFailed", "Count", 1)
            return False
        return True
