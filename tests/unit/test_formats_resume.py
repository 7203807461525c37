"""Resuming an NDJSON read at a line: by a ranged read (plain) or by skipping content (gzip)."""

from __future__ import annotations

import gzip
import io
import json

import pytest

from segment_importer.formats import FileFormatError, ResumePoint, open_records


def export(lines: int) -> bytes:
    rows = []
    for number in range(1, lines + 1):
        if number % 13 == 0:
            rows.append("")  # blank lines count as lines
        elif number % 17 == 0:
            rows.append('{"broken": ')
        else:
            rows.append(json.dumps({"n": number, "text": "é" * (number % 5)}))
    return ("\ufeff" + "\r\n".join(rows) + "\r\n").encode()


def records_after(data: bytes, key: str, stop: int) -> tuple[list[tuple[int, object]], ResumePoint | None]:
    stream = open_records(io.BytesIO(data), key, max_record_bytes=4096)
    for record in stream:
        if record.number == stop:
            return [], stream.resume_point_after(stop)
    return [], None


def numbered(records: object) -> list[tuple[int, object, object]]:
    return [(r.number, r.fields, r.reason) for r in records]  # type: ignore[attr-defined]


@pytest.mark.parametrize("stop", [1, 2, 50, 233, 999])
def test_a_ranged_read_from_the_resume_point_yields_exactly_the_rest(stop: int) -> None:
    data = export(1000)
    everything = numbered(open_records(io.BytesIO(data), "x.ndjson"))
    _, point = records_after(data, "x.ndjson", stop)
    assert point is not None
    assert point.line == stop + 1
    rest = open_records(io.BytesIO(data[point.offset :]), "x.ndjson", resume=point, stream_at_resume=True)
    assert numbered(rest) == [entry for entry in everything if entry[0] > stop]


@pytest.mark.parametrize("stop", [1, 400, 998])
def test_gzip_resumes_by_skipping_the_decompressed_content(stop: int) -> None:
    data = gzip.compress(export(1000))
    everything = numbered(open_records(io.BytesIO(data), "x.ndjson.gz"))
    _, point = records_after(data, "x.ndjson.gz", stop)
    assert point is not None
    rest = open_records(io.BytesIO(data), "x.ndjson.gz", resume=point)
    assert numbered(rest) == [entry for entry in everything if entry[0] > stop]


def test_resume_points_cross_chunk_boundaries() -> None:
    line = json.dumps({"pad": "x" * 300}) + "\n"
    data = (line * 12_000).encode()  # several 1 MiB chunks
    for stop in (3400, 3500, 11_999):
        _, point = records_after(data, "x.ndjson", stop)
        assert point is not None
        assert point.offset == stop * len(line)


def test_only_ndjson_can_be_resumed_at_a_line() -> None:
    with pytest.raises(FileFormatError):
        open_records(io.BytesIO(b"a,b\n1,2\n"), "x.csv", resume=ResumePoint(0, 5), stream_at_resume=True)
