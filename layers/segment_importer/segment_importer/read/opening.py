"""Opening an export object: gzip (magic bytes, not the extension), the UTF-8 BOM, the head.

`open_content` reads the head of the object (decompressed when it starts with the gzip magic
bytes) until it holds the first content line, and returns a `Content`: that head, without a
BOM, and the rest of the content as one byte source the format's reader goes on with.
Multi-member gzip is supported. Data expanding more than MAX_GZIP_EXPANSION-fold (past
64 MiB) is read no further: a decompression bomb ends in a `file_unreadable` record. See
docs/formats.md for the rules.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segment_importer.read.handle import ObjectHandle
from segment_importer.read.records import DamagedError, ResumePoint

CHUNK = 1 << 20  # reads from the source and the decompressor
_SNIFF_CHUNK = 1 << 16
GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
# A gzip member of zeros expands about 1,000-fold; real exports expand 5- to 50-fold. Past
# the floor, a file expanding more than this is read no further (a decompression bomb).
MAX_GZIP_EXPANSION = 400
_EXPANSION_FLOOR = 64 << 20

# What GzipFile raises for damaged data. Source errors (network) are deliberately absent.
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


@dataclass(slots=True)
class Content:
    """An opened object: its head (the first content line at least, BOM removed), the source
    that yields the head and then the rest, and what was learnt on the way.

    `handle` is the object itself when it was given as an `ObjectHandle`: a format that must
    seek (a footer, a central directory) reads it with `read_range`.
    """

    source: ByteSource
    head: bytes
    bom: int  # bytes of BOM before the head (0 or 3)
    compression: str  # "gzip" | "none"
    handle: ObjectHandle | None = None
    hint: str | None = None  # the format the key's extension suggests (detect.extension_hint)
    doc_key: str | None = None  # a single JSON document's array key ("batch"), once detected


def open_content(
    stream: Any, *, cap: int, resume: ResumePoint | None = None, stream_at_resume: bool = False
) -> Content:
    """Open `stream` (anything with `read(n)` returning bytes) and sniff its head.

    `resume` skips the content before the point unless `stream_at_resume` says the stream
    already starts there (see `formats.open_records`).
    """
    handle = stream if hasattr(stream, "read_range") else None
    head = read_at_least(stream.read, len(GZIP_MAGIC))
    if head.startswith(GZIP_MAGIC):
        compressed = _CountingReader(stream.read, len(head))
        # BufferedReader: the decompressor asks for small pieces; the source should get big reads.
        raw = io.BufferedReader(ByteSource(compressed.read, head), CHUNK)
        # read1: salvage all data before damage
        read = _ExpansionGuard(gzip.GzipFile(fileobj=raw, mode="rb").read1, compressed).read
        head = _skip_to(read, resume, b"") if resume and not stream_at_resume else b""
        head, error = _sniff(read, head, cap)
        source = ByteSource(read, head.removeprefix(BOM), error, damage=_GZIP_ERRORS)
        compression = "gzip"
    else:
        if resume and not stream_at_resume:
            head = _skip_to(stream.read, resume, head)
        head, _ = _sniff(stream.read, head, cap)
        source = ByteSource(stream.read, head.removeprefix(BOM))
        compression = "none"
    bom = len(BOM) if head.startswith(BOM) else 0
    return Content(source, head.removeprefix(BOM), bom, compression, handle)


def content_start(head: bytes) -> bytes:
    return head.removeprefix(BOM).lstrip()


def _damage(exc: BaseException) -> DamagedError:
    """A decompressor's error as a fixed description: GzipFile's own messages may quote data
    bytes, so the error is described by its type."""
    if isinstance(exc, EOFError):
        return DamagedError("the gzip data is truncated")
    if isinstance(exc, gzip.BadGzipFile):
        return DamagedError("the gzip data is corrupt (bad header, checksum, length or trailing data)")
    return DamagedError("the gzip data is corrupt (invalid deflate data)")


class ByteSource(io.RawIOBase):
    """A raw stream over any `read(n)`: the sniffed head first, then the rest.

    botocore's StreamingBody has `read(n)` but no `readinto`, so it cannot go into an
    io.BufferedReader directly. The `damage` exceptions of `read` (a decompressor's) are
    raised as DamagedError, which the readers turn into a `file_unreadable` record; anything
    else (the network) passes through. Damage met while sniffing is raised after the head,
    where the reader meets it in order, so everything before it is still yielded.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        head: bytes = b"",
        error: DamagedError | None = None,
        damage: tuple[type[BaseException], ...] = (),
    ) -> None:
        super().__init__()
        self._read = read
        self._head = head
        self._error = error
        self._damage = damage

    def readable(self) -> bool:
        return True

    def take(self, size: int) -> bytes:
        """Up to `size` bytes (more if the head is longer); b"" at the end."""
        if self._head:
            data, self._head = self._head, b""
            return data
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        try:
            return self._read(size)
        except self._damage as exc:
            raise _damage(exc) from exc

    def readinto(self, buffer: Any) -> int:
        data = self.take(len(buffer))
        if len(data) > len(buffer):  # the head, or a source that ignores `size`
            data, self._head = data[: len(buffer)], data[len(buffer) :] + self._head
        buffer[: len(data)] = data
        return len(data)


class _CountingReader:
    """Counts the bytes read from the compressed source."""

    __slots__ = ("_read", "total")

    def __init__(self, read: Callable[[int], bytes], already: int) -> None:
        self._read = read
        self.total = already

    def read(self, size: int) -> bytes:
        data = self._read(size)
        self.total += len(data)
        return data


class _ExpansionGuard:
    """Stops decompressing once the output passes MAX_GZIP_EXPANSION times the input."""

    __slots__ = ("_compressed", "_read", "total")

    def __init__(self, read: Callable[[int], bytes], compressed: _CountingReader) -> None:
        self._read = read
        self._compressed = compressed
        self.total = 0

    def read(self, size: int) -> bytes:
        data = self._read(size)
        self.total += len(data)
        if self.total > _EXPANSION_FLOOR and self.total > MAX_GZIP_EXPANSION * self._compressed.total:
            raise DamagedError(
                f"the gzip data expands more than {MAX_GZIP_EXPANSION}-fold ({self.total:,} bytes from"
                f" {self._compressed.total:,}); the rest is not read (a decompression bomb?)"
            )
        return data


def _discard(read: Callable[[int], bytes], count: int, head: bytes = b"") -> bytes:
    """Read past `count` bytes (those in `head` first); returns what was read beyond them."""
    if len(head) >= count:
        return head[count:]
    count -= len(head)
    while count > 0:
        data = read(min(count, CHUNK))
        if not data:
            return b""
        count -= len(data)
    return b""


def _skip_to(read: Callable[[int], bytes], resume: ResumePoint, head: bytes) -> bytes:
    """Read past the content before `resume.offset` (keeping a CSV's header bytes first);
    returns what was read beyond it."""
    if not resume.header_end:
        return _discard(read, resume.offset, head)
    header = head + read_at_least(read, resume.header_end - len(head))
    rest = _discard(read, resume.offset - resume.header_end, header[resume.header_end :])
    return header[: resume.header_end] + rest


def read_at_least(read: Callable[[int], bytes], size: int) -> bytes:
    """At least `size` bytes unless the stream ends first (reads may come back short)."""
    head = b""
    while len(head) < size:
        data = read(_SNIFF_CHUNK)
        if not data:
            break
        head += data
    return head


def _sniff(read: Callable[[int], bytes], head: bytes, cap: int) -> tuple[bytes, DamagedError | None]:
    """Read until the head holds the first content line (or `cap` bytes, or the end).

    Damaged gzip data is returned, not raised: the reader meets it after the head.
    """
    try:
        while len(head) < cap and not _first_line_complete(head):
            data = read(_SNIFF_CHUNK)
            if not data:
                break
            head += data
    except _GZIP_ERRORS as exc:
        return head, _damage(exc)
    except DamagedError as exc:
        return head, exc
    return head, None


def _first_line_complete(head: bytes) -> bool:
    content = content_start(head)
    return bool(content) and (content[:1] == b"[" or b"\n" in content)
