"""The local run's exports, served from the files on disk instead of from moto's S3.

moto holds an uploaded object in memory: CompleteMultipartUpload joins the parts (about
three times the file, for a moment) and GetObject answers with the whole object's bytes,
held while the splitter streams them. A local run does not need moto to hold the export:
`DiskExports` answers HeadObject and GetObject (ranges and If-Match included) for the
exports it was given from the files themselves, and the upload is skipped.

What a handler sees stays what moto (and S3) would give it: the ETag is the one boto3's
`upload_file` gets (`s3_etag`), the answers are built as HTTP responses and parsed by
botocore's own parser, so errors are the same ClientErrors (PreconditionFailed, InvalidRange,
HEAD's bare 412 and 416). The answer is given in `before-call`, after `before-parameter-build`,
so the IAM guard's check of the call still comes first. A write to a served key (PutObject,
a multipart upload, a copy onto it, a delete) ends the serving: moto's object answers then.

Left out: the object's checksums (boto3 sends CRC32s; moto returns them on a full GetObject),
which nothing here reads, and listings: ListObjects does not show a served export.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSResponse
from botocore.endpoint import convert_to_response_dict
from botocore.parsers import create_parser
from s3transfer.utils import ChunksizeAdjuster

_CONTEXT_KEY = "segment_importer_local.disk_export"
_READS = ("GetObject", "HeadObject")
# Calls after which a served key holds something else, or nothing (moto answers then).
_WRITES = ("PutObject", "CreateMultipartUpload", "CopyObject", "DeleteObject")
_PRECONDITION_FAILED = ("PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
_INVALID_RANGE = ("InvalidRange", "The requested range is not satisfiable")


def s3_etag(path: Path) -> str:
    """The ETag S3 gives the file when boto3's `upload_file` (or `aws s3 cp`) uploads it: the
    MD5 of the bytes below the multipart threshold; from it up, the MD5 of the parts' MD5s and
    the number of parts (a file of exactly the threshold is one part: `md5-1`)."""
    config = TransferConfig()
    size = path.stat().st_size
    with path.open("rb") as stream:
        if size < config.multipart_threshold:
            return hashlib.file_digest(stream, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()
        part_size = ChunksizeAdjuster().adjust_chunksize(config.multipart_chunksize, size)
        digests = []
        while chunk := stream.read(part_size):
            digests.append(hashlib.md5(chunk, usedforsecurity=False).digest())
    combined = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
    return f"{combined}-{len(digests)}"


@dataclass(frozen=True, slots=True)
class DiskObject:
    path: Path
    size: int
    etag: str  # unquoted, as the S3 event carries it
    last_modified: datetime
    server_side_encryption: str | None  # the bucket's default, as S3 applies it

    def headers(self) -> dict[str, str]:
        headers = {
            "accept-ranges": "bytes",
            "content-type": "binary/octet-stream",  # what S3 stores when upload_file sets none
            "etag": f'"{self.etag}"',
            "last-modified": format_datetime(self.last_modified, usegmt=True),
        }
        if self.server_side_encryption:
            headers["x-amz-server-side-encryption"] = self.server_side_encryption
        return headers


class DiskExports:
    """The exports served from disk, by (bucket, key); `serving` answers for them."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str], DiskObject] = {}
        self.reads = 0  # GetObject and HeadObject calls answered from disk

    def add(self, bucket: str, key: str, path: Path, server_side_encryption: str | None = None) -> DiskObject:
        """Serve `path` as s3://bucket/key from now on, as if `upload_file` had put it there."""
        served = DiskObject(
            path=path.resolve(),
            size=path.stat().st_size,
            etag=s3_etag(path),
            last_modified=datetime.now(UTC).replace(microsecond=0),
            server_side_encryption=server_side_encryption,
        )
        self._objects[(bucket, key)] = served
        return served

    def __contains__(self, bucket_key: tuple[str, str]) -> bool:
        return bucket_key in self._objects

    @contextmanager
    def serving(self) -> Iterator[DiskExports]:
        """Answer for the served exports on every client made from boto3's default session
        while the block runs (the handlers build theirs from it, as chaos's faults rely on)."""
        events = boto3._get_default_session()._session.get_component("event_emitter")
        registered = [(f"before-parameter-build.s3.{name}", self._mark) for name in _READS]
        registered += [(f"before-call.s3.{name}", self._answer) for name in _READS]
        registered += [(f"before-parameter-build.s3.{name}", self._forget) for name in _WRITES]
        for event, handler in registered:
            events.register(event, handler)
        try:
            yield self
        finally:
            for event, handler in registered:
                events.unregister(event, handler)

    def _mark(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        served = self._objects.get((params.get("Bucket", ""), params.get("Key", "")))
        if served is not None and "VersionId" not in params:
            context[_CONTEXT_KEY] = (served, params.get("Range"), params.get("IfMatch"))

    def _forget(self, params: dict[str, Any], **_: Any) -> None:
        self._objects.pop((params.get("Bucket", ""), params.get("Key", "")), None)

    def _answer(
        self, model: Any, context: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        marked = context.get(_CONTEXT_KEY)
        if marked is None:
            return None
        served, byte_range, if_match = marked
        self.reads += 1
        http = _response(served, model.http["method"], byte_range, if_match)
        parsed = create_parser(model.metadata["protocol"]).parse(
            convert_to_response_dict(http, model), model.output_shape
        )
        return http, parsed


def _response(served: DiskObject, method: str, byte_range: str | None, if_match: str | None) -> AWSResponse:
    """The HTTP answer S3 (as moto emulates it) gives the request."""
    headers = served.headers()
    if if_match is not None and if_match.strip('"') != served.etag:
        return _error(method, 412, _PRECONDITION_FAILED, Condition="If-Match")
    span = _span(byte_range, served.size)
    if span is None:
        return _error(
            method, 416, _INVALID_RANGE, ActualObjectSize=str(served.size), RangeRequested=byte_range
        )
    start, end, ranged = span
    headers["content-length"] = str(end - start)
    if ranged:
        headers["content-range"] = f"bytes {start}-{end - 1}/{served.size}"
    body = _FileSpan(served.path, start, end) if method == "GET" else _Bytes(b"")
    status = 206 if ranged else 200
    return AWSResponse("local-export", status, headers, body)


def _span(byte_range: str | None, size: int) -> tuple[int, int, bool] | None:
    """[start, end) of the answer and whether it is a ranged one (206); None when S3 refuses
    the range (416). A missing range, or one S3 ignores, is the whole object. The rules are
    S3's, as moto applies them."""
    whole = (0, size, False)
    if not byte_range or "=" not in byte_range or "," in byte_range:
        return whole
    try:
        first, last = (int(part) if part else None for part in byte_range.split("=", 1)[1].split("-"))
    except ValueError:
        return whole
    if (first is None and last == 0) or (first is not None and first > size - 1):
        return None
    if first is not None:
        end = size - 1 if last is None else min(last, size - 1)
    elif last is not None:  # a suffix: the last `last` bytes
        first, end = size - min(last, size), size - 1
    else:
        return whole
    if first > end:
        return whole
    return first, end + 1, True


def _error(method: str, status: int, code_and_message: tuple[str, str], **details: Any) -> AWSResponse:
    """S3's error answer: an XML document, but for HEAD, which has no body (botocore then
    names the error by its status, as with S3)."""
    headers = {"content-type": "application/xml"}
    if method == "HEAD":
        return AWSResponse("local-export", status, headers, _Bytes(b""))
    fields = {"Code": code_and_message[0], "Message": code_and_message[1], **details}
    document = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in fields.items())
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error>{document}</Error>".encode()
    return AWSResponse("local-export", status, headers, _Bytes(body))


class _Bytes(io.BytesIO):
    """A response body in memory (errors, HEAD), as botocore reads a raw HTTP body."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


class _FileSpan(io.RawIOBase):
    """The bytes [start, end) of a file as a raw HTTP body: opened on the first read, closed
    at its end, never more than the read asked for in memory."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        self._path, self._position, self._end = path, start, end
        self._file: Any = None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        left = self._end - self._position
        if size is None or size < 0 or size > left:
            size = left
        if size <= 0:
            self.close()
            return b""
        if self._file is None:
            self._file = self._path.open("rb")
            self._file.seek(self._position)
        chunk = self._file.read(size)
        self._position += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def stream(self, amt: int = 2**16, **_: Any) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()
