"""MaxEventsPerSecond: one event rate shared by every sender, kept in one DynamoDB item.

Segment takes about 1,000 requests/s per workspace, and Engage/Unify about 1,000 events/s
inbound: an import that feeds profiles must be paced by events, across all the senders
running at once, not by each. The pace is a token bucket kept as one number (GCRA, the
generic cell rate algorithm): the item's `tat` is the time at which the bucket would be full
again. A batch of n events costs n / rate seconds; it takes its slot with ONE conditional
UpdateItem and no read:

- the bucket has caught up (`tat` <= now, or no item yet): `tat = now + cost`;
- otherwise it queues behind the slots already taken: `tat = tat + cost`, only if that slot
  comes within the wait the caller allows (else nothing is taken and it is refused);

and may post at `tat - burst / rate` (at once while the bucket holds that many tokens), so
over any interval of t seconds at most rate * t + burst events are posted, whatever the
number of senders. DynamoDB applies each conditional update atomically, so no two senders
get the same slot. A slot taken and not used (the post failed) is lost: the limit errs low.

The clock is the wall clock (every sender's, kept by NTP), in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

BUCKET_ID = "events"
_CONDITION_FAILED = "ConditionalCheckFailedException"


class EventRateLimit:
    """Slots for batches under `events_per_second`, shared through `table` (hash key `bucket`)."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        events_per_second: float,
        *,
        burst_events: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if events_per_second <= 0:
            raise ValueError("events_per_second must be positive (0 means no limit: pass no EventRateLimit)")
        self._db, self._table = dynamodb, table
        self.events_per_second = events_per_second
        # One second's worth by default: a sender starting alone posts at once.
        self.burst_events = burst_events if burst_events is not None else events_per_second
        self._clock, self._sleep = clock, sleep

    def acquire(self, events: int, max_wait: float) -> bool:
        """Take a slot for `events` and sleep until it comes; False (nothing taken, no sleep)
        when the slot would come more than `max_wait` seconds from now."""
        return self.take(events, max_wait).taken

    def take(self, events: int, max_wait: float) -> Slot:
        """`acquire`, saying when a slot refused would come (`Slot.retry_after`)."""
        if not self.could_take(events, max_wait):
            return Slot(taken=False)
        now = self._clock()
        cost = events / self.events_per_second
        tolerance = self.burst_events / self.events_per_second
        tat = self._start_fresh(now, cost)
        if tat is None:
            tat, queued = self._queue_behind(cost, latest=now + tolerance + max_wait - cost)
            if not queued:  # `tat` is the bucket's: its slot would open after the others
                return Slot(taken=False, retry_after=max(0.0, tat + cost - tolerance - now))
        wait = tat - tolerance - self._clock()
        if wait > 0:
            self._sleep(wait)
        return Slot(taken=True)

    def could_take(self, events: int, max_wait: float) -> bool:
        """Whether an idle bucket could take `events` within `max_wait` seconds: when it
        could not, waiting for the others to finish would not help."""
        return (events - self.burst_events) / self.events_per_second <= max_wait

    def _start_fresh(self, now: float, cost: float) -> float | None:
        tat = now + cost
        done, _ = self._update(
            "SET tat = :tat",
            "attribute_not_exists(tat) OR tat <= :now",
            {":tat": _number(tat), ":now": _number(now)},
        )
        return tat if done else None

    def _queue_behind(self, cost: float, latest: float) -> tuple[float, bool]:
        """(the new `tat`, True), or (the bucket's `tat`, False) when the slot came too late."""
        done, item = self._update(
            "SET tat = tat + :cost", "tat <= :latest", {":cost": _number(cost), ":latest": _number(latest)}
        )
        return float(item["tat"]["N"]) if "tat" in item else latest, done

    def _update(self, expression: str, condition: str, values: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """(True, the item's new attributes), or (False, the item as it is) when the
        condition did not hold."""
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key={"bucket": {"S": BUCKET_ID}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == _CONDITION_FAILED:
                return False, error.response.get("Item") or {}
            raise
        return True, answer["Attributes"]


@dataclass(frozen=True, slots=True)
class Slot:
    taken: bool
    retry_after: float = 0.0  # refused while the bucket was busy: seconds until it would come


def _number(seconds: float) -> dict[str, str]:
    """A DynamoDB number to the microsecond (enough for any rate up to millions of events/s)."""
    return {"N": str(Decimal(seconds).quantize(Decimal("0.000001")))}
