"""A total deadline for one HTTP request to Segment.

`requests`' timeout bounds each connect and each read, not the request: an answer that
drips a byte at a time, each within the timeout, can outlive the Lambda. So each post runs
under a timer; when it fires, the socket of the connection the posting thread holds is shut
down, the blocked read returns at once, and the post raises RequestDeadlineExceeded (a
`requests.Timeout`: retried like one, within the caller's deadline).

The connection is found through the session's connection pools, which note the connection
each thread takes (`DeadlineAdapter`, mounted on the session segment-analytics-python posts
with). Nothing is installed at import time: `install` is called by the poster.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

T = TypeVar("T")
_in_use: dict[int, Any] = {}  # thread id -> the connection that thread is using


class RequestDeadlineExceeded(requests.Timeout):
    """The request took longer in total than it was allowed."""


class _NotingPool:
    """Notes which connection each thread took from the pool."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)  # type: ignore[misc]
        _in_use[threading.get_ident()] = connection
        return connection


class _NotingHTTPPool(_NotingPool, HTTPConnectionPool):
    pass


class _NotingHTTPSPool(_NotingPool, HTTPSConnectionPool):
    pass


class DeadlineAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _NotingHTTPPool, "https": _NotingHTTPSPool}


def install(session: requests.Session) -> None:
    """Mount the adapter on `session` (once) so its requests can be cut at a deadline."""
    for prefix in ("https://", "http://"):
        if not isinstance(session.adapters.get(prefix), DeadlineAdapter):
            session.mount(prefix, DeadlineAdapter())


def call_within(total_seconds: float, post: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`post(*args, **kwargs)`, its connection cut if it runs past `total_seconds`."""
    thread = threading.get_ident()
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        connection = _in_use.get(thread)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed: nothing left to cut
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(total_seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        return post(*args, **kwargs)
    except Exception as error:
        if expired.is_set():
            raise RequestDeadlineExceeded(f"no complete answer within {total_seconds:.1f} s") from None
        raise error
    finally:
        timer.cancel()
        _in_use.pop(thread, None)
