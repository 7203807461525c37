"""JSON arrays, streamed element by element with ijson (see docs/formats.md for the rules).

The whole file is one JSON text, so a syntax error ends it: a JSON stream cannot be
resynchronised. Each element is built whole by ijson, so its size and its nesting depth are
bounded before ijson reads them (`_SizeGuard`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import ijson
import orjson

from segment_importer.read.batch_shared import SEGMENT_BATCH_KEY, read_shared_keys, with_shared
from segment_importer.read.opening import CHUNK, Content
from segment_importer.read.reader import Format, ReadOptions
from segment_importer.read.records import (
    LONE_SURROGATE_CAUSE,
    NOT_JSON_NUMBER_CAUSE,
    DamagedError,
    RecordStream,
    SourceRecord,
    excerpt,
    unreadable,
)
from segment_importer.track import reasons

try:  # the C backend is several times faster than the pure-Python one
    ijson_backend: Any = ijson.get_backend("yajl2_c")
except ImportError:  # pragma: no cover - depends on how ijson was built
    ijson_backend = ijson

IJSON_BUF = 1 << 16
# Hostile input. ijson's prefixes cost memory quadratic in the nesting depth (20,000 levels
# take about 1 GB), so JSON arrays nested deeper than orjson reads NDJSON are not parsed on.
MAX_JSON_DEPTH = 1024
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'"[]{}')  # every byte but these
_OPEN_AS_2 = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_NOT_JSON_NUMBER = re.compile(r"(?<![A-Za-z0-9_])-?(?:NaN|Infinity)")
_YAJL_MESSAGE = re.compile(r"(?:lexical|parse) error: [A-Za-z0-9 ,'()\[\]{}-]{1,80}")


class _ElementTooLargeError(Exception):
    """Raised into ijson by _SizeGuard to stop it building an oversized element."""


class _TooDeepError(Exception):
    """Raised into ijson by _SizeGuard before it reads data nested deeper than MAX_JSON_DEPTH."""


class _LoneSurrogateError(Exception):
    """Raised into ijson by _SizeGuard before it reads a lone UTF-16 surrogate escape, which
    yajl would turn into "?" (text changed without a word; NDJSON rejects such a line)."""


# `\ud800` not followed by a low surrogate escape, or a low one not after a high one; an odd
# number of backslashes before the `u` (an escaped backslash and the text "ud800" is fine).
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})(?<!\\)(?:\\\\)*\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_HOLD_BACK = 12  # a surrogate pair's escapes, `\\ud83d\\ude00`: what one needs around it


class _SizeGuard:
    """Refuses to feed ijson once more than `limit` bytes pass without an element ending,
    or data nested deeper than MAX_JSON_DEPTH.

    ijson builds each element whole; this bounds the memory one element can take. The
    reader sets `mark` each time an element comes out (ijson yields every element finished
    in a buffer before reading the next one, so the bound is within one buffer). The depth
    is checked on each buffer before ijson gets it.
    """

    __slots__ = (
        "_carry", "_depth", "_lone_surrogate", "_pending", "_read", "_too_deep", "limit", "mark", "position",
    )  # fmt: skip

    def __init__(self, read: Callable[[int], bytes], limit: int) -> None:
        self._read = read
        self.limit = limit
        self.position = 0
        self.mark = 0
        self._depth = _DepthScanner()
        self._too_deep = False
        self._lone_surrogate = False
        self._carry = b""  # the last bytes ijson got, for the lookbehinds of _LONE_SURROGATE
        self._pending = b""  # read, not yet given to ijson: an escape's pair may be in them

    def read(self, size: int) -> bytes:
        if self._too_deep:
            raise _TooDeepError
        if self._lone_surrogate:
            raise _LoneSurrogateError
        if self.position - self.mark > self.limit:
            raise _ElementTooLargeError
        data = self._held_back(self._read(size))
        before = self._depth.copy()
        if data and self._depth.deepest(data) > MAX_JSON_DEPTH:
            # ijson still gets the bytes before the bracket too many, so the elements that end
            # there come out; the next read stops it.
            data, self._too_deep = data[: _first_too_deep(before, data) - 1], True
            if not data:  # an empty read would tell ijson the file ended
                raise _TooDeepError
        data = self._before_lone_surrogate(data)
        self.position += len(data)
        return data

    def _held_back(self, data: bytes) -> bytes:
        """`data` without its last `_HOLD_BACK` bytes, kept for the next read, so a surrogate
        escape near its end is judged with what follows it before ijson reads it."""
        if not data:  # the end: what was held back is the last piece
            data, self._pending = self._pending, b""
            return data
        data = self._pending + data
        while len(data) <= _HOLD_BACK and (more := self._read(_HOLD_BACK)):
            data += more
        if len(data) <= _HOLD_BACK:  # the end came while reading on
            self._pending = b""
            return data
        data, self._pending = data[:-_HOLD_BACK], data[-_HOLD_BACK:]
        return data

    def _before_lone_surrogate(self, data: bytes) -> bytes:
        """`data` up to a lone surrogate escape (ijson reads the elements before it; the next
        read stops it)."""
        scan, start = self._carry + data + self._pending, len(self._carry)
        found = _LONE_SURROGATE.search(scan, start) if b"\\u" in scan else None
        if found is None or found.start() >= start + len(data):  # one in the held back: next read
            self._carry = (self._carry + data)[-_HOLD_BACK:]
            return data
        self._lone_surrogate = True
        data = data[: found.start() - start]
        if not data:  # an empty read would tell ijson the file ended
            raise _LoneSurrogateError
        return data


def _first_too_deep(scanner: _DepthScanner, data: bytes) -> int:
    """The shortest prefix of `data` that takes `scanner` deeper than MAX_JSON_DEPTH (its
    last byte is the bracket too many); found by bisection, once per file at most."""
    low, high = 1, len(data)
    while low < high:
        middle = (low + high) // 2
        if scanner.copy().deepest(data[:middle]) > MAX_JSON_DEPTH:
            high = middle
        else:
            low = middle + 1
    return low


class _DepthScanner:
    """The nesting depth of a JSON text fed in pieces, at C speed (no tokenizing).

    Only quotes, brackets and backslashes matter: escaped backslashes and quotes are dropped,
    then every byte but quotes and brackets, then pairs of adjacent quotes (a string without
    brackets: dropping two neighbouring quotes never changes which brackets are inside a
    string), then the brackets inside the strings left. What remains are the structural
    brackets. Text that is not JSON gives a meaningless depth; ijson reports its error.
    """

    __slots__ = ("_carry", "_in_string", "depth")

    def __init__(self) -> None:
        self.depth = 0
        self._in_string = False
        self._carry = b""  # a backslash whose escaped byte is in the next piece

    def copy(self) -> _DepthScanner:
        twin = _DepthScanner()
        twin.depth, twin._in_string, twin._carry = self.depth, self._in_string, self._carry
        return twin

    def deepest(self, data: bytes) -> int:
        """Feed the next piece; returns the greatest depth in it: exact above MAX_JSON_DEPTH,
        an upper bound below."""
        if self._carry:
            data, self._carry = self._carry + data, b""
        if b"\\" in data:
            if data.endswith(b"\\") and (len(data) - len(data.rstrip(b"\\"))) % 2:
                data, self._carry = data[:-1], b"\\"
            data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
        marks = data.translate(None, _NOT_STRUCTURE)
        if b'""' in marks:
            marks = marks.replace(b'""', b"")
        if b'"' in marks:
            parts = marks.split(b'"')
            brackets = b"".join(parts[1 if self._in_string else 0 :: 2])
            self._in_string ^= len(parts) % 2 == 0
        elif self._in_string:
            return self.depth
        else:
            brackets = marks
        start = self.depth
        opens = brackets.count(b"[") + brackets.count(b"{")
        self.depth = start + 2 * opens - len(brackets)
        if start + opens <= MAX_JSON_DEPTH:
            return start + opens
        return max(accumulate((step - 1 for step in brackets.translate(_OPEN_AS_2)), initial=start))


@dataclass(frozen=True, slots=True)
class JsonArrayReader:
    """A JSON array, or the array of a single document's `batch`/`events`/`data` key."""

    format: Format = Format.JSON_ARRAY
    label: str = "JSON array"
    resumable: bool = False  # one JSON text: a read cannot start in its middle
    span_splittable: bool = False
    has_header: bool = False
    records_span_lines: bool = True
    cells_are_text: bool = False

    def open(self, content: Content, options: ReadOptions) -> RecordStream:
        # doc_key: None for a top-level array, "" for JSON documents that are records
        # themselves (one after another, as jq prints them), else the document's array key.
        documents = content.doc_key == ""
        prefix = "" if documents else f"{content.doc_key}.item" if content.doc_key else "item"
        source, shared = content.source, None
        if content.doc_key == SEGMENT_BATCH_KEY:  # a Segment /batch body shares some keys
            shared = read_shared_keys(source, content.doc_key)
            source = shared.source
        buffered = io.BufferedReader(source, CHUNK)
        records = json_array_records(buffered, prefix, options.max_record_bytes, documents=documents)
        stream = RecordStream(self.format.value, content.compression, records)
        if shared is not None:
            stream.warnings.extend(shared.warnings)
            if shared.shared:
                stream.wrap(lambda found: with_shared(found, shared.shared))
        return stream


JSON_ARRAY_READER = JsonArrayReader()


def json_array_records(
    content: io.BufferedReader, prefix: str, limit: int, *, documents: bool = False
) -> Iterator[SourceRecord]:
    """The elements of the array at `prefix` ("item": the top-level array), one by one; with
    `documents`, the top-level values of a text of JSON documents one after another.

    A JSON stream cannot be resynchronised after a syntax error, so the first one ends the
    file with a `file_unreadable` record.
    """
    # read1, not read: a read that fails midway would drop the good bytes it had gathered.
    guard = _SizeGuard(content.read1, limit + IJSON_BUF)
    count = 0
    try:
        values = ijson_backend.items(
            guard, prefix, use_float=True, buf_size=IJSON_BUF, multiple_values=documents
        )
        for value in values:
            count += 1
            guard.mark = guard.position
            if type(value) is dict:
                yield SourceRecord(count, value)
            else:
                detail = f"element {count} is JSON but not an object"
                yield SourceRecord(
                    count, reason=reasons.NOT_AN_OBJECT, detail=detail, raw=_json_excerpt(value)
                )
    except _ElementTooLargeError:
        detail = f"JSON array element {count + 1} is larger than {limit} bytes; the rest cannot be read"
        yield unreadable(count + 1, detail)
    except _TooDeepError:
        detail = f"JSON array element {count + 1} is nested deeper than {MAX_JSON_DEPTH} levels"
        yield unreadable(count + 1, detail + "; the rest cannot be read")
    except _LoneSurrogateError:
        detail = f"JSON array element {count + 1} holds {LONE_SURROGATE_CAUSE}. The rest cannot be read"
        yield unreadable(count + 1, detail)
    except DamagedError as exc:
        yield unreadable(count + 1, f"JSON array breaks after record {count}: {exc}")
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        yield unreadable(count + 1, _broken_array(count, exc))


def _broken_array(count: int, exc: Exception) -> str:
    """Why the array breaks at element `count + 1`; NaN and Infinity named as NDJSON names them
    (yajl says only "invalid char"). A JSON text cannot be resynchronised: the rest is lost."""
    if _at_not_json_number(str(exc)):
        return (
            f"JSON array element {count + 1} holds NaN or Infinity ({NOT_JSON_NUMBER_CAUSE}). "
            "The rest cannot be read"
        )
    return f"JSON array breaks after record {count}: {_json_problem(exc)}"


def _at_not_json_number(message: str) -> bool:
    """Whether yajl's error points at NaN, Infinity or -Infinity: its message shows the input
    around the error with a caret under it (read here, never repeated in a detail)."""
    lines = message.split("\n")
    if not message.startswith("lexical error") or len(lines) < 3 or "^" not in lines[2]:
        return False
    at = lines[2].index("^")
    return _NOT_JSON_NUMBER.search(lines[1][max(at - 2, 0) : at + 9]) is not None


def _json_problem(exc: Exception) -> str:
    """yajl's message without the excerpt of input it appends."""
    found = _YAJL_MESSAGE.search(str(exc))
    if found:
        return found.group(0).rstrip(" .")
    return "incomplete JSON" if isinstance(exc, ijson.IncompleteJSONError) else "malformed JSON"


def _json_excerpt(value: Any) -> str:
    try:
        return excerpt(orjson.dumps(value))
    except TypeError:  # e.g. an integer beyond 64 bits, or nested deeper than orjson writes
        pass
    try:
        return excerpt(repr(value))
    except RecursionError:
        return "(a value nested too deeply to show)"
