"""Faults on the AWS side of a local run, for the fault-injection suite.

The Segment side has its own (`segment_endpoint.FaultPlan`). These model what AWS does to
a pipeline: a sender that dies after posting but before returning (Lambda then counts the
whole invocation as failed, so its records come back), `SendMessageBatch` answering 200
with some entries `Failed`, and S3 delivering the same event twice. All draws come from a
seeded `random.Random`, so a run is reproducible.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3


@dataclass
class AwsFaults:
    seed: int = 0
    sender_crash_rate: float = 0.0  # an invocation that posted, then died before returning
    send_batch_failure_rate: float = 0.0  # each SendMessageBatch entry answered as Failed
    duplicate_s3_events: bool = False  # every object's notification delivered twice
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # reproducible test faults, not security

    def sender_crashes(self) -> bool:
        return self._draw("sender_crash", self.sender_crash_rate)

    @contextmanager
    def failing_send_message_batch(self) -> Iterator[None]:
        """Make SendMessageBatch answer `Failed` for a share of entries (they are not sent).

        Registered on boto3's default session, so the clients the handlers create inherit
        it; it is removed again when the block ends.
        """
        if not self.send_batch_failure_rate:
            yield
            return
        events = boto3.DEFAULT_SESSION._session.get_component("event_emitter")
        withheld: list[dict[str, Any]] = []

        def withhold(params: dict[str, Any], **_: Any) -> None:
            entries = params.get("Entries", [])
            rate = self.send_batch_failure_rate
            kept = [entry for entry in entries if not self._draw("send_batch_entry_failed", rate)]
            if not kept and entries:  # SQS needs at least one entry: send one, fail the rest
                kept = entries[:1]
            withheld[:] = [entry for entry in entries if entry not in kept]
            params["Entries"] = kept

        def report_failed(parsed: dict[str, Any], **_: Any) -> None:
            parsed.setdefault("Failed", []).extend(
                {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"}
                for entry in withheld
            )
            withheld.clear()

        events.register("before-parameter-build.sqs.SendMessageBatch", withhold)
        events.register("after-call.sqs.SendMessageBatch", report_failed)
        try:
            yield
        finally:
            events.unregister("before-parameter-build.sqs.SendMessageBatch", withhold)
            events.unregister("after-call.sqs.SendMessageBatch", report_failed)

    def _draw(self, kind: str, rate: float) -> bool:
        hit = rate > 0 and self._random.random() < rate
        if hit:
            self.injected[kind] += 1
        return hit
