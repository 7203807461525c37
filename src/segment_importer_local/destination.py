"""Where a run sends to, checked before anything is queued: the host, then the write key.

A host nobody answers on used to cost the whole run (the sender retries each batch until its
deadline, then the queue redrives it). So the CLI refuses a host that is not a URL, opens one
connection to it (and a TLS handshake for https) with a short timeout, and asks Segment's
settings CDN about the write key, all before the local stack exists.

The write-key pre-flight does not depend on the tracking host: Segment's own hosts (US and EU)
share the settings CDN, so it runs for both; for any other host (a proxy, a stand-in) the key
is checked only against an explicit `--preflight-host`, and otherwise the run says plainly that
it could not check the key.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from segment_importer.deliver.preflight import WriteKeyPreflight

# Segment's tracking hosts: api.segment.io (US) and the EU workspaces' host.
SEGMENT_HOSTS = frozenset({"api.segment.io", "events.eu1.segmentapis.com"})
CONNECT_TIMEOUT_SECONDS = 3.0


class UsageError(ValueError):
    """The command line asks for something impossible (exit 2)."""


class HostUnreachable(RuntimeError):
    """The host did not answer a connection (exit 1, before anything is queued)."""


@dataclass(frozen=True, slots=True)
class KeyCheck:
    checked: bool  # False: the key could not be checked (the run goes on and says so)
    detail: str


def parse_host(text: str, option: str = "--host") -> str:
    """`https://host[:port]` as given, or UsageError naming what is wrong with it."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in text.strip():
        raise UsageError(f"{option} {text!r} is not a URL: expected e.g. https://api.segment.io")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"{option} {text!r}: give the host only (no path), e.g. https://api.segment.io")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise UsageError(f"{option} {text!r}: the port is not a number") from None
    return f"{parts.scheme}://{parts.netloc}"


def check_reachable(url: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """One TCP connection (and TLS handshake for https); raises HostUnreachable with why."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout) as connection:
            if parts.scheme == "https":
                context = ssl.create_default_context()
                with context.wrap_socket(connection, server_hostname=parts.hostname):
                    pass
    except (OSError, ssl.SSLError) as error:
        raise HostUnreachable(f"cannot reach {url}: {describe_network_error(error, timeout)}") from None


def describe_network_error(error: BaseException, timeout: float = CONNECT_TIMEOUT_SECONDS) -> str:
    """A few words a person understands (never the request: it may hold a key)."""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "host name not found"
    if isinstance(error, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({error.verify_message})"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed ({error.reason or error})"
    return type(error).__name__


def is_segment_host(url: str) -> bool:
    return (urlsplit(url).hostname or "") in SEGMENT_HOSTS


def preflight_host(host: str | None, explicit: str | None, template_default: str) -> str:
    """The settings host to ask about the key; "" when it cannot be asked."""
    if explicit:
        return explicit
    if host is None or is_segment_host(host):
        return template_default
    return ""


def check_write_key(write_key: str, settings_host: str, host: str | None = None) -> KeyCheck:
    """Ask the settings host about the key; raises UnknownWriteKey when it does not know it."""
    if not settings_host:
        return KeyCheck(
            False,
            f"the write key could not be checked: {host} is not Segment's host (US or EU), so its "
            "settings CDN is unknown; pass --preflight-host to check the key",
        )
    result = WriteKeyPreflight(settings_host, lambda: write_key).check()
    if result.verdict == "unknown_key":
        raise UnknownWriteKey(f"{result.detail} (asked {settings_host})")
    if result.verdict == "unverified":
        return KeyCheck(False, f"the write key could not be checked: {result.detail} ({settings_host})")
    return KeyCheck(True, f"{result.detail} ({settings_host})")


class UnknownWriteKey(RuntimeError):
    """Segment's settings CDN does not know the key: nothing would arrive (exit 1)."""
