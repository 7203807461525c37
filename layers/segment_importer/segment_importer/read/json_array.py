"""JSON arrays, streamed element by element with ijson (see docs/formats.md for the rules).

The whole file is one JSON text, so a syntax error ends it: a JSON stream cannot be
resynchronised. Each element is built whole by ijson, so its size and its nesting depth are
bounded before ijson reads them (`_SizeGuard`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Generator, Iterator
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
_YAJL_MESSAGE = re.compile(r"(?:lexical|parse) error: [A-Za-z0-9 ,'()\[\]{}-]{1,80}")


class _ElementTooLargeError(Exception):
    """Raised into ijson by _SizeGuard to stop it building an oversized element."""


class _TooDeepError(Exception):
    """Raised into ijson by _SizeGuard before it reads data nested deeper than MAX_JSON_DEPTH."""


class _BadTokenError(Exception):
    """Raised into ijson by _SizeGuard before it reads a token of `_BadToken`: a lone UTF-16
    surrogate escape, which yajl would turn into "?" (text changed without a word), or NaN or
    Infinity, on which yajl stops ("invalid char"). NDJSON rejects such a line; here the
    element holding it is rejected and the elements after it are read on."""


@dataclass(slots=True)
class _BadToken:
    """Where _SizeGuard stopped ijson: the cause, and what a read on needs to skip the element."""

    cause: str  # what the element holds, in words: _SURROGATE_HELD or _NUMBER_HELD
    tail: bytes  # the bytes from the token on, which ijson never got
    depth: int  # the nesting depth at the token (the top-level array's elements are at 1)
    in_string: bool
    length: int  # of the token (NaN: 3; an escape: up to the `u` and its four digits)


# `\ud800` not followed by a low surrogate escape, or a low one not after a high one; an odd
# number of backslashes before the `u` (an escaped backslash and the text "ud800" is fine).
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})(?<!\\)(?:\\\\)*\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_HOLD_BACK = 12  # a surrogate pair's escapes, `\\ud83d\\ude00`: what one needs around it
# NaN, Infinity, -Infinity: outside strings (checked), the only letters JSON has are true,
# false and null.
_NOT_JSON_NUMBER_TOKEN = re.compile(rb"-?(?:NaN|Infinity)")
_NUMBER_HELD = f"NaN or Infinity ({NOT_JSON_NUMBER_CAUSE})"
_SURROGATE_HELD = LONE_SURROGATE_CAUSE
_STRUCTURAL = re.compile(rb'[\\"\[\]{}]')


class _SizeGuard:
    """Refuses to feed ijson once more than `limit` bytes pass without an element ending,
    or data nested deeper than MAX_JSON_DEPTH.

    ijson builds each element whole; this bounds the memory one element can take. The
    reader sets `mark` each time an element comes out (ijson yields every element finished
    in a buffer before reading the next one, so the bound is within one buffer). The depth
    is checked on each buffer before ijson gets it.
    """

    __slots__ = (
        "_carry", "_depth", "_pending", "_read", "_too_deep", "bad", "limit", "mark", "position",
    )  # fmt: skip

    def __init__(self, read: Callable[[int], bytes], limit: int) -> None:
        self._read = read
        self.limit = limit
        self.position = 0
        self.mark = 0
        self._depth = _DepthScanner()
        self._too_deep = False
        self.bad: _BadToken | None = None  # the token it stopped ijson before
        self._carry = b""  # the last bytes ijson got, for the lookbehinds of _LONE_SURROGATE
        self._pending = b""  # read, not yet given to ijson: an escape's pair may be in them

    def read(self, size: int) -> bytes:
        if self._too_deep:
            raise _TooDeepError
        if self.bad is not None:
            raise _BadTokenError
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
        data = self._before_bad_token(data, before)
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

    def _before_bad_token(self, data: bytes, before: _DepthScanner) -> bytes:
        """`data` up to a lone surrogate escape or a NaN or Infinity outside a string (ijson
        reads the elements before it; the next read stops it, `bad` says where)."""
        scan, start = self._carry + data + self._pending, len(self._carry)
        end = start + len(data)  # one starting in the held back bytes: judged on the next read
        found = _LONE_SURROGATE.search(scan, start) if b"\\u" in scan else None
        at, cause = (found.start(), _SURROGATE_HELD) if found and found.start() < end else (end, "")
        if b"NaN" in scan or b"Infinity" in scan:  # a token may run on into the held back bytes
            number = _not_json_number(scan[start:], before.copy())
            if number is not None and start + number.start() < at:
                found, at, cause = number, start + number.start(), _NUMBER_HELD
        if not cause:
            self._carry = (self._carry + data)[-_HOLD_BACK:]
            return data
        assert found is not None
        cut = at - start
        state = before.copy()
        state.deepest(data[:cut])
        length = found.end() - found.start() if cause is _NUMBER_HELD else 0
        self.bad = _BadToken(cause, data[cut:] + self._pending, state.depth, state.in_string, length)
        self._pending, data = b"", data[:cut]
        if not data:  # an empty read would tell ijson the file ended
            raise _BadTokenError
        return data


def _not_json_number(data: bytes, scanner: _DepthScanner) -> re.Match[bytes] | None:
    """The first NaN, Infinity or -Infinity outside a string in `data` (`scanner`: the state
    before it; fed piece by piece, so many such words inside strings cost one pass)."""
    done = 0
    for found in _NOT_JSON_NUMBER_TOKEN.finditer(data):
        scanner.deepest(data[done : found.start()])
        done = found.start()
        if not scanner.in_string:
            return found
    return None


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

    @property
    def in_string(self) -> bool:
        return self._in_string

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
    file with a `file_unreadable` record. A lone surrogate escape or a NaN or Infinity is
    found before ijson reads it: that element is rejected (invalid_json, the cause named, as
    NDJSON names it), its bytes skipped, and ijson starts again on the rest (`_restart`).
    """
    level = 0 if documents else prefix.count(".") + 1  # the depth the elements are at
    # read1, not read: a read that fails midway would drop the good bytes it had gathered.
    read: Callable[[int], bytes] = content.read1
    count = 0
    while True:
        guard = _SizeGuard(read, limit + IJSON_BUF)
        count = yield from _elements(guard, prefix, limit, count, documents=documents)
        if guard.bad is None:
            return
        count += 1
        detail = f"JSON array element {count} is not valid JSON: it holds {guard.bad.cause}"
        yield SourceRecord(count, reason=reasons.INVALID_JSON, detail=detail)
        rest = _rest_after(guard.bad, content.read1, level, limit) if guard.bad.depth >= level else None
        if rest is None:
            yield unreadable(count + 1, f"JSON array breaks in element {count}; the rest cannot be read")
            return
        read = _Prefixed(_restart(prefix, documents) + rest, content.read1).read


def _elements(
    guard: _SizeGuard, prefix: str, limit: int, count: int, *, documents: bool
) -> Generator[SourceRecord, None, int]:
    """The elements ijson reads through `guard`, numbered on from `count`; returns the count.
    Stops (the guard's `bad` set) before a token of _BadToken."""
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
    except _BadTokenError:
        pass  # the caller rejects the element and reads on
    except _ElementTooLargeError:
        detail = f"JSON array element {count + 1} is larger than {limit} bytes; the rest cannot be read"
        yield unreadable(count + 1, detail)
    except _TooDeepError:
        detail = f"JSON array element {count + 1} is nested deeper than {MAX_JSON_DEPTH} levels"
        yield unreadable(count + 1, detail + "; the rest cannot be read")
    except DamagedError as exc:
        yield unreadable(count + 1, f"JSON array breaks after record {count}: {exc}")
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        yield unreadable(count + 1, f"JSON array breaks after record {count}: {_json_problem(exc)}")
    return count


def _restart(prefix: str, documents: bool) -> bytes:
    """What makes the rest of the text after a skipped element JSON that ijson reads at
    `prefix` again: the array reopened (inside its document: `{"batch": [`)."""
    if documents:
        return b""
    if prefix == "item":
        return b"["
    return b"{" + orjson.dumps(prefix.removesuffix(".item")) + b":["


def _rest_after(bad: _BadToken, read: Callable[[int], bytes], level: int, limit: int) -> bytes | None:
    """The text after the element holding `bad` (and after its comma), read on with `read`;
    None when the element does not end within `limit` bytes or before the text does."""
    depth, in_string, chunk, start, seen = bad.depth, bad.in_string, bad.tail, 0, 0
    if not in_string and depth == level:  # the bad value is the element itself: `[1, NaN]`
        return _after_separator(chunk[bad.length :], read)
    while chunk and seen <= limit:
        escaped = -1
        for found in _STRUCTURAL.finditer(chunk, start):
            at = found.start()
            if at == escaped:
                continue
            byte = chunk[at]
            if byte == 0x5C:  # a backslash: the byte after it is escaped
                escaped = at + 1
            elif byte == 0x22:  # a quote
                in_string = not in_string
                if not in_string and depth == level:  # a string element ended
                    return _after_separator(chunk[at + 1 :], read)
            elif not in_string:
                depth += 1 if byte in b"[{" else -1
                if depth == level:
                    return _after_separator(chunk[at + 1 :], read)
        seen += len(chunk)
        start = 1 if escaped == len(chunk) else 0
        chunk = read(CHUNK)
    return None


def _after_separator(rest: bytes, read: Callable[[int], bytes]) -> bytes:
    """`rest` without the whitespace and the comma that follow an element."""
    rest = rest.lstrip()
    while not rest:
        more = read(CHUNK)
        if not more:
            return b""
        rest = more.lstrip()
    return rest[1:] if rest[:1] == b"," else rest


class _Prefixed:
    """`prefix`, then what `read` returns."""

    __slots__ = ("_prefix", "_read")

    def __init__(self, prefix: bytes, read: Callable[[int], bytes]) -> None:
        self._prefix, self._read = prefix, read

    def read(self, size: int) -> bytes:
        if self._prefix and size:  # ijson reads 0 bytes first, to see their type
            data, self._prefix = self._prefix, b""
            return data
        return self._read(size)


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
