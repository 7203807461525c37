"""The sender's poster for a batch's target: the stack's own, or the one its job named.

A batch whose envelope names a target (batch/envelope.py, version 2) is posted with the key
of that parameter to that host, never to the stack's default: a job meant for a test source
must not land in production. The target is checked against the stack's `TargetPolicy`
again (the splitter did before queuing), so a body that names something else is refused
before any key is read. Keys come from `key_of(name)`: the handler passes a cached
`WriteKeySource` per name (Powertools caches each name for its max_age), so a rotated key is
picked up and a warm sender reads each parameter about once per max_age.
"""

from __future__ import annotations

from collections.abc import Callable

from segment_importer.deliver.segment_client import BatchPoster, DeliveryFailed, SegmentTarget
from segment_importer.deliver.targets import JobTarget, TargetPolicy
from segment_importer.deliver.wire import SEGMENT_ANSWERS


class TargetRefused(DeliveryFailed):
    """The batch names a target the stack does not allow, or whose key cannot be read; its
    text names the parameter and host, never a key."""


class TargetResolver:
    def __init__(
        self,
        policy: TargetPolicy,
        key_of: Callable[[str], str],
        *,
        timeout_seconds: float = 15.0,
        gzip: bool = False,
        max_attempts: int = 0,
        accepted_answers: str = SEGMENT_ANSWERS,
    ) -> None:
        self._policy = policy
        self._key_of = key_of
        self._timeout = timeout_seconds
        self._gzip = gzip
        self._max_attempts = max_attempts
        self._accepted_answers = accepted_answers

    def target(self, target: JobTarget | None) -> SegmentTarget:
        """The SegmentTarget (key and host) of a batch's target; TargetRefused if not allowed."""
        problems = self._policy.problems(target)
        if problems:
            raise TargetRefused("target not allowed: " + "; ".join(problems))
        parameter = self._policy.parameter_of(target)
        try:
            write_key = self._key_of(parameter)
        except Exception as error:  # the library's text may quote more than the name
            raise TargetRefused(
                f"the write key in {parameter!r} could not be read ({type(error).__name__})"
            ) from None
        return SegmentTarget(
            write_key=write_key,
            host=self._policy.host_of(target),
            timeout_seconds=self._timeout,
            gzip=self._gzip,
            max_attempts=self._max_attempts,
            accepted_answers=self._accepted_answers,
        )

    def poster(self, target: JobTarget | None) -> BatchPoster:
        return BatchPoster(self.target(target))
