"""bzip2 and Zstandard exports are decompressed as a stream, like gzip: multi-stream and
multi-frame files, damage and truncation as `file_unreadable` after the records before it, and
the same expansion bound against bombs."""

from __future__ import annotations

import bz2
import io

import orjson
import pytest
import zstandard

from segment_importer.read import opening
from segment_importer.read.formats import open_records


def _lines(count: int, start: int = 0) -> bytes:
    return b"".join(
        orjson.dumps({"userId": f"u{i}", "event": "E", "timestamp": "2021-01-01T00:00:00Z"}) + b"\n"
        for i in range(start, start + count)
    )


def _zstd(data: bytes, **options: object) -> bytes:
    return zstandard.ZstdCompressor(**options).compress(data)


COMPRESSORS = {"bzip2": bz2.compress, "zstd": _zstd}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_ndjson_and_csv_are_read_through_the_decompressor(kind: str) -> None:
    compress = COMPRESSORS[kind]
    records = open_records(io.BytesIO(compress(_lines(3000))), f"export.json.{kind}")
    numbers = [record.number for record in records]
    assert records.compression == kind
    assert records.format == "ndjson"
    assert numbers == list(range(1, 3001))
    csv = open_records(io.BytesIO(compress(b"userId,event\nu1,E\nu2,F\n")), "export.csv")
    assert [r.fields for r in csv] == [{"userId": "u1", "event": "E"}, {"userId": "u2", "event": "F"}]


def test_several_streams_and_frames_are_one_file() -> None:
    """pbzip2 writes one bzip2 stream per block; zstd -T and pzstd write several frames."""
    first, second = _lines(10), _lines(5, start=10)
    two_streams = bz2.compress(first) + bz2.compress(second)
    two_frames = _zstd(first, write_checksum=True) + _zstd(second, write_content_size=False)
    for data in (two_streams, two_frames):
        assert len(list(open_records(io.BytesIO(data), "export.ndjson"))) == 15


def test_a_streamed_zstd_frame_without_a_content_size_is_read() -> None:
    writer = zstandard.ZstdCompressor().compressobj()
    data = writer.compress(_lines(500)) + writer.flush()
    assert len(list(open_records(io.BytesIO(data), "export.ndjson"))) == 500


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_a_truncated_file_ends_in_file_unreadable_after_what_was_read(kind: str) -> None:
    """zstandard's own stream reader ends quietly at a cut frame: the frame check must catch it."""
    data = COMPRESSORS[kind](_lines(20000))
    records = list(open_records(io.BytesIO(data[: len(data) - 7]), "export.ndjson"))
    last = records[-1]
    assert last.reason == "file_unreadable"
    assert "truncated" in (last.detail or "")
    assert all(record.fields for record in records[:-1])
    assert len(records) > 1000


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_corrupt_data_ends_in_file_unreadable(kind: str) -> None:
    """bzip2 checks every block; a Zstandard frame is checked when it carries a checksum (the
    zstd tool writes one by default; without it, damage may decode to other bytes)."""
    compress = (lambda data: _zstd(data, write_checksum=True)) if kind == "zstd" else bz2.compress
    data = bytearray(compress(_lines(20000)))
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff" * 64
    records = list(open_records(io.BytesIO(bytes(data)), "export.ndjson"))
    assert records[-1].reason == "file_unreadable"


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_a_bomb_is_stopped_by_the_expansion_bound(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(opening, "_EXPANSION_FLOOR", 1 << 20)
    bomb = COMPRESSORS[kind](b"\n" * (64 << 20))
    records = list(open_records(io.BytesIO(bomb), "export.ndjson"))
    assert records[-1].reason == "file_unreadable"
    assert "expands more than" in (records[-1].detail or "")


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_a_continued_part_resumes_inside_the_decompressed_content(kind: str) -> None:
    data = COMPRESSORS[kind](_lines(1000))
    first = open_records(io.BytesIO(data), "export.ndjson")
    for record in first:
        if record.number == 400:
            break
    point = first.resume_point_after(400)
    assert point is not None
    rest = open_records(io.BytesIO(data), "export.ndjson", resume=point)
    assert [r.number for r in rest] == list(range(401, 1001))


@pytest.mark.parametrize("suffix", [".tsv.bz2", ".tsv.zst", ".tsv.gz"])
def test_a_compressed_tsv_is_split_on_tabs_whatever_its_header_holds(suffix: str) -> None:
    """The extension under the compression's says the format: a TSV whose header has a
    comma in a column name is still tab-separated."""
    import gzip

    compress = {".bz2": bz2.compress, ".zst": _zstd, ".gz": gzip.compress}[suffix[4:]]
    data = b"userId\tevent\tproperties.note, free text\nu1\tE\ta, b\n"
    records = open_records(io.BytesIO(compress(data)), f"export{suffix}")
    assert [r.fields for r in records] == [
        {"userId": "u1", "event": "E", "properties.note, free text": "a, b"}
    ]
