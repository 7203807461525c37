"""A seekable, read-only file object over ranged reads of an object, for the formats that must
seek (Parquet's footer and row groups, a ZIP's central directory and members).

`RangedFile(handle)` takes anything with `size` and `read_range(start, end)` (an S3 object
read by ranged GETs, bytes in memory, a local file) and is what pyarrow and zipfile are given.
It never reads the object whole: each read is one ranged read of the bytes asked for, and
small reads are served from a read-ahead block so a reader reading a few KB at a time does
not cost a request each.
"""

from __future__ import annotations

import io
from typing import Any, Protocol

READ_AHEAD = 1 << 20  # the least one ranged read fetches (S3 GETs cost per request)


class RangeSource(Protocol):
    """What a ranged file reads: an object's size and its bytes by range (the part of
    `handle.ObjectHandle` it needs)."""

    @property
    def size(self) -> int: ...

    def read_range(self, start: int, end: int) -> bytes: ...


class RangedFile(io.RawIOBase):
    """A seekable binary file whose reads are ranged reads of `source`.

    `ranges_read` and `bytes_fetched` count what was asked of the source (tests bound them:
    a reader that downloads the whole object shows here).
    """

    def __init__(self, source: RangeSource, read_ahead: int = READ_AHEAD) -> None:
        super().__init__()
        self._source = source
        self._size = source.size
        self._position = 0
        self._read_ahead = read_ahead
        self._block_start = 0
        self._block = b""
        self.ranges_read = 0
        self.bytes_fetched = 0

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError("negative seek position")
        self._position = target
        return target

    def read(self, size: int = -1) -> bytes:
        end = self._size if size is None or size < 0 else min(self._position + size, self._size)
        if end <= self._position:
            return b""
        data = self._from_block(self._position, end)
        if data is None:
            data = self._fetch(self._position, end)
        self._position += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _from_block(self, start: int, end: int) -> bytes | None:
        offset = start - self._block_start
        if offset >= 0 and end <= self._block_start + len(self._block):
            return self._block[offset : offset + end - start]
        return None

    def _fetch(self, start: int, end: int) -> bytes:
        """A read past the block: large reads go straight through, small ones fill a block."""
        if end - start >= self._read_ahead:
            return self._range(start, end)
        self._block_start = start
        self._block = self._range(start, min(start + self._read_ahead, self._size))
        return self._block[: end - start]

    def _range(self, start: int, end: int) -> bytes:
        self.ranges_read += 1
        data = self._source.read_range(start, end)
        self.bytes_fetched += len(data)
        if len(data) != end - start:
            raise OSError(f"a ranged read of bytes {start}-{end} returned {len(data)} bytes")
        return data
