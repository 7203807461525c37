"""A file split across several splitter invocations: nothing skipped, nothing queued twice."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
from moto import mock_aws

from segment_importer.settings import SplitterSettings
from segment_importer.split.continuation import Checkpoint, PartBudget, read_task
from segment_importer.split.splitter import SplitterServices, split_import
from segment_importer_local.runner import RunOptions, RunResult, run_import
from segment_importer_local.stack import LocalStack
from segment_importer_local.template_config import StackTemplate

from .test_pipeline import received_seqs, write_csv, write_ndjson

PARTS = {"SplitRecordsPerPart": "97", "BatchMaxMessages": "40"}


def all_rejected_numbers(result: RunResult) -> list[int]:
    """Rejects of every part: `<key>.rejects.ndjson` and `<key>.rejects.partNNNN.ndjson`."""
    folder = Path(result.bucket_copy or "") / "rejects" / "local"
    numbers = []
    for path in sorted(folder.glob("*.rejects*.ndjson")):
        numbers += [orjson.loads(line)["number"] for line in path.read_bytes().splitlines()]
    return numbers


@pytest.mark.parametrize("name", ["history.ndjson", "history.ndjson.gz", "history.csv"])
def test_a_file_split_in_parts_arrives_whole_and_once(tmp_path: Path, name: str) -> None:
    export = tmp_path / name
    if name.endswith(".csv"):
        valid, invalid = write_csv(export, 1000)
    else:
        valid, invalid = write_ndjson(export, 1000, gzip_it=name.endswith(".gz"))
    result = run_import(
        RunOptions([export], out_dir=tmp_path / "out", show_progress=False, parameter_overrides=PARTS)
    )
    seqs = received_seqs(result)
    assert set(seqs) == valid
    assert max(seqs.values()) == 1, "a record was queued by two parts"
    rejected = all_rejected_numbers(result)
    assert sorted(rejected) == sorted(invalid), "a rejected record was lost or repeated across parts"
    ledger = result.files[0].ledger or {}
    assert ledger["records_read"] == 1000
    assert ledger["split_part"] == 1000 // 97  # parts 0..10: 11 invocations
    # Plain parts start at an offset, gzip parts re-read from 0, a CSV part's header is
    # read again: progress counts each byte of the stored file once.
    assert ledger["bytes_read"] == export.stat().st_size
    assert ledger["messages_queued"] == ledger["messages_delivered"] == len(valid)
    assert ledger["batches_queued"] == ledger["batches_delivered"]
    assert ledger["rejected"] == len(invalid)
    assert ledger["status"] == "COMPLETE_WITH_ERRORS"
    assert result.ok


@pytest.mark.parametrize("name", ["offsets.ndjson", "offsets.ndjson.gz", "offsets.csv", "offsets.csv.gz"])
def test_a_checkpoint_carries_the_offset_of_the_next_record(tmp_path: Path, name: str) -> None:
    """The next part starts reading at that offset instead of re-parsing what came before."""
    export = tmp_path / name
    if ".csv" in name:
        write_csv(export, 500)  # every row has a quoted cell holding a line break
        if name.endswith(".gz"):
            export.write_bytes(gzip.compress(export.read_bytes()))
    else:
        write_ndjson(export, 500, gzip_it=name.endswith(".gz"))
    content = gzip.decompress(export.read_bytes()) if name.endswith(".gz") else export.read_bytes()
    with mock_aws():
        stack = LocalStack(StackTemplate.load(), {"PreflightHost": ""}).create(write_key="k")
        key = f"imports/{name}"
        stack.s3.upload_file(str(export), stack.bucket, key)
        splitter = stack.function("SplitterFunction")
        settings = SplitterSettings.from_env(splitter.environment)
        services = SplitterServices(stack.s3, stack.sqs)
        budget = PartBudget(remaining_seconds=lambda: 900.0, max_records=123)
        report = split_import(services, stack.bucket, key, settings, budget=budget)
        assert report.status == "CONTINUING"
        (message,) = stack.sqs.receive_message(QueueUrl=stack.queue_urls["ContinuationQueue"])["Messages"]
        checkpoint = read_task(message["Body"])
        assert isinstance(checkpoint, Checkpoint)
    assert checkpoint.after_record == 123
    assert checkpoint.compression == ("gzip" if name.endswith(".gz") else "none")
    if ".csv" in name:  # the header, then two physical lines per row
        header = content.splitlines(keepends=True)[0]
        assert checkpoint.resume_header_end == len(header)
        assert checkpoint.resume_offset == len(b"".join(content.splitlines(keepends=True)[: 1 + 2 * 123]))
        assert content[checkpoint.resume_offset :].startswith(b"user-124,")
    else:
        assert checkpoint.resume_offset == len(b"".join(content.splitlines(keepends=True)[:123]))
