"""One stderr line per retry of the sender, so a host that keeps failing is never silent.

The sender logs RETRY_MESSAGE (INFO) before each retry with the host, the reason, the attempt
about to start and the wait before it. The progress bar shows only the latest (and nothing
with --no-progress); a host that never answers then looked like a hung run for many minutes.
The line names the host and the reason in the sender's own words (never the request or the
answer's text: they may hold the write key or records).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TextIO

from segment_importer.deliver import segment_client


class RetryLines(logging.Handler):
    """Writes `retrying HOST: REASON (attempt N, next try in S s)` for each retry."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(level=logging.INFO)
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg != segment_client.RETRY_MESSAGE:
            return
        wait = getattr(record, "next_try_seconds", None)
        then = f", next try in {wait:g} s" if isinstance(wait, int | float) else ""
        line = (
            f"retrying {getattr(record, 'host', '')}: {getattr(record, 'reason', '')} "
            f"(attempt {getattr(record, 'attempt', '?')}{then})"
        )
        stream = self._stream or sys.stderr  # looked up late: rich's live display may swap it
        with contextlib.suppress(OSError, ValueError):  # stderr closed: the retry goes on regardless
            print(line, file=stream, flush=True)


def install() -> None:
    """Print the sender's retries on stderr (once per process)."""
    client_logger = logging.getLogger(segment_client.__name__)
    if not any(isinstance(handler, RetryLines) for handler in client_logger.handlers):
        client_logger.addHandler(RetryLines())
