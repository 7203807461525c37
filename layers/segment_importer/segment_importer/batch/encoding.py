"""Serialise each message once, and know how big it will be on Segment's wire.

The splitter serialises with orjson (compact UTF-8) and keeps those bytes all the way to
the SQS body. The sender hands the batch to segment-analytics-python, whose `json.dumps`
writes `", "`/`": "` separators and escapes non-ASCII as `\\uXXXX`, so the wire form is
larger. Limits are checked against an upper bound of that wire size, computed from the
orjson bytes without a second serialisation: every `,` and `:` may gain a space, and every
non-ASCII byte may grow to at most three bytes (a 2-byte character becomes a 6-byte escape;
a 4-byte one a 12-byte surrogate pair). Two ASCII cases grow too: DEL (0x7f), which
`json.dumps` escapes as `\\u007f` (5 more bytes), and floats whose exponent is a single
negative digit (orjson `1e-7`, `json.dumps` `1e-07`: one more byte per `e-`). Only when the
bound crosses the 32 KB message limit is the exact size computed.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import orjson

from segment_importer.track.reasons import INVALID_FIELD, Reject

MAX_MESSAGE_BYTES = 32 * 1024
# U+FFFE and U+FFFF are valid JSON but not valid SQS message text; escaped, they survive.
_SQS_UNSAFE = ((b"\xef\xbf\xbe", b"\\ufffe"), (b"\xef\xbf\xbf", b"\\uffff"))
_NON_ASCII = bytes(range(128, 256))
_dumps = orjson.dumps


class EncodedMessage(NamedTuple):
    """A tuple, not a dataclass: one is built per message (the splitter's fast path builds
    plain `(body, wire_bytes)` tuples, which `BatchPacker` takes as well)."""

    body: bytes  # compact JSON, reused verbatim in the SQS body
    wire_bytes: int  # an upper bound of its size as the Segment library sends it


def encode_message(message: dict[str, Any]) -> EncodedMessage:
    return EncodedMessage(*encode_body(message))


def encode_body(message: dict[str, Any]) -> tuple[bytes, int]:
    """`(body, wire_bytes)`: the compact JSON and the bound of its wire size (exact when the
    bound passes the 32 KB limit); Reject when the message cannot be serialised."""
    try:
        body = _dumps(message)
    except orjson.JSONEncodeError as error:
        # e.g. a lone surrogate in a string: the record's fault, not ours
        raise Reject(INVALID_FIELD, "message cannot be serialised as JSON") from error
    if body.isascii():  # the common case, inlined: wire_size_bound for ASCII
        bound = 2 * len(body) - len(body.translate(None, b",:")) + body.count(b"e-")
        if b"\x7f" in body:
            bound += 5 * body.count(b"\x7f")
    else:
        body = _sqs_safe(body)
        bound = wire_size_bound(body)
    if bound > MAX_MESSAGE_BYTES:
        bound = len(json.dumps(message).encode())
    return body, bound


def wire_size_bound(body: bytes) -> int:
    # One pass deletes the `,`/`:` (cheaper than counting each); DEL is rare: look before counting.
    extra = len(body) - len(body.translate(None, b",:")) + body.count(b"e-")
    if b"\x7f" in body:
        extra += 5 * body.count(b"\x7f")
    if not body.isascii():
        extra += 2 * (len(body) - len(body.translate(None, _NON_ASCII)))
    return len(body) + extra


def _sqs_safe(body: bytes) -> bytes:
    for unsafe, escaped in _SQS_UNSAFE:
        if unsafe in body:
            body = body.replace(unsafe, escaped)
    return body
