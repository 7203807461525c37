"""Fault injection for the embedded Segment endpoint: what the server does with each request.

A script is a fixed sequence; a random plan draws from a seeded `random.Random`.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FAULT_KINDS = ("status", "rate_limit", "reset", "stall", "accept_then_fail")  # draw order: fixed
_ALL_FAULT_KINDS = frozenset({"ok", *FAULT_KINDS})


# --------------------------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    """What the server does with one request.

    kinds: `ok`; `status` (answer `status_code` with a JSON error); `rate_limit` (429 with
    `Retry-After`/`X-RateLimit-Reset` = `retry_after` seconds); `reset` (read the request, then
    drop the TCP connection with an RST and no answer); `stall` (wait `stall_seconds`, then
    handle normally: the messages are stored even if the client gave up); `accept_then_fail`
    (handle normally, then answer 500 instead of 200: Segment got it, the answer was lost).
    """

    kind: str = "ok"
    status_code: int = 500
    retry_after: int = 1
    stall_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in _ALL_FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(_ALL_FAULT_KINDS)}")

    @classmethod
    def ok(cls) -> Fault:
        """Handle the request normally."""
        return cls("ok")

    @classmethod
    def status(cls, code: int = 500) -> Fault:
        """Answer `code` with a JSON error body, storing nothing."""
        return cls("status", status_code=code)

    @classmethod
    def rate_limit(cls, retry_after: int = 1) -> Fault:
        """Answer 429 with Retry-After, storing nothing."""
        return cls("rate_limit", status_code=429, retry_after=retry_after)

    @classmethod
    def reset(cls) -> Fault:
        """Drop the connection without an answer, storing nothing."""
        return cls("reset")

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Answer normally, but only after `seconds`."""
        return cls("stall", stall_seconds=seconds)

    @classmethod
    def accept_then_fail(cls) -> Fault:
        """Store the messages, then answer 500."""
        return cls("accept_then_fail")

    @classmethod
    def coerce(cls, item: Fault | str | int) -> Fault:
        """A script item: a Fault, a kind name with default parameters, or an HTTP status.

        An int is a `status` fault with that code (200 means ok); 429 given as an int is a
        bare 429 *without* Retry-After, which is a fault worth testing on its own.
        """
        if isinstance(item, Fault):
            return item
        if isinstance(item, bool):  # bool is an int: refuse it rather than answer "status 1"
            raise TypeError(f"not a fault: {item!r}")
        if isinstance(item, int):
            return cls.ok() if item == 200 else cls.status(item)
        if isinstance(item, str):
            return cls(item)
        raise TypeError(f"not a fault: {item!r}")


class FaultPlan:
    """Decides, per request and thread-safely, which Fault the server applies.

    Deterministic: a script is a fixed sequence; a random plan draws from `random.Random(seed)`,
    so the n-th request always gets the same decision for a given seed (under concurrency the
    sequence of decisions is the same, only which request gets which may vary).
    """

    def __init__(
        self,
        *,
        script: Iterable[Fault | str | int] = (),
        seed: int | None = None,
        rates: Mapping[str, float] | None = None,
        retry_after: int = 1,
        stall_seconds: float = 1.0,
        statuses: tuple[int, ...] = (500, 502, 503),
    ) -> None:
        self._lock = threading.Lock()
        self._script: deque[Fault] = deque(Fault.coerce(item) for item in script)
        self._rng = random.Random(seed) if rates is not None else None
        self._rates = _checked_rates(rates or {})
        self._retry_after = retry_after
        self._stall_seconds = stall_seconds
        self._statuses = statuses
        self._decided: list[Fault] = []

    @classmethod
    def script(cls, items: Iterable[Fault | str | int]) -> FaultPlan:
        """A fixed sequence of faults, then ok forever."""
        return cls(script=items)

    @classmethod
    def random(
        cls,
        seed: int,
        rates: Mapping[str, float],
        *,
        retry_after: int = 1,
        stall_seconds: float = 1.0,
        statuses: tuple[int, ...] = (500, 502, 503),
    ) -> FaultPlan:
        """Each request independently gets fault kind k with probability rates[k] (rest: ok)."""
        return cls(
            seed=seed, rates=rates, retry_after=retry_after, stall_seconds=stall_seconds, statuses=statuses
        )

    def next_fault(self) -> Fault:
        """The decision for the next request."""
        with self._lock:
            fault = self._draw()
            self._decided.append(fault)
            return fault

    @property
    def decided(self) -> list[Fault]:
        """Every decision so far, in order (for reproducibility checks)."""
        with self._lock:
            return list(self._decided)

    def _draw(self) -> Fault:
        if self._script:
            return self._script.popleft()
        if self._rng is None:
            return Fault.ok()
        roll = self._rng.random()
        cumulative = 0.0
        for kind in FAULT_KINDS:  # fixed order, so the same roll always maps to the same kind
            cumulative += self._rates.get(kind, 0.0)
            if roll < cumulative:
                return self._random_fault(kind)
        return Fault.ok()

    def _random_fault(self, kind: str) -> Fault:
        if kind == "status":
            return Fault.status(self._rng.choice(self._statuses))  # type: ignore[union-attr]
        if kind == "rate_limit":
            return Fault.rate_limit(self._retry_after)
        if kind == "stall":
            return Fault.stall(self._stall_seconds)
        return Fault(kind)


def _checked_rates(rates: Mapping[str, float]) -> dict[str, float]:
    """Refuse unknown kinds and impossible probabilities up front, not mid-test."""
    unknown = set(rates) - set(FAULT_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; expected some of {FAULT_KINDS}")
    if any(not 0.0 <= rate <= 1.0 for rate in rates.values()) or sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError(f"fault rates must each be in [0, 1] and sum to at most 1: {dict(rates)}")
    return dict(rates)
