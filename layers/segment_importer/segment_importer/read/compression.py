"""bzip2 and Zstandard, decompressed as a stream (gzip is read in `opening`).

`decompressor(kind, read)` returns a `read(n)` of the decompressed bytes over a `read(n)` of
the compressed ones, bounded per call (a bomb is stopped by `opening`'s expansion guard, one
chunk at a time). Damaged data raises one of `DAMAGE[kind]`; `describe(kind, exc)` turns it
into a fixed description (the decompressors' own messages may quote data).

* bzip2: the stdlib's `bz2.BZ2File` (multi-stream, as `bzip2` and `pbzip2` write); a stream
  cut short raises EOFError.
* Zstandard: `zstandard`'s stream reader, across frames (`zstd` and `pzstd` write several).
  That reader ends quietly at a frame cut short, so the compressed bytes are checked on their
  way in (`_ZstdFrames`: frame and block headers, and the checksum): a truncated file raises
  EOFError as bzip2 and gzip do, instead of looking complete.
"""

from __future__ import annotations

import bz2
import io
from collections.abc import Callable
from typing import Any

BZIP2_MAGIC = b"BZh"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_SKIPPABLE = range(0x184D2A50, 0x184D2A60)  # skippable frames' magic numbers (little-endian)
_CHUNK = 1 << 20


def compression_of(head: bytes) -> str | None:
    """ "bzip2" or "zstd" from the magic bytes, else None."""
    if head.startswith(BZIP2_MAGIC) and head[3:4].isdigit():
        return "bzip2"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def damage_errors(kind: str) -> tuple[type[BaseException], ...]:
    if kind == "bzip2":
        return (OSError, EOFError, ValueError)
    zstandard = _zstandard()
    return (zstandard.ZstdError, EOFError, ValueError)


def describe(kind: str, error: BaseException) -> str:
    name = "bzip2" if kind == "bzip2" else "Zstandard"
    if isinstance(error, EOFError):
        return f"the {name} data is truncated"
    return f"the {name} data is corrupt ({type(error).__name__})"


def decompressor(kind: str, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
    raw = io.BufferedReader(_Raw(read), _CHUNK)
    if kind == "bzip2":
        return bz2.BZ2File(raw, "rb").read1
    frames = _ZstdFrames(raw.read)
    reader = _zstandard().ZstdDecompressor().stream_reader(frames, read_across_frames=True)
    return _ZstdRead(reader, frames).read


def _zstandard() -> Any:
    try:
        import zstandard  # in the main layer; imported on first use, as few files are zstd
    except ImportError as error:  # pragma: no cover - a layer built without it
        from segment_importer.read.records import FileFormatError

        raise FileFormatError("Zstandard needs the zstandard package in the function's layer") from error
    return zstandard


class _Raw(io.RawIOBase):
    def __init__(self, read: Callable[[int], bytes]) -> None:
        super().__init__()
        self._read = read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _ZstdRead:
    """The stream reader's output; at its end, the frame checker must have seen whole frames."""

    def __init__(self, reader: Any, frames: _ZstdFrames) -> None:
        self._reader, self._frames = reader, frames

    def read(self, size: int) -> bytes:
        data = self._reader.read(size)
        if not data:
            self._frames.check_complete()
        return data


class _ZstdFrames:
    """Passes the compressed bytes through, following the frame structure (RFC 8878) just
    enough to know whether the last frame is whole. It reads headers only, never content."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._pending = bytearray()  # bytes of a header not yet complete
        self._skip = 0  # content bytes to pass before the next header
        self._state = "magic"  # magic | frame_header | block | checksum | skippable_size
        self._checksum = False

    def read(self, size: int = -1) -> bytes:
        data = self._read(size if size and size > 0 else _CHUNK)
        self._follow(memoryview(data))
        return data

    def check_complete(self) -> None:
        if self._state != "magic" or self._pending or self._skip:
            raise EOFError("the Zstandard data is truncated")

    def _follow(self, data: memoryview) -> None:
        while data:
            if self._skip:
                step = min(self._skip, len(data))
                self._skip -= step
                data = data[step:]
                continue
            take = min(self._header_size() - len(self._pending), len(data))
            self._pending += data[:take]
            data = data[take:]
            if len(self._pending) == self._header_size():
                header = bytes(self._pending)
                self._pending.clear()
                self._advance(header)

    def _header_size(self) -> int:
        if self._state == "frame_header":
            return _frame_header_size(self._pending)
        return 3 if self._state == "block" else 4

    def _advance(self, header: bytes) -> None:
        state = self._state
        if state == "magic":
            if int.from_bytes(header, "little") in _SKIPPABLE:
                self._state = "skippable_size"
            elif header == ZSTD_MAGIC:
                self._pending += header  # the frame header's size counts from the magic
                self._state = "frame_header"
            else:
                raise ValueError("not a Zstandard frame")
        elif state == "frame_header":
            self._checksum = bool(header[4] & 0x04)
            self._state = "block"
        elif state == "block":
            value = int.from_bytes(header, "little")
            kind, size = (value >> 1) & 3, value >> 3
            self._skip = 1 if kind == 1 else size  # an RLE block holds one byte
            if value & 1:  # the frame's last block
                self._state = "checksum" if self._checksum else "magic"
        elif state == "skippable_size":
            self._skip = int.from_bytes(header, "little")
            self._state = "magic"
        else:  # the frame's checksum
            self._state = "magic"


def _frame_header_size(pending: bytearray) -> int:
    """The frame header's size (magic included), once its descriptor byte is known."""
    if len(pending) < 5:
        return 5
    descriptor = pending[4]
    single_segment = (descriptor >> 5) & 1
    dictionary = (0, 1, 2, 4)[descriptor & 3]
    content_size = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
    return 5 + (0 if single_segment else 1) + dictionary + content_size
