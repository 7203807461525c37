"""NDJSON: one JSON object per line, parsed with orjson in 1 MiB chunks (the hot path).

A line over `max_record_bytes` is skipped (`record_too_large`) without being held whole; a
bad line costs one record. Record numbers are physical lines (blank lines count, as in an
editor), so a part can resume at the byte offset after any line (`LinePosition`).

The hot path (`_ndjson_records`): splitting a 1 MiB chunk with bytes.split and looping over
the list costs less per line than readline() calls, and the size check is one max() per
chunk instead of one per line. The loop stays in one function: a generator per chunk would
add a frame to every record. A run of 20 digits (an integer beyond 64 bits?) is looked
for once per chunk, and line by line only in a chunk that has one: hex ids have such runs
in about one chunk in three, and sending those whole chunks down the careful path cost
every line of them a second scan. A line longer than `limit` is never held whole: once the
unfinished tail of a chunk passes the limit it is dropped and the reader skips to the next
newline.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from segment_importer.read.opening import CHUNK, Content
from segment_importer.read.reader import Format, ReadOptions
from segment_importer.read.records import (
    LONE_SURROGATE_CAUSE,
    NOT_JSON_NUMBER_CAUSE,
    RAW_EXCERPT_CHARS,
    DamagedError,
    RecordStream,
    ResumePoint,
    SourceRecord,
    excerpt,
    unreadable,
)
from segment_importer.track import reasons

_EXCERPT_BYTES = RAW_EXCERPT_CHARS * 4  # enough bytes for any excerpt; avoids decoding more


class LinePosition:
    """The reader's current block of lines, so a stop can be turned into an offset."""

    __slots__ = ("base", "first", "lines")

    def __init__(self, base: int) -> None:
        self.base = base  # content bytes before the block
        self.first = 0  # the number of the block's first line
        self.lines: list[bytes] = []

    def mark(self, base: int, first: int, lines: list[bytes]) -> None:
        self.base, self.first, self.lines = base, first, lines

    def after(self, number: int) -> ResumePoint | None:
        if not self.first <= number < self.first + len(self.lines):
            return None
        done = self.lines[: number - self.first + 1]
        return ResumePoint(self.base + sum(map(len, done)) + len(done), number + 1)


@dataclass(frozen=True, slots=True)
class NdjsonReader:
    format: Format = Format.NDJSON
    label: str = "NDJSON"
    resumable: bool = True
    span_splittable: bool = True
    has_header: bool = False
    records_span_lines: bool = False
    cells_are_text: bool = False

    def open(self, content: Content, options: ReadOptions) -> RecordStream:
        resume = options.resume
        position = LinePosition(resume.offset if resume else content.bom)
        first = resume.line - 1 if resume else 0
        records = _ndjson_records(content.source.take, options.max_record_bytes, first, position)
        return RecordStream(self.format.value, content.compression, records, position)


NDJSON_READER = NdjsonReader()


def _ndjson_records(
    take: Callable[[int], bytes], limit: int, number: int = 0, position: LinePosition | None = None
) -> Iterator[SourceRecord]:
    """One record per line, parsed in place from 1 MiB chunks (the hot path; see above)."""
    loads, decode_error, record = orjson.loads, orjson.JSONDecodeError, SourceRecord
    # `number`: the last physical line read. `consumed`: content bytes before `tail`.
    consumed = position.base if position else 0
    tail = b""  # an unfinished line carried to the next chunk
    skipping = False  # inside an oversized line, already reported
    while True:
        try:
            chunk = take(CHUNK)
        except DamagedError as exc:
            yield unreadable(number + 1, f"the file breaks after line {number}: {exc}")
            return
        if not chunk:
            break
        if skipping:
            consumed, rest = _past_line_end(chunk, consumed)
            if rest is None:
                continue
            chunk, skipping = rest, False
        block = tail + chunk if tail else chunk
        lines = block.split(b"\n")
        tail = lines.pop()
        if position is not None:  # before any line is yielded: the consumer may stop on one
            position.mark(consumed, number + 1, lines)
        if lines and len(lines[0]) <= 1 and lines.count(b"") + lines.count(b"\r") == len(lines):
            number += len(lines)  # only blank lines (a gzip bomb of them?): counted, never parsed
        elif lines and max(map(len, lines)) > limit:
            # rare (a line too long): the careful path
            yield from _ndjson_lines(lines, number, limit)
            number += len(lines)
        else:
            long_digits = _LONG_DIGITS in block.translate(_DIGITS)
            for line in lines:
                number += 1
                try:
                    value = loads(line)
                except decode_error as exc:
                    if (rejected := _rejected_line(number, line, exc)) is not None:
                        yield rejected
                    continue
                if long_digits and _LONG_DIGITS in line.translate(_DIGITS):
                    value = _with_exact_integers(line)
                yield record(number, value) if type(value) is dict else _not_an_object(number, line)
        consumed += len(block) - len(tail)
        if len(tail) > limit + 1:  # +1: a CR whose LF is in the next chunk
            number, consumed, skipping = number + 1, consumed + len(tail), True
            yield _too_large(number, tail, limit)
            tail = b""
    if tail and not skipping:
        yield from _last_line(tail, number, limit, consumed, position)


def _last_line(
    tail: bytes, number: int, limit: int, consumed: int, position: LinePosition | None
) -> Iterator[SourceRecord]:
    """The file's last line when it has no newline after it."""
    if position is not None:
        position.mark(consumed, number + 1, [tail])
    yield from _ndjson_lines([tail], number, limit)


def _past_line_end(chunk: bytes, consumed: int) -> tuple[int, bytes | None]:
    """Skipping an oversized line: (bytes consumed, what follows its newline in `chunk`, or
    None when the line goes on past the chunk)."""
    end = chunk.find(b"\n")
    if end < 0:
        return consumed + len(chunk), None
    return consumed + end + 1, chunk[end + 1 :]


def _ndjson_lines(lines: list[bytes], number: int, limit: int) -> Iterator[SourceRecord]:
    """The careful per-line path: size check first, then parse. `number` is the line before."""
    for line in lines:
        number += 1
        if len(line) > limit and len(line.removesuffix(b"\r")) > limit:
            yield _too_large(number, line, limit)
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            rejected = _rejected_line(number, line, exc)
            if rejected is not None:
                yield rejected
            continue
        if _LONG_DIGITS in line.translate(_DIGITS):
            value = _with_exact_integers(line)
        yield SourceRecord(number, value) if type(value) is dict else _not_an_object(number, line)


# Integers beyond what orjson keeps exactly (it reads them as floats): found by a run of 20
# digits, in C (bytes.translate, then a substring search: about 7% of orjson's parse time).
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGITS = b"0" * 20
_EXACT_INTEGERS = (-(2**63), 2**64 - 1)  # orjson's own range


def _exact_integer(text: str) -> int | str:
    number = int(text)
    low, high = _EXACT_INTEGERS
    return number if low <= number <= high else text  # kept exactly, as its digits


def _with_exact_integers(line: bytes) -> Any:
    """The line parsed again (it parsed with orjson) keeping integers beyond 64 bits as
    strings of their digits, exact, instead of floats."""
    return json.loads(line, parse_int=_exact_integer)


def _rejected_line(number: int, line: bytes, exc: orjson.JSONDecodeError) -> SourceRecord | None:
    """The record for a line orjson refused; None for a blank line (skipped, still counted)."""
    if not line.strip():
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as bad:
        detail = f"line {number} is not valid UTF-8 (byte {bad.start + 1})"
        return SourceRecord(number, reason=reasons.INVALID_UTF8, detail=detail, raw=excerpt(line))
    # orjson's messages are fixed texts with a position, never input.
    detail = f"line {number} is not valid JSON: {exc.msg} at column {exc.colno}{_known_cause(text, exc)}"
    return SourceRecord(number, reason=reasons.INVALID_JSON, detail=detail, raw=excerpt(line))


_NOT_JSON_NUMBERS = ("NaN", "Infinity", "-Infinity")


def _known_cause(text: str, exc: orjson.JSONDecodeError) -> str:
    if "surrogate" in exc.msg:
        return f" ({LONE_SURROGATE_CAUSE})"
    if text[exc.pos :].startswith(_NOT_JSON_NUMBERS):
        return f" ({NOT_JSON_NUMBER_CAUSE})"
    return ""


def _not_an_object(number: int, line: bytes) -> SourceRecord:
    detail = f"line {number} is JSON but not an object"
    return SourceRecord(number, reason=reasons.NOT_AN_OBJECT, detail=detail, raw=excerpt(line.strip()))


def _too_large(number: int, start: bytes, limit: int) -> SourceRecord:
    detail = f"line {number} is longer than {limit} bytes"
    return SourceRecord(
        number, reason=reasons.RECORD_TOO_LARGE, detail=detail, raw=excerpt(start[:_EXCERPT_BYTES])
    )
