"""Opening an export object: gzip (magic bytes, not the extension), byte order marks, the head.

`open_content` reads the head of the object (decompressed when it starts with the gzip magic
bytes) until it holds the first content line, and returns a `Content`: that head, without a
BOM, and the rest of the content as one byte source the format's reader goes on with.
Multi-member gzip is supported. Data expanding more than MAX_GZIP_EXPANSION-fold (past
64 MiB) is read no further: a decompression bomb ends in a `file_unreadable` record.
Text that starts with a UTF-16 or UTF-32 byte order mark (as Excel's "Unicode text" and
PowerShell write it) is decoded incrementally and handed on as UTF-8, so detection and every
reader see UTF-8; its offsets are then those of the UTF-8 text (`Content.encoding` says so).
See docs/formats.md for the rules.
"""

from __future__ import annotations

import codecs
import gzip
import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segment_importer.read.compression import compression_of, damage_errors, decompressor, describe
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

# Byte order marks of text decoded to UTF-8 before detection: (mark, name, codec). UTF-32 LE
# first: its mark starts with UTF-16 LE's. The codecs read the mark and drop it.
WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32 LE", "utf-32"),
    (codecs.BOM_UTF32_BE, "UTF-32 BE", "utf-32"),
    (codecs.BOM_UTF16_LE, "UTF-16 LE", "utf-16"),
    (codecs.BOM_UTF16_BE, "UTF-16 BE", "utf-16"),
)
_WIDEST_BOM = 4

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
    compression: str  # "gzip" | "bzip2" | "zstd" | "none"
    handle: ObjectHandle | None = None
    hint: str | None = None  # the format the key's extension suggests (detect.extension_hint)
    doc_key: str | None = None  # a single JSON document's array key ("batch"), once detected
    encoding: str = ""  # "UTF-16 LE" when the text was decoded from it (by its BOM) to UTF-8


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
        read, head, encoding = as_utf8(read, b"", _GZIP_ERRORS)
        head = _skip_to(read, resume, head) if resume and not stream_at_resume else head
        head, error = _sniff(read, head, cap)
        source = ByteSource(read, head.removeprefix(BOM), error, damage=_GZIP_ERRORS)
        compression = "gzip"
    elif compression_of(head):
        compression, source, head, encoding = _decompressed(stream.read, head, resume, stream_at_resume, cap)
    else:
        read, head, encoding = as_utf8(stream.read, head, ())
        if resume and not stream_at_resume:
            head = _skip_to(read, resume, head)
        head, error = _sniff(read, head, cap)  # damage: only text that does not decode
        source = ByteSource(read, head.removeprefix(BOM), error)
        compression = "none"
    bom = len(BOM) if head.startswith(BOM) else 0
    return Content(source, head.removeprefix(BOM), bom, compression, handle, encoding=encoding)


def _decompressed(
    read_stored: Callable[[int], bytes], head: bytes, resume: ResumePoint | None, at_resume: bool, cap: int
) -> tuple[str, ByteSource, bytes, str]:
    """A bzip2 or Zstandard object's content (see `compression`), guarded as gzip is."""
    kind = compression_of(head) or ""
    damage = damage_errors(kind)
    compressed = _CountingReader(read_stored, len(head))
    read = decompressor(kind, ByteSource(compressed.read, head).take)
    read = _ExpansionGuard(read, compressed, kind).read
    read, head, encoding = as_utf8(read, b"", damage)
    head = _skip_to(read, resume, head) if resume and not at_resume else head
    head, error = _sniff(read, head, cap, damage, kind)
    source = ByteSource(read, head.removeprefix(BOM), error, damage=damage, kind=kind)
    return kind, source, head, encoding


def wide_encoding(head: bytes) -> tuple[str, str] | None:
    """(name, codec) of the UTF-16/UTF-32 byte order mark `head` starts with, if any."""
    for mark, name, codec in WIDE_BOMS:
        if head.startswith(mark):
            return name, codec
    return None


def as_utf8(
    read: Callable[[int], bytes], head: bytes, damage: tuple[type[BaseException], ...]
) -> tuple[Callable[[int], bytes], bytes, str]:
    """(read, head, encoding): `read` and the bytes already read from it, unchanged for text
    without a UTF-16/32 byte order mark; else a read of the text as UTF-8 (head then empty)
    and the encoding's name. Damage met while peeking is raised on the first read after the head."""
    error: BaseException | None = None
    try:
        while len(head) < _WIDEST_BOM:
            data = read(_SNIFF_CHUNK)
            if not data:
                break
            head += data
    except damage as exc:
        error = exc
    wide = wide_encoding(head)
    if wide is None and error is None:
        return read, head, ""
    prepended = _Prepended(read, head, error).read
    if wide is None:
        return prepended, b"", ""
    name, codec = wide
    return _Utf8Transcoder(prepended, name, codec).read, b"", name


class _Prepended:
    """Bytes already read, then (an error met reading them, then) the rest."""

    __slots__ = ("_error", "_head", "_read")

    def __init__(self, read: Callable[[int], bytes], head: bytes, error: BaseException | None) -> None:
        self._read, self._head, self._error = read, head, error

    def read(self, size: int) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._read(size)


class _Utf8Transcoder:
    """UTF-16/32 text as UTF-8, decoded incrementally (a read may end inside a character or
    a surrogate pair). Text that does not decode (a lone surrogate, a cut last character)
    is damage: the readers end the file there with `file_unreadable`, never garbled."""

    __slots__ = ("_codec", "_decoded", "_decoder", "_done", "_error", "_name", "_read")

    def __init__(self, read: Callable[[int], bytes], name: str, codec: str) -> None:
        self._read = read
        self._name = name
        self._codec = codec
        self._decoder = codecs.getincrementaldecoder(codec)("strict")
        self._decoded = 0  # bytes of the encoded text handed to the decoder
        self._done = False
        self._error: DamagedError | None = None  # met after the text already returned

    def read(self, size: int) -> bytes:
        while not self._done:
            data = self._read(size)
            state = self._decoder.getstate()  # (the bytes of a half character, the byte order)
            try:
                text = self._decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                return self._until_damage(data, state, exc)
            self._decoded += len(data)
            self._done = not data
            if text:
                return text.encode("utf-8")
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return b""

    def _until_damage(self, data: bytes, state: tuple[bytes, int], exc: UnicodeDecodeError) -> bytes:
        """The text before the bytes that do not decode; the damage is raised on the next read."""
        self._decoder.setstate(state)
        good = max(exc.start - len(state[0]), 0)  # the error's offset counts the carried bytes
        text = self._decoder.decode(data[:good], final=False)
        self._done = True
        self._error = DamagedError(
            f"the {self._name} text does not decode after byte {self._decoded + good:,}"
            f" ({exc.reason}); convert it with `iconv -f {self._codec.upper()} -t UTF-8`"
        )
        return text.encode("utf-8") if text else self.read(0)


def content_start(head: bytes) -> bytes:
    return head.removeprefix(BOM).lstrip()


def _damage(exc: BaseException, kind: str = "gzip") -> DamagedError:
    """A decompressor's error as a fixed description: GzipFile's own messages may quote data
    bytes, so the error is described by its type."""
    if kind != "gzip":
        return DamagedError(describe(kind, exc))
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
        kind: str = "gzip",
    ) -> None:
        super().__init__()
        self._read = read
        self._head = head
        self._error = error
        self._damage = damage
        self._kind = kind  # the compression the damage errors are described for

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
            raise _damage(exc, self._kind) from exc

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

    __slots__ = ("_compressed", "_kind", "_read", "total")

    def __init__(self, read: Callable[[int], bytes], compressed: _CountingReader, kind: str = "gzip") -> None:
        self._read = read
        self._compressed = compressed
        self._kind = kind
        self.total = 0

    def read(self, size: int) -> bytes:
        data = self._read(size)
        self.total += len(data)
        if self.total > _EXPANSION_FLOOR and self.total > MAX_GZIP_EXPANSION * self._compressed.total:
            raise DamagedError(
                f"the {self._kind} data expands more than {MAX_GZIP_EXPANSION}-fold ({self.total:,} bytes"
                f" from {self._compressed.total:,}); the rest is not read (a decompression bomb?)"
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


def _sniff(
    read: Callable[[int], bytes],
    head: bytes,
    cap: int,
    damage: tuple[type[BaseException], ...] = _GZIP_ERRORS,
    kind: str = "gzip",
) -> tuple[bytes, DamagedError | None]:
    """Read until the head holds the first content line (or `cap` bytes, or the end).

    Damaged compressed data is returned, not raised: the reader meets it after the head.
    """
    try:
        while len(head) < cap and not _first_line_complete(head):
            data = read(_SNIFF_CHUNK)
            if not data:
                break
            head += data
    except damage as exc:
        return head, _damage(exc, kind)
    except DamagedError as exc:
        return head, exc
    return head, None


def _first_line_complete(head: bytes) -> bool:
    """Enough of the head to detect the format: the first line, and for a line that opens a
    pretty-printed document (`{` alone, as jq prints it) the first 64 KiB, where detection
    looks for the document's arrays."""
    content = content_start(head)
    if not content or content[:1] == b"[":
        return bool(content)
    first, newline, _ = content.partition(b"\n")
    if not newline:
        return False
    return first.strip() != b"{" or len(content) >= _SNIFF_CHUNK
