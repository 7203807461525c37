"""The object a reader reads: sequential `read(n)`, `read_range(start, end)` and `size`.

Streaming formats (NDJSON, CSV, JSON arrays) only ever call `read`; a format that must seek
(Parquet's footer, a ZIP's central directory) reads ranges. The splitter builds one from S3
(`split.s3_objects.S3ObjectHandle`); tests and local code build one from bytes or a file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Protocol


class ObjectHandle(Protocol):
    """An export object: read from its start (or the handle's own start) or by byte range."""

    @property
    def size(self) -> int:
        """The object's size in bytes."""
        ...

    def read(self, size: int = -1, /) -> bytes:
        """The next bytes of a sequential read (at most `size`; all of the rest for -1);
        b"" at the end."""
        ...

    def read_range(self, start: int, end: int) -> bytes:
        """The bytes [start, end) of the object, wherever the sequential read is."""
        ...


class BytesHandle:
    """An object held in memory."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._stream = io.BytesIO(data)

    @property
    def size(self) -> int:
        return len(self._data)

    def read(self, size: int = -1, /) -> bytes:
        return self._stream.read(size)

    def read_range(self, start: int, end: int) -> bytes:
        return self._data[start:end]


class FileHandle:
    """An object in a local file; ranged reads use their own offsets (`os.pread`), so they
    never move the sequential read."""

    def __init__(self, path: str | Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close() or the context manager
        self._size = os.fstat(self._file.fileno()).st_size

    @property
    def size(self) -> int:
        return self._size

    def read(self, size: int = -1, /) -> bytes:
        return self._file.read(size)

    def read_range(self, start: int, end: int) -> bytes:
        return os.pread(self._file.fileno(), max(end - start, 0), start)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FileHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
