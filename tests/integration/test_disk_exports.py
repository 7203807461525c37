"""The local run serves its exports from disk (`disk_exports`): what a handler sees of the
object is what moto gives for the same file uploaded with boto3's `upload_file`, answers and
errors alike, and the run puts none of the export's bytes into moto."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from segment_importer_local.disk_exports import DiskExports, s3_etag
from segment_importer_local.runner import RunOptions, run_import

BUCKET = "disk-exports-test"
UPLOADED, SERVED = "imports/uploaded/a b+c.ndjson", "imports/served/a b+c.ndjson"
MIB = 1024 * 1024
# The fields that differ between any two answers, whoever gives them.
_PER_REQUEST = {"ResponseMetadata", "LastModified", "Body"}
_CHECKSUMS = {"ChecksumCRC32", "ChecksumType"}  # not served from disk (see the module)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_encryption(
            Bucket=BUCKET,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        yield client


def _file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


@pytest.mark.parametrize("size", [0, 100, 8 * MIB - 1, 8 * MIB, 8 * MIB + 1, 17 * MIB])
def test_the_etag_is_the_one_upload_file_gets(s3: Any, tmp_path: Path, size: int) -> None:
    # A file of exactly 8 MiB is one part to upload_file (md5-1): the preview said the MD5.
    path = _file(tmp_path / "export.bin", size)
    s3.upload_file(str(path), BUCKET, UPLOADED)
    assert s3.head_object(Bucket=BUCKET, Key=UPLOADED)["ETag"] == f'"{s3_etag(path)}"'


def _served(s3: Any, path: Path) -> DiskExports:
    s3.upload_file(str(path), BUCKET, UPLOADED)
    exports = DiskExports()
    exports.add(BUCKET, SERVED, path, server_side_encryption="AES256")
    return exports


def _answer(call: Any, key: str, **arguments: Any) -> tuple[str, Any]:
    try:
        response = call(Bucket=BUCKET, Key=key, **arguments)
    except ClientError as error:
        return "error", (error.response["Error"], error.response["ResponseMetadata"]["HTTPStatusCode"])
    body = response["Body"].read() if "Body" in response else None
    fields = {name: value for name, value in response.items() if name not in _PER_REQUEST | _CHECKSUMS}
    return "ok", (fields, response["ResponseMetadata"]["HTTPStatusCode"], body)


REQUESTS = [
    {},
    {"Range": "bytes=5-"},
    {"Range": "bytes=5-9"},
    {"Range": "bytes=0-"},
    {"Range": "bytes=-7"},
    {"Range": "bytes=5-99999999999"},
    {"Range": "bytes=99999999-"},
    {"Range": "bytes=9-5"},
    {"Range": "bytes=1-2,4-5"},
    {"IfMatch": '"not-the-etag"'},
    {"IfMatch": "not-the-etag", "Range": "bytes=99999999-"},
]


@pytest.mark.parametrize("arguments", REQUESTS, ids=[json.dumps(r) for r in REQUESTS])
@pytest.mark.parametrize("operation", ["get_object", "head_object"])
def test_a_served_export_answers_as_moto_answers_the_uploaded_file(
    s3: Any, tmp_path: Path, operation: str, arguments: dict[str, str]
) -> None:
    path = _file(tmp_path / "export.bin", 9 * MIB)  # a multipart ETag
    exports = _served(s3, path)
    with exports.serving():
        client = boto3.client("s3")  # made from the default session, as the handlers' are
        etag = client.head_object(Bucket=BUCKET, Key=UPLOADED)["ETag"]
        served = _answer(getattr(client, operation), SERVED, **arguments)
        uploaded = _answer(getattr(client, operation), UPLOADED, **arguments)
        pinned = _answer(getattr(client, operation), SERVED, **{"IfMatch": etag, **arguments})
    assert served == uploaded
    assert exports.reads == 2  # the served key's calls, from disk (not moto's: it has none)
    if "IfMatch" not in arguments:  # pinned to the right ETag: the same answer
        assert pinned == served


def test_a_served_export_streams_in_reads_of_the_size_asked(s3: Any, tmp_path: Path) -> None:
    path = _file(tmp_path / "export.bin", 3 * MIB + 5)
    exports = _served(s3, path)
    with exports.serving():
        body = boto3.client("s3").get_object(Bucket=BUCKET, Key=SERVED, Range="bytes=10-")["Body"]
        sizes = Counter(len(chunk) for chunk in iter(lambda: body.read(MIB), b""))
    assert sizes == Counter({MIB: 2, MIB - 5: 1})  # 3 MiB - 5 bytes from byte 10


def test_a_write_to_a_served_key_ends_the_serving(s3: Any, tmp_path: Path) -> None:
    exports = _served(s3, _file(tmp_path / "export.bin", 100))
    with exports.serving():
        client = boto3.client("s3")
        client.put_object(Bucket=BUCKET, Key=SERVED, Body=b"replaced")
        assert client.get_object(Bucket=BUCKET, Key=SERVED)["Body"].read() == b"replaced"
        client.delete_object(Bucket=BUCKET, Key=SERVED)
        with pytest.raises(ClientError, match="NoSuchKey"):
            client.get_object(Bucket=BUCKET, Key=SERVED)
    assert (BUCKET, SERVED) not in exports


def test_the_local_run_puts_none_of_the_export_into_moto(tmp_path: Path) -> None:
    export = tmp_path / "history.ndjson"
    events = [
        {"type": "track", "userId": f"u{n}", "event": "Played", "timestamp": 1_600_000_000 + n}
        for n in range(300)
    ]
    export.write_text("".join(json.dumps(event) + "\n" for event in events))
    written: Counter[str] = Counter()

    def count_writes(params: dict[str, Any], model: Any, **_: Any) -> None:
        if params.get("Key", "").endswith(export.name):
            written[model.name] += 1

    events_emitter = boto3._get_default_session()._session.get_component("event_emitter")
    for name in ("PutObject", "CreateMultipartUpload", "UploadPart"):
        events_emitter.register(f"before-parameter-build.s3.{name}", count_writes)
    try:
        result = run_import(RunOptions([export], out_dir=tmp_path / "out", show_progress=False))
    finally:
        for name in ("PutObject", "CreateMultipartUpload", "UploadPart"):
            events_emitter.unregister(f"before-parameter-build.s3.{name}", count_writes)
    assert result.ok
    assert result.files[0].messages_delivered == 300
    assert written == Counter()
    # The ETag the splitter derived message ids from is the one upload_file would give.
    assert result.files[0].report["etag"] == s3_etag(export)
