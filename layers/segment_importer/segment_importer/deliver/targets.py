"""Which Segment workspace a job's batches go to: the write key's parameter and the host.

One stack often imports into a test source first and the production source after, or into
a US and an EU workspace. A job file may name `writeKeyParameter` (an SSM SecureString) and
`host` (the Tracking API's https URL); what it does not name is the stack's own
(`WriteKeyParameterName`, `SegmentHost`). The stack decides what a job may name:
- a parameter under `JobKeyParameterPath` (IAM lets the functions read only those and
  the stack's own key), or the stack's own parameter;
- a host among `JobSegmentHosts` (Segment's US and EU hosts by default) or `SegmentHost`:
  whoever may drop a job file must not be able to send records, and a write key, elsewhere.
Both functions check the same `TargetPolicy`: the splitter before it queues anything (the
import fails with the reason), the sender again before it reads a key or posts a batch.
Nothing here holds or prints a write key, only parameter names and hosts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_HOST = "https://api.segment.io"
SECRETS_MANAGER_PREFIX = "secretsmanager:"
MAX_NAME_CHARS = 256  # keeps the SQS envelope's head within QUEUE_ENVELOPE_BYTES (batch/packing.py)
# SSM's own character set for names; `*` and `?` (IAM wildcards) and `..` are never allowed.
_SSM_NAME = re.compile(r"/[A-Za-z0-9_.\-/]+")
# The functions' variables the policy is read from (set by template.yaml's Globals).
ENVIRONMENT = ("WRITE_KEY_PARAMETER", "SEGMENT_HOST", "JOB_KEY_PARAMETER_PATH", "JOB_SEGMENT_HOSTS")
# Plain http only to this machine: the local stack's embedded Segment endpoint.
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True, slots=True)
class JobTarget:
    """What a job names; None: the stack's own."""

    write_key_parameter: str | None = None
    host: str | None = None

    def to_document(self) -> dict[str, str]:
        """The envelope's `target` (only the names the job set)."""
        document = {"writeKeyParameter": self.write_key_parameter, "host": self.host}
        return {name: value for name, value in document.items() if value is not None}

    @classmethod
    def from_document(cls, document: Any) -> JobTarget:
        """From an envelope's `target`; ValueError if it is not one this code writes."""
        if not isinstance(document, dict) or not document or set(document) - {"writeKeyParameter", "host"}:
            raise ValueError("target is not an object of writeKeyParameter and host")
        parameter, host = document.get("writeKeyParameter"), document.get("host")
        if parameter_form_problem(parameter) or host_form_problem(host):
            raise ValueError("target names a parameter or host of the wrong form")
        return cls(parameter, host)


def parameter_form_problem(name: Any) -> str | None:
    """Why `name` cannot be a job's `writeKeyParameter`, or None (None itself is fine)."""
    if name is None:
        return None
    if not isinstance(name, str):
        return "not a string"
    if name.startswith(SECRETS_MANAGER_PREFIX):
        return "Secrets Manager is for the stack's own key only: put a job's key in SSM"
    if len(name) > MAX_NAME_CHARS or not _SSM_NAME.fullmatch(name) or ".." in name or "//" in name:
        return f"not an SSM parameter name (a path from /, at most {MAX_NAME_CHARS} characters, no '..')"
    if name.endswith("/"):  # a path, not a parameter (QA): SSM has no parameter of that name
        return "a path, not a parameter name: name the parameter under it"
    return None


def normal_host(host: str) -> str:
    """A host URL as compared and posted to: host names are case-insensitive (RFC 3986), and a
    trailing `/` adds nothing."""
    return host.strip().rstrip("/").lower()


def host_form_problem(url: Any) -> str | None:
    """Why `url` cannot be a job's `host`, or None (None itself is fine)."""
    if url is None:
        return None
    if not isinstance(url, str) or len(url) > MAX_NAME_CHARS or any(c.isspace() for c in url):
        return "not a URL"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an https URL, e.g. https://events.eu1.segmentapis.com"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "its port is not a number"
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        return "give the host only, e.g. https://events.eu1.segmentapis.com"
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return "https only"
    return None


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """The stack's own target and what a job may name instead (read from the environment)."""

    default_parameter: str = ""
    default_host: str = DEFAULT_HOST
    parameter_prefix: str = ""  # empty: a job may name no parameter but the stack's own
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TargetPolicy:
        hosts = env.get("JOB_SEGMENT_HOSTS", "")
        return cls(
            default_parameter=env.get("WRITE_KEY_PARAMETER", ""),
            default_host=normal_host(env.get("SEGMENT_HOST") or DEFAULT_HOST),
            parameter_prefix=env.get("JOB_KEY_PARAMETER_PATH", ""),
            allowed_hosts=tuple(normal_host(host) for host in hosts.split(",") if host.strip()),
        )

    def problems(self, target: JobTarget | None) -> list[str]:
        """Why the stack does not allow `target` (every reason; names, never a key)."""
        if target is None:
            return []
        problems = []
        parameter, host = target.write_key_parameter, target.host
        if form := parameter_form_problem(parameter):
            problems.append(f"'writeKeyParameter' {parameter!r}: {form}")
        elif parameter is not None and not self._parameter_allowed(parameter):
            under = self.parameter_prefix or "(no JobKeyParameterPath configured)"
            problems.append(
                f"'writeKeyParameter' {parameter!r} is not under {under}, the path the stack may read"
            )
        if form := host_form_problem(host):
            problems.append(f"'host' {host!r}: {form}")
        elif host is not None and normal_host(host) not in {self.default_host, *self.allowed_hosts}:
            allowed = sorted({self.default_host, *self.allowed_hosts})
            problems.append(f"'host' {host!r} is not one the stack allows (JobSegmentHosts): {allowed}")
        return problems

    def parameter_of(self, target: JobTarget | None) -> str:
        return (target and target.write_key_parameter) or self.default_parameter

    def host_of(self, target: JobTarget | None) -> str:
        return normal_host((target and target.host) or self.default_host)

    def _parameter_allowed(self, name: str) -> bool:
        if name == self.default_parameter:
            return True
        return bool(self.parameter_prefix) and name.startswith(self.parameter_prefix)
