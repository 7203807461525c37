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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3


@contextmanager
def around_send_message_batch(before: Callable[..., None], after: Callable[..., None]) -> Iterator[None]:
    """Call `before` (with the request's params) and `after` (with the parsed answer) around
    every SendMessageBatch. Registered on boto3's default session, so the clients the handlers
    create inherit them; removed again when the block ends."""
    events = boto3.DEFAULT_SESSION._session.get_component("event_emitter")
    events.register("before-parameter-build.sqs.SendMessageBatch", before)
    events.register("after-call.sqs.SendMessageBatch", after)
    try:
        yield
    finally:
        events.unregister("before-parameter-build.sqs.SendMessageBatch", before)
        events.unregister("after-call.sqs.SendMessageBatch", after)


@dataclass
class AwsFaults:
    seed: int = 0
    sender_crash_rate: float = 0.0  # an invocation that posted, then died before returning
    send_batch_failure_rate: float = 0.0  # each SendMessageBatch entry answered as Failed
    duplicate_s3_events: bool = False  # every object's notification delivered twice
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        # One stream per kind of fault, so that each kind's draws repeat with the seed however
        # the splitter's and the sender's threads interleave (they run at once in a local run).
        self._randoms: dict[str, random.Random] = {}

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

        with around_send_message_batch(withhold, report_failed):
            yield

    def _draw(self, kind: str, rate: float) -> bool:
        stream = self._randoms.setdefault(kind, random.Random(f"{self.seed}:{kind}"))
        hit = rate > 0 and stream.random() < rate
        if hit:
            self.injected[kind] += 1
        return hit


# --- `segment-importer run --chaos SPEC` (docs/chaos.md) ----------------------------------

# The fault-injection suite's mix (tests/integration/test_fault_injection.py): `--chaos default`.
DEFAULT_SPEC = (
    "seed=11,status=0.1,rate_limit=0.03,reset=0.08,stall=0.04,accept_then_fail=0.08,"
    "sender_crash=0.1,send_batch_failure=0.2,duplicate_s3_events"
)
_AWS_RATES = {"sender_crash": "sender_crash_rate", "send_batch_failure": "send_batch_failure_rate"}


class ChaosSpecError(ValueError):
    """A --chaos SPEC that names an unknown fault or gives a value out of range."""


@dataclass
class ChaosSpec:
    """Which faults a local run injects, and how often (each a probability per request,
    per invocation or per entry); parsed from `name=value,...`."""

    seed: int = 0
    endpoint_rates: dict[str, float] = field(default_factory=dict)
    aws: dict[str, float] = field(default_factory=dict)
    duplicate_s3_events: bool = False
    retry_after: int = 1
    stall_seconds: float = 2.0

    @classmethod
    def parse(cls, text: str) -> ChaosSpec:
        from segment_importer_local.endpoint_faults import FAULT_KINDS

        spec = cls()
        for item in filter(
            None, (part.strip() for part in (DEFAULT_SPEC if text == "default" else text).split(","))
        ):
            name, _, value = item.partition("=")
            try:
                if name == "duplicate_s3_events":
                    spec.duplicate_s3_events = value.lower() not in {"0", "false", "no"}
                elif name in {"seed", "retry_after"}:
                    setattr(spec, name, int(value))
                elif name == "stall_seconds":
                    spec.stall_seconds = float(value)
                elif name in FAULT_KINDS:
                    spec.endpoint_rates[name] = _rate(name, value)
                elif name in _AWS_RATES:
                    spec.aws[_AWS_RATES[name]] = _rate(name, value)
                else:
                    known = ", ".join([*FAULT_KINDS, *_AWS_RATES, "duplicate_s3_events", "seed"])
                    raise ChaosSpecError(f"unknown fault {name!r} in --chaos (known: {known})")
            except ValueError as error:
                if isinstance(error, ChaosSpecError):
                    raise
                raise ChaosSpecError(f"--chaos {item!r}: {error}") from None
        return spec

    def endpoint_faults(self) -> Any:
        from segment_importer_local.segment_endpoint import FaultPlan

        if not self.endpoint_rates:
            return None
        return FaultPlan.random(
            seed=self.seed,
            rates=self.endpoint_rates,
            retry_after=self.retry_after,
            stall_seconds=self.stall_seconds,
        )

    def aws_faults(self) -> AwsFaults:
        return AwsFaults(seed=self.seed, duplicate_s3_events=self.duplicate_s3_events, **self.aws)


def _rate(name: str, value: str) -> float:
    rate = float(value)
    if not 0 <= rate < 1:
        raise ChaosSpecError(f"--chaos {name}={value}: a rate is a probability in [0, 1)")
    return rate


def delivery_figures(received_path: str, messages_queued: int) -> dict[str, int]:
    """Lost and doubled, from what the embedded endpoint stored (once per messageId: the
    repeats its dedupe absorbed are in its stats): the distinct messageIds against the
    messages the splitter queued (lost), and the same message content stored under more than
    one messageId (doubled: a duplicate Segment's dedupe would not catch)."""
    import orjson

    ids: set[str] = set()
    ids_per_content: dict[bytes, set[str]] = {}
    with open(received_path, "rb") as stream:
        for line in stream:
            message = orjson.loads(line)
            ids.add(message["messageId"])
            content = orjson.dumps(_content(message), option=orjson.OPT_SORT_KEYS)
            ids_per_content.setdefault(content, set()).add(message["messageId"])
    return {
        "lost": max(0, messages_queued - len(ids)),
        "doubled": sum(len(found) - 1 for found in ids_per_content.values() if len(found) > 1),
    }


def _content(message: dict[str, Any]) -> dict[str, Any]:
    """A message without what the sender or the endpoint set (its id, send and receive times)."""
    content = {
        name: value
        for name, value in message.items()
        if name not in {"messageId", "sentAt", "receivedAt", "writeKey"}
    }
    if isinstance(content.get("context"), dict):
        content["context"] = {name: value for name, value in content["context"].items() if name != "library"}
    return content
