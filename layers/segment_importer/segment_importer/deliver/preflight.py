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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import requests

PREFLIGHT_TIMEOUT_SECONDS = 5.0
Verdict = Literal["ok", "unknown_key", "unverified"]


class PreflightFailed(ValueError):
    """The write key is unknown to Segment: the import must not start."""


@dataclass(frozen=True, slots=True)
class PreflightResult:
    verdict: Verdict
    detail: str  # safe to log: never contains the key


class WriteKeyPreflight:
    """Checks a write key against the settings host; remembers the answer per key."""

    def __init__(
        self,
        settings_host: str,
        write_key: Callable[[], str],
        *,
        get: Callable[..., Any] = requests.get,
        timeout: float = PREFLIGHT_TIMEOUT_SECONDS,
    ) -> None:
        self._host = settings_host.rstrip("/")
        self._write_key = write_key
        self._get = get
        self._timeout = timeout
        self._answers: dict[str, PreflightResult] = {}

    def check(self) -> PreflightResult:
        key = self._write_key()
        if key not in self._answers:
            self._answers[key] = self._ask(key)
        return self._answers[key]

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
