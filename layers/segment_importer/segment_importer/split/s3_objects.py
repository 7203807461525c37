"""Reading what the splitter needs from S3: the object's identity, its body, job files."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from segment_importer.job import JobOptions, job_file_candidates, parse_job_document

_MISSING = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True, slots=True)
class ObjectIdentity:
    etag: str
    size: int


def head(s3: Any, bucket: str, key: str) -> ObjectIdentity:
    response = s3.head_object(Bucket=bucket, Key=key)
    return ObjectIdentity(etag=response["ETag"].strip('"'), size=response["ContentLength"])


def open_body(s3: Any, bucket: str, key: str, identity: ObjectIdentity, start: int = 0) -> Any:
    """The object's streaming body from byte `start`, pinned to the ETag we derived ids from."""
    ranged = {"Range": f"bytes={start}-"} if start else {}
    return s3.get_object(Bucket=bucket, Key=key, IfMatch=f'"{identity.etag}"', **ranged)["Body"]


def read_range(s3: Any, bucket: str, key: str, identity: ObjectIdentity, start: int, end: int) -> bytes:
    """The bytes [start, end) of the object (pinned to the ETag)."""
    return open_range(s3, bucket, key, identity, start, end).read()


def open_range(s3: Any, bucket: str, key: str, identity: ObjectIdentity, start: int, end: int) -> Any:
    """A body of the bytes [start, end) of the object (pinned to the ETag); empty if none."""
    if start >= end:
        return io.BytesIO(b"")
    return s3.get_object(
        Bucket=bucket, Key=key, IfMatch=f'"{identity.etag}"', Range=f"bytes={start}-{end - 1}"
    )["Body"]


class S3ObjectHandle:
    """The object as a reader's `ObjectHandle`: a sequential read of the bytes [start, end)
    (one GetObject, opened on the first read), ranged reads of any bytes, the size. Every
    read is pinned to the ETag the message ids derive from."""

    def __init__(
        self, s3: Any, bucket: str, key: str, identity: ObjectIdentity, start: int = 0, end: int = -1
    ) -> None:
        self._s3, self._bucket, self._key, self._identity = s3, bucket, key, identity
        self._start, self._end = start, identity.size if end < 0 else end
        self._body: Any = None

    @property
    def size(self) -> int:
        return self._identity.size

    def read(self, size: int = -1, /) -> bytes:
        if self._body is None:
            self._body = open_range(self._s3, self._bucket, self._key, self._identity, self._start, self._end)
        return self._body.read(size) if size is not None and size >= 0 else self._body.read()

    def read_range(self, start: int, end: int) -> bytes:
        return read_range(self._s3, self._bucket, self._key, self._identity, start, end)


def load_job_options(s3: Any, bucket: str, key: str, defaults: JobOptions, imports_prefix: str) -> JobOptions:
    """The nearest job file's options over the stack defaults."""
    for candidate in job_file_candidates(key, imports_prefix):
        text = _read_if_exists(s3, bucket, candidate)
        if text is not None:
            return defaults.merged_with(parse_job_document(text, f"s3://{bucket}/{candidate}"))
    return defaults


def _read_if_exists(s3: Any, bucket: str, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in _MISSING:
            return None
        raise


class ProgressStream(io.RawIOBase):
    """A read-only stream that reports how many bytes have passed through it (its body's
    ranged reads, when it has them, are not counted: they are not progress)."""

    def __init__(self, body: Any, on_bytes: Callable[[int], None] | None) -> None:
        self._body = body
        self._on_bytes = on_bytes
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._body.read(size) if size is not None and size >= 0 else self._body.read()
        self.bytes_read += len(chunk)
        if self._on_bytes and chunk:
            self._on_bytes(len(chunk))
        return chunk

    @property
    def size(self) -> int:
        return int(self._body.size)

    def read_range(self, start: int, end: int) -> bytes:
        return bytes(self._body.read_range(start, end))

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)
