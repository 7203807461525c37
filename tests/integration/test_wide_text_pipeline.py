"""UTF-16 files through the whole local pipeline (moto + the embedded Segment endpoint): a
PowerShell-written NDJSON and an Excel "Unicode text" sheet arrive as their UTF-8 copies do,
split in several parts (a later part re-reads the decoded text and skips what was handled)."""

from __future__ import annotations

import codecs
import gzip
from pathlib import Path

import pytest

from segment_importer_local.runner import RunOptions, run_import

from .test_continuation import all_rejected_numbers
from .test_pipeline import received_seqs, write_csv, write_ndjson

PARTS = {"SplitRecordsPerPart": "97", "BatchMaxMessages": "40"}


def as_utf16_le(path: Path, *, gzip_it: bool = False) -> None:
    """The file re-encoded as PowerShell's `Out-File -Encoding Unicode` writes it."""
    text = path.read_bytes().decode("utf-8-sig")
    data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    path.write_bytes(gzip.compress(data) if gzip_it else data)


@pytest.mark.parametrize("name", ["history.ndjson", "history.ndjson.gz", "sheet.csv"])
def test_a_utf16_file_split_in_parts_arrives_whole_and_once(tmp_path: Path, name: str) -> None:
    export = tmp_path / name
    if name.endswith(".csv"):
        valid, invalid = write_csv(export, 400)
    else:
        valid, invalid = write_ndjson(export, 400)
    as_utf16_le(export, gzip_it=name.endswith(".gz"))

    result = run_import(
        RunOptions([export], out_dir=tmp_path / "out", show_progress=False, parameter_overrides=PARTS)
    )

    seqs = received_seqs(result)
    assert set(seqs) == valid
    assert max(seqs.values()) == 1, "a record was queued by two parts"
    assert sorted(all_rejected_numbers(result)) == sorted(invalid)
    ledger = result.files[0].ledger or {}
    assert ledger["records_read"] == 400
    assert ledger["split_part"] == 400 // 97
    report = result.files[0].report
    assert any("UTF-16 LE" in warning for warning in report["warnings"])
