"""Progress of a local run: each file while it is split, then messages delivered, with rate and ETA.

On a terminal, two live bars. When stderr is not a terminal (`2>run.log`, CI, nohup) the bars
would only be drawn once, at the end: instead a plain line (no carriage return, no colour) is
printed when a file starts and ends its split, and at most every `plain_every` seconds while
messages are delivered, so a long run shows that it moves.

The splitter runs as Lambda would run it, in one synchronous call. Its bar follows the
splitter's own "split progress" log lines (every 100,000 records: the bytes of the file
read so far), as CloudWatch would show them; until the first one it pulses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from segment_importer.deliver.segment_client import RETRY_MESSAGE
from segment_importer.split.splitter import PROGRESS_MESSAGE

MB = 1_000_000
PLAIN_EVERY_SECONDS = 10.0  # between plain progress lines when stderr is not a terminal


class PipelineProgress:
    """Two bars: the splitter's read position in the current file, and messages delivered."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        console: Console | None = None,
        plain_every: float = PLAIN_EVERY_SECONDS,
    ) -> None:
        console = console or Console(stderr=True)
        # Not a terminal: rich would draw the bars once, at the end; plain lines instead.
        self._plain = enabled and not console.is_terminal
        self._plain_every = plain_every
        self._last_line = 0.0
        self._console = console
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[counts]} {task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("[yellow]{task.fields[note]}"),
            console=console,
            disable=not enabled or self._plain,
            # The functions' stdout is the run's functions.log (runner.py): rich must not
            # take sys.stdout over, or the handlers it creates meanwhile log to the terminal.
            redirect_stdout=False,
        )
        self._split_task: TaskID | None = None
        self._split_name = ""
        self._split_size = 0
        self._send_task = self._progress.add_task("send", total=0, start=False, **_fields())
        self._retries = 0
        self._last_retry = ""

    def __enter__(self) -> PipelineProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()
        if kind is None:
            self._plain_line(force=True)

    def start_file(self, name: str, size: int) -> None:
        self._split_size = size
        self._split_read: dict[int | None, int] = {}
        self._split_task = self._progress.add_task(f"split {name}", total=None, **_fields())
        self._split_name = name
        self._plain_line(force=True)

    def split_read(self, span: int | None, bytes_read: int) -> None:
        """The splitter has read `bytes_read` bytes of the file, or of byte range `span`."""
        if self._split_task is None:
            return
        self._split_read[span] = bytes_read
        done = min(sum(self._split_read.values()), self._split_size)
        self._progress.update(self._split_task, total=self._split_size, completed=done)
        self._show_bytes(self._split_task)
        self._plain_line()

    def file_split(self, messages_queued: int) -> None:
        if self._split_task is not None:
            self._progress.update(self._split_task, total=self._split_size, completed=self._split_size)
            self._show_bytes(self._split_task)
        total = (self._progress.tasks[self._send_task].total or 0) + messages_queued
        self._progress.update(self._send_task, total=total)
        self._plain_line(force=True)

    def delivered(self, messages: int) -> None:
        self._progress.start_task(self._send_task)
        self._progress.advance(self._send_task, messages)
        task = self._progress.tasks[self._send_task]
        self._progress.update(
            self._send_task,
            counts=f"{task.completed:,.0f}/{task.total or 0:,.0f} messages",
            rate=f"{task.speed:,.0f} msg/s" if task.speed else "",
            note=f"{self._retries} retries (last: {self._last_retry})" if self._retries else "",
        )
        self._plain_line()

    def retrying(self, host: str, reason: str, attempt: int) -> None:
        """The sender is retrying a batch: say so on the send line; after the next delivery the
        line keeps the count of retries and the last reason."""
        self._retries += 1
        self._last_retry = f"{host}: {reason}"
        self._progress.update(self._send_task, note=f"retrying {host}: {reason}, attempt {attempt}")
        self._plain_line()

    def _plain_line(self, *, force: bool = False) -> None:
        """Not a terminal: one line of where the run is, at most every `plain_every` seconds."""
        if not self._plain:
            return
        now = time.monotonic()
        if not force and now - self._last_line < self._plain_every:
            return
        self._last_line = now
        parts = []
        if self._split_task is not None:
            split = self._progress.tasks[self._split_task]
            parts.append(f"split {self._split_name} {split.fields['counts'] or 'reading'}")
        send = self._progress.tasks[self._send_task]
        known = send.total and send.total >= send.completed  # the total grows as files are split
        parts.append(f"sent {send.completed:,.0f}{f'/{send.total:,.0f}' if known else ''} messages")
        if send.speed:
            parts.append(f"{send.speed:,.0f} msg/s")
        if self._retries:
            parts.append(f"{self._retries} retries (last: {self._last_retry})")
        self._console.file.write(f"progress: {'; '.join(parts)}\n")
        self._console.file.flush()

    def _show_bytes(self, task_id: TaskID) -> None:
        task = self._progress.tasks[task_id]
        rate = f"{_size(task.speed)}/s" if task.speed else ""
        self._progress.update(task_id, counts=f"{_size(task.completed)}/{_size(task.total or 0)}", rate=rate)


def _size(count: float) -> str:
    return f"{count / MB:,.1f} MB" if count >= MB / 10 else f"{count / 1000:,.1f} kB"


def _fields() -> dict[str, str]:
    return {"counts": "", "rate": "", "note": ""}


class RetryLog(logging.Handler):
    """Hands the sender's "retrying segment" log lines to `on_retry(host, reason, attempt)`."""

    def __init__(self, on_retry: Callable[[str, str, int], None]) -> None:
        super().__init__(level=logging.INFO)
        self._on_retry = on_retry

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == RETRY_MESSAGE:
            host = getattr(record, "host", "")
            self._on_retry(host, str(getattr(record, "reason", "")), int(getattr(record, "attempt", 0)))


class SplitProgressLog(logging.Handler):
    """Hands the splitter's "split progress" log lines to `on_read(span, bytes_read)`."""

    def __init__(self, on_read: Callable[[int | None, int], None]) -> None:
        super().__init__(level=logging.INFO)
        self._on_read = on_read

    def emit(self, record: logging.LogRecord) -> None:
        bytes_read = getattr(record, "bytes_read", None)
        if record.msg == PROGRESS_MESSAGE and isinstance(bytes_read, int):
            self._on_read(getattr(record, "span", None), bytes_read)
