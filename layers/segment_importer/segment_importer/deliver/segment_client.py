"""Deliver one prepared batch to Segment with segment-analytics-python's wire, and know the outcome.

`Client.flush()` returns even after failed uploads, so the batch is posted as the library's
`request.post` posts it, raising on anything but a 2xx, but from the messages' stored bytes
(`wire.post_batch`: one serialisation per message in the whole pipeline). Around it:
- 429, 408, 410, 460 and 5xx (but 501/505) and network errors are retried with full-jitter
  exponential backoff, honouring `Retry-After`, and never past the caller's deadline;
- a 400 or 413 (the request or a message too large or malformed) is not retried: the batch
  is split in halves until the refused messages are isolated, and those are returned as
  rejected while the rest are delivered (only then are the batch's bytes parsed, and each
  half serialised again: the rare path). The halving is bounded (MAX_ISOLATION_POSTS per
  batch): past it, each group still refused is returned whole as `unisolated` (written to
  the rejects, with a reason saying so), so many bad messages cannot keep a batch re-posting
  until it is dead-lettered;
- each request has a total deadline (its timeout, or the time left if less): `requests`
  bounds only each read, and an answer that drips could outlive the Lambda;
- anything else (401, 403, 404: a configuration error) fails the batch at once; so does a
  3xx (not followed: the reason names where the host redirects to) and a 2xx that is not
  Segment's acceptance (`wire.acceptance_problem`: an HTML page, `{"success": false}`): the
  host is not Segment, or not as configured, and asking again gives the same answer;
- each request is tried at most `max_attempts` times per delivery (0: until its time is
  spent), so a host that never answers costs a bounded number of timeouts.
Nothing from the messages or the response body is put in exception texts or logs.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests
from segment.analytics import request as segment_request

from segment_importer.deliver import request_deadline, wire

_NOT_RETRYABLE_5XX = frozenset({501, 505})
_RETRYABLE_4XX = frozenset({408, 410, 429, 460})
_REFUSED = frozenset({400, 413})
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# Logged (INFO) before each retry with `host`, `reason`, `attempt` (the one about to start) and
# `next_try_seconds`: CloudWatch shows why a batch is slow, and the local CLI prints a line each.
RETRY_MESSAGE = "retrying segment"
logger = logging.getLogger(__name__)
# Posts spent halving a refused batch: isolates a few bad messages among 2,500 (about
# 2 * log2(2500) = 23 posts for each), and bounds the work when many are bad.
MAX_ISOLATION_POSTS = 64


class DeliveryFailed(RuntimeError):
    """The batch was not accepted in the time allowed; its text is safe to log."""


@dataclass(slots=True)
class Delivery:
    delivered: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    # Refused in a group that was not halved further (MAX_ISOLATION_POSTS spent): some may be fine.
    unisolated: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    retries: int = 0
    isolation_posts: int = 0
    # The HTTP status each refused message was refused with, in the order of `rejected` and
    # of `unisolated`: 400 is Segment's; 413 is a proxy's or gateway's limit in front of it.
    rejected_status: list[int] = field(default_factory=list)
    unisolated_status: list[int] = field(default_factory=list)
    refusal_status: int = 0  # of the last refusal (set by the post that was refused)

    @property
    def refused(self) -> int:
        return len(self.rejected) + len(self.unisolated)

    def refused_by_status(self) -> Counter[int]:
        """Refused messages per HTTP status."""
        return Counter(self.rejected_status + self.unisolated_status)


@dataclass(slots=True)
class SegmentTarget:
    write_key: str
    host: str
    timeout_seconds: float = 15.0
    gzip: bool = False  # the library's default; the template's SegmentGzip is true
    max_attempts: int = (
        0  # tries of one request per delivery (SegmentMaxAttempts); 0: until the time is spent
    )
    accepted_answers: str = wire.SEGMENT_ANSWERS  # which 2xx are an acceptance (SegmentAcceptedAnswers)


@dataclass(slots=True)
class _Group:
    """Messages posted in one request: a JSON array's bytes as queued, or (after a halving)
    the parsed messages, each turned into the other only when needed."""

    count: int
    raw: bytes | None = None
    parsed: list[dict[str, Any]] | None = None

    def body(self) -> bytes:
        if self.raw is None:
            self.raw = orjson.dumps(self.parsed)
        return self.raw

    def messages(self) -> list[dict[str, Any]]:
        if self.parsed is None:
            try:
                parsed = orjson.loads(self.raw or b"")
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, list) or not all(isinstance(m, dict) for m in parsed):
                raise DeliveryFailed("Segment refused a batch that is not a JSON array of messages")
            self.parsed = parsed
        return self.parsed

    def halves(self) -> tuple[_Group, _Group]:
        messages = self.messages()
        middle = len(messages) // 2
        return _Group(middle, parsed=messages[:middle]), _Group(
            len(messages) - middle, parsed=messages[middle:]
        )


class BatchPoster:
    """Posts batches for one target; `post`, `sleep` and `clock` are injectable for tests.

    `post` takes the library's arguments, with `batch` a JSON array's bytes (wire.post_batch).
    Safe to share between threads: it holds no state of its own between deliveries."""

    def __init__(
        self,
        target: SegmentTarget,
        *,
        post: Callable[..., Any] = wire.post_batch,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: random.Random | None = None,
    ) -> None:
        self._target = target
        self._post = post
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter or random.Random()
        if post is wire.post_batch:  # the library's session: let its requests be cut short
            request_deadline.install(segment_request._session)

    def deliver(self, messages: list[dict[str, Any]], deadline: float) -> Delivery:
        """Post `messages` as one batch (splitting only on 400); raises DeliveryFailed."""
        return self.deliver_raw(orjson.dumps(messages), len(messages), deadline, parsed=messages)

    def deliver_raw(
        self, batch: bytes, count: int, deadline: float, *, parsed: list[dict[str, Any]] | None = None
    ) -> Delivery:
        """Post `batch`, the JSON array of `count` messages as queued, as one request; it is
        parsed only if Segment refuses it (to isolate the refused messages)."""
        delivery = Delivery()
        self._deliver(_Group(count, raw=batch, parsed=parsed), deadline, delivery)
        if count > 1 and delivery.delivered == 0 and delivery.rejected:
            # Every part refused, single messages too: the messages were validated before they
            # were queued, so it is the requests the host refuses (a body it cannot read, say
            # gzip), not the messages. Rejecting them all would lose a good import to a bad host.
            statuses = ", ".join(f"HTTP {status}" for status in sorted(delivery.refused_by_status()))
            raise DeliveryFailed(
                f"the host refused every message of the batch, one by one too ({statuses}): it refuses "
                "the requests, not the messages (does it read gzip bodies? SegmentGzip=false sends plain "
                "JSON)"
            )
        return delivery

    def _deliver(self, group: _Group, deadline: float, delivery: Delivery) -> None:
        if self._post_with_retries(group.body(), deadline, delivery):
            delivery.delivered += group.count
        elif len(group.messages()) == 1:
            delivery.rejected.extend(group.messages())
            delivery.rejected_status.append(delivery.refusal_status)
        elif delivery.isolation_posts + 2 > MAX_ISOLATION_POSTS:
            delivery.unisolated.extend(group.messages())
            delivery.unisolated_status.extend([delivery.refusal_status] * len(group.messages()))
        else:
            delivery.isolation_posts += 2
            for half in group.halves():
                self._deliver(half, deadline, delivery)

    def _post_with_retries(self, batch: bytes, deadline: float, delivery: Delivery) -> bool:
        """True when accepted, False when refused (400/413); raises when out of tries."""
        attempt = 0
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise DeliveryFailed(f"out of time before attempt {attempt + 1}")
            delivery.attempts += 1
            timeout = min(self._target.timeout_seconds, remaining)
            try:
                response = request_deadline.call_within(
                    timeout,
                    self._post,
                    self._target.write_key,
                    host=self._target.host,
                    gzip=self._target.gzip,
                    timeout=timeout,
                    retry_count=attempt,
                    batch=batch,
                )
            except segment_request.APIError as error:
                if error.status in _REFUSED:
                    delivery.refusal_status = error.status
                    return False
                delay, reason = _retry_of(error)
            except requests.RequestException as error:
                delay, reason = None, _network_reason(error, timeout)
            else:
                self._check_acceptance(response)
                return True
            delay = delay if delay is not None else self._backoff(attempt)
            out_of_attempts = 0 < self._target.max_attempts <= attempt + 1
            if out_of_attempts or self._clock() + delay >= deadline:
                raise DeliveryFailed(f"gave up after {attempt + 1} attempts; last: {reason}")
            delivery.retries += 1
            logger.info(
                RETRY_MESSAGE,
                extra={
                    "host": self._target.host,
                    "reason": reason,
                    "attempt": attempt + 2,
                    "next_try_seconds": round(delay, 1),
                },
            )
            self._sleep(delay)
            attempt += 1

    def _check_acceptance(self, response: Any) -> None:
        """Raise DeliveryFailed unless the 2xx `response` is Segment's acceptance: a host that
        answers 2xx otherwise is not Segment (or not where it should be), so it is not retried."""
        problem = wire.acceptance_problem(response, self._target.accepted_answers)
        if problem:
            status = getattr(response, "status_code", "2xx")
            raise DeliveryFailed(
                f"the host answered HTTP {status} but not as Segment does: {problem}; nothing counts as "
                "delivered (a Segment-compatible endpoint that answers so: SegmentAcceptedAnswers=any-2xx)"
            )

    def _backoff(self, attempt: int) -> float:
        # The exponent is capped: 2**1024 is past a float, and the cap is reached long before.
        ceiling = BACKOFF_BASE_SECONDS * 2 ** min(attempt, 32)
        return self._jitter.uniform(0, min(BACKOFF_CAP_SECONDS, ceiling))


def _retry_of(error: segment_request.APIError) -> tuple[float | None, str]:
    """The wait Segment asked for (None: back off) and the reason, for an answer worth another
    try; raises DeliveryFailed for one that is not (a redirect, a 4xx not in _RETRYABLE_4XX)."""
    if 300 <= error.status < 400:
        raise DeliveryFailed(
            f"HTTP {error.status}: the host redirects: use the final URL "
            f"(Location: {wire.redirect_target(error.response)})"
        ) from None
    if not _retryable(error.status):
        raise DeliveryFailed(f"Segment answered HTTP {error.status} ({_code(error)})") from None
    delay = segment_request.parse_retry_after(error.response) if error.response is not None else None
    return delay, f"HTTP {error.status}"


def _code(error: segment_request.APIError) -> str:
    """Segment's error code, if it is one: the answer's text is not ours to log (a proxy or a
    stand-in host may echo the request in it)."""
    code = str(error.code)
    return code if _ERROR_CODE.fullmatch(code) else "unrecognised error code"


def _network_reason(error: requests.RequestException, timeout: float) -> str:
    """A few words for a network error (not its text: it names the request)."""
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(error, request_deadline.RequestDeadlineExceeded):  # a Timeout, cut by our own clock
        return f"no complete answer by the request deadline (no answer within {timeout:.3g} s)"
    if isinstance(error, requests.ConnectTimeout):
        return f"no connection within {timeout:.3g} s"
    if isinstance(error, requests.Timeout):
        return f"no answer within {timeout:.3g} s"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the connection broke in the middle of the answer"
    text = str(error).lower()
    if isinstance(error, requests.ConnectionError) and "refused" in text:
        return "connection refused"
    if isinstance(error, requests.ConnectionError) and "reset" in text:
        return "connection reset"
    if isinstance(error, requests.ConnectionError) and ("aborted" in text or "remotedisconnected" in text):
        return "the connection was closed without an answer"
    return type(error).__name__


def _retryable(status: int) -> bool:
    return status in _RETRYABLE_4XX or (500 <= status < 600 and status not in _NOT_RETRYABLE_5XX)
