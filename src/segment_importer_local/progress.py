"""Progress of a local run: each file while it is split, then messages delivered, with rate and ETA.

The splitter runs as Lambda would run it, in one synchronous call. Its bar follows the
splitter's own "split progress" log lines (every 100,000 records: the bytes of the file
read so far), as CloudWatch would show them; until the first one it pulses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from segment_importer.split.splitter import PROGRESS_MESSAGE


class PipelineProgress:
    """Two bars: the splitter's read position in the current file, and messages delivered."""

    def __init__(self, *, enabled: bool = True, console: Console | None = None) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            disable=not enabled,
        )
        self._split_task: TaskID | None = None
        self._split_size = 0
        self._send_task = self._progress.add_task("send (messages)", total=0, start=False, rate="")

    def __enter__(self) -> PipelineProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()

    def start_file(self, name: str, size: int) -> None:
        self._split_size = size
        self._split_read: dict[int | None, int] = {}
        self._split_task = self._progress.add_task(f"split {name} (bytes)", total=None, rate="")

    def split_read(self, span: int | None, bytes_read: int) -> None:
        """The splitter has read `bytes_read` bytes of the file, or of byte range `span`."""
        if self._split_task is None:
            return
        self._split_read[span] = bytes_read
        done = min(sum(self._split_read.values()), self._split_size)
        self._progress.update(self._split_task, total=self._split_size, completed=done)

    def file_split(self, messages_queued: int) -> None:
        if self._split_task is not None:
            self._progress.update(self._split_task, total=self._split_size, completed=self._split_size)
        total = (self._progress.tasks[self._send_task].total or 0) + messages_queued
        self._progress.update(self._send_task, total=total)

    def delivered(self, messages: int) -> None:
        self._progress.start_task(self._send_task)
        self._progress.advance(self._send_task, messages)
        speed = self._progress.tasks[self._send_task].speed
        self._progress.update(self._send_task, rate=f"{speed:,.0f} msg/s" if speed else "")


class SplitProgressLog(logging.Handler):
    """Hands the splitter's "split progress" log lines to `on_read(span, bytes_read)`."""

    def __init__(self, on_read: Callable[[int | None, int], None]) -> None:
        super().__init__(level=logging.INFO)
        self._on_read = on_read

    def emit(self, record: logging.LogRecord) -> None:
        bytes_read = getattr(record, "bytes_read", None)
        if record.msg == PROGRESS_MESSAGE and isinstance(bytes_read, int):
            self._on_read(getattr(record, "span", None), bytes_read)
