"""Pre-flight check of the write key, before a whole import is burned.

Segment's tracking API answers 200 to a wrong write key and silently drops everything, so a
mistyped key would send a whole history into nowhere. Segment's settings CDN does tell:
`GET https://cdn.segment.com/v1/projects/<write key>/settings` answers 200 for a key that
belongs to a source and 404 for one that does not. The splitter asks once per key and
process (cached) before it queues anything:
- `ok`: the key belongs to a source;
- `unknown_key`: the CDN does not know the key; the import FAILS with a clear error and
  nothing is queued;
- `unverified`: the CDN could not be asked (no network, another answer); the import goes on
  and the log says so.
`PREFLIGHT_HOST` empty disables the check (e.g. behind a proxy that is not Segment).

A job that names its own workspace (deliver/targets.py) has that target checked first
against what the stack allows, then its own key asked about, not the stack's: the settings
CDN is the same for Segment's US and EU hosts, so the job's `host` does not change where
the key is asked about. A job's key that cannot be read fails the import before anything
is queued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import requests

from segment_importer.deliver.targets import TargetPolicy
from segment_importer.job import JobOptions, JobOptionsError

PREFLIGHT_TIMEOUT_SECONDS = 5.0
Verdict = Literal["ok", "unknown_key", "unverified"]
logger = logging.getLogger(__name__)


class PreflightFailed(ValueError):
    """The write key is unknown to Segment: the import must not start."""


@dataclass(frozen=True, slots=True)
class PreflightResult:
    verdict: Verdict
    detail: str  # safe to log: never contains the key


class WriteKeyPreflight:
    """Checks a write key against the settings host; remembers the answer per key.
    `key_of(name)` reads a job-named parameter's key (the handler's cached WriteKeySource)."""

    def __init__(
        self,
        settings_host: str,
        write_key: Callable[[], str],
        *,
        key_of: Callable[[str], str] | None = None,
        get: Callable[..., Any] = requests.get,
        timeout: float = PREFLIGHT_TIMEOUT_SECONDS,
    ) -> None:
        self._host = settings_host.rstrip("/")
        self._write_key = write_key
        self._key_of = key_of
        self._get = get
        self._timeout = timeout
        self._answers: dict[str, PreflightResult] = {}

    def check(self, parameter: str | None = None) -> PreflightResult:
        """The stack's key, or the key in `parameter` (a job's)."""
        key = self._write_key() if parameter is None else self._job_key(parameter)
        if key not in self._answers:
            self._answers[key] = self._ask(key)
        return self._answers[key]

    def _job_key(self, parameter: str) -> str:
        if self._key_of is None:
            raise PreflightFailed(f"the job's write key in {parameter!r} cannot be read; nothing was queued")
        try:
            return self._key_of(parameter)
        except Exception as error:  # the library's text may quote more than the name
            raise PreflightFailed(
                f"the job's write key in {parameter!r} could not be read ({type(error).__name__}); "
                "nothing was queued"
            ) from None

    def _ask(self, key: str) -> PreflightResult:
        url = f"{self._host}/v1/projects/{quote(key, safe='')}/settings"
        try:
            response = self._get(url, timeout=self._timeout)
        except requests.RequestException as error:
            return PreflightResult("unverified", f"settings host unreachable ({type(error).__name__})")
        if response.status_code == 200:
            return PreflightResult("ok", "the write key belongs to a Segment source")
        if response.status_code in (401, 403, 404):
            return PreflightResult(
                "unknown_key",
                f"Segment does not know this write key (settings host answered {response.status_code}); "
                "check the key in SSM and the region (EU workspaces need the EU endpoint)",
            )
        return PreflightResult("unverified", f"settings host answered HTTP {response.status_code}")


def check_write_key(preflight: WriteKeyPreflight | None, policy: TargetPolicy, job: JobOptions) -> None:
    """Stop before queuing anything when the job names a target the stack does not allow
    (JobOptionsError) or Segment does not know the write key it would use (PreflightFailed)."""
    problems = policy.problems(job.target)
    if problems:
        raise JobOptionsError("; ".join(problems), problems)
    if preflight is None:
        return
    parameter = job.write_key_parameter
    result = preflight.check(None if parameter in (None, policy.default_parameter) else parameter)
    if result.verdict == "unknown_key":
        raise PreflightFailed(f"write key pre-flight failed: {result.detail}; nothing was queued")
    if result.verdict == "unverified":
        logger.warning("write key not verified; importing anyway", extra={"reason": result.detail})
