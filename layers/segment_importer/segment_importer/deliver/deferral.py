"""A batch that found no room under MaxEventsPerSecond goes back to the work queue, delayed.

Reported as failed, it would come back after the visibility timeout with its receive count
one higher, so a batch that only waited for its turn (never posted) could reach the
dead-letter queue once the shared rate is busier than the senders' waits. Sent again as a new
message it starts from a receive count of one; the original is then reported done and
deleted. If that delete is lost, both copies are posted: Segment dedupes them by messageId
and the ledger counts a batch number once.
"""

from __future__ import annotations

import math
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

MAX_DELAY_SECONDS = 900  # SQS's DelaySeconds limit


class BatchDeferral:
    """Puts a batch's body back on `queue_url` (the work queue) after a delay."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs, self._queue_url = sqs, queue_url

    def defer(self, body: str, delay_seconds: float) -> bool:
        """False when the queue did not take it (the batch then fails as any other would)."""
        delay = min(MAX_DELAY_SECONDS, max(1, math.ceil(delay_seconds)))
        try:
            self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=body, DelaySeconds=delay)
        except (BotoCoreError, ClientError):
            return False
        return True
