"""Hostile input: every case ends in a reasoned reject or a FAILED report, in bounded memory and work.

A crash here would be a crash loop in AWS (S3 retries the splitter twice, then it goes to the
failure queue with no report). So each case runs the splitter's S3- and SQS-free core
(`splitter.split_stream`), treats the errors `split_import` turns into a FAILED report the
same way, and fails on anything else.

Each case runs in a Python process of its own (`python -m tests.unit.test_hostile_input
CASE`), so its peak resident memory (VmHWM) is its own: the test asserts how much it grew
after the imports and the input generators were set up. The inputs are generated lazily
(`LazyStream.read(n)` hands out pieces of a few fixed chunks): a 2 GB line is never in memory,
and a 10 MB gzip bomb is one 65 KB gzip member handed out 160 times.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from itertools import chain, islice, repeat
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20
GIB = 1 << 30
# Peak RSS growth allowed per case. What the reader holds at most: 1 MiB source chunks and a
# 1 MiB BufferedReader, one record up to 1 MiB (max_record_bytes) plus one chunk, gzip's
# window, the rejects spool's 8 MiB in memory, a CSV row as a list of cells. Measured: 3-13
# MiB. Materialising a 2 GB line, or ijson's quadratic prefixes at 100k levels, is gigabytes.
RSS_BOUND_MIB = 64
# Work is bounded by counts, never seconds (a loaded machine makes any time bound flaky): the
# source is read in pieces of kilobytes, once (measured: 8 KiB to 1 MiB a read), never a byte or a
# line at a time, and each record costs at most one reject line.
MIN_BYTES_PER_READ = 4096
# A reject line holds a 4,096-character excerpt of a raw record (records.RAW_EXCERPT_CHARS),
# JSON-escaped (at most 6 bytes a character) plus the message: never the gigabytes it came from.
REJECT_LINE_BOUND = 6 * 4096 + 1024
TINY_BAD_LINES = 500_000


# ---- lazy inputs ---------------------------------------------------------------------------


class LazyStream:
    """A source with `read(n)` over chunks made on demand; counts what the reader took."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")
        self.bytes_read = 0
        self.reads = 0  # calls of read(): work is bounded by counts, never by seconds

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if not self._buffer:
            self._buffer = memoryview(next(self._chunks, b""))
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
        self.bytes_read += len(data)
        return data


def repeated(chunk: bytes, total: int) -> Iterator[bytes]:
    """`total` bytes of `chunk` repeated (the last piece cut)."""
    whole, rest = divmod(total, len(chunk))
    return chain(repeat(chunk, whole), [chunk[:rest]] if rest else [])


def gzip_member(data: bytes, times: int = 1) -> bytes:
    """One gzip member of `data` repeated `times` times, compressed piece by piece."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as member:
        for _ in range(times):
            member.write(data)
    return buffer.getvalue()


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


_A_MIB = b"A" * MIB


@cache
def zeros_64_mib() -> bytes:
    return gzip_member(bytes(MIB), 64)  # about 65 KB


@cache
def blank_lines_64_mib(newline: bytes) -> bytes:
    return gzip_member(newline * (MIB // len(newline)), 64)


@cache
def as_64_mib() -> bytes:
    return gzip_member(_A_MIB, 64)


_EVENT = b'{"userId":"u1","event":"Played","timestamp":"2020-01-01T00:00:00Z","properties":'


def million_column_header() -> Iterator[bytes]:
    """c0,c1,...,c999999 (about 7 MB), made 10,000 names at a time."""
    for start in range(0, 1_000_000, 10_000):
        names = b",".join(b"c%d" % i for i in range(start, start + 10_000))
        yield names + (b"\n" if start + 10_000 == 1_000_000 else b",")


@dataclass(frozen=True)
class Case:
    key: str
    chunks: Callable[[], Iterator[bytes]]


CASES: dict[str, Case] = {
    # 10 MB of gzip (160 members of 64 MiB of zeros): 10 GiB if it were read to the end.
    "gzip_bomb_zeros": Case("imports/bomb.csv.gz", lambda: repeat(zeros_64_mib(), 160)),
    # The same size of one endless NDJSON line.
    "gzip_bomb_endless_line": Case(
        "imports/bomb.ndjson.gz", lambda: chain([gzip_member(b'{"userId":"')], repeat(as_64_mib(), 160))
    ),
    # The same size of nothing but blank lines (LF, then CRLF): counted, never parsed one by one.
    "gzip_bomb_blank_lines": Case("imports/blank.ndjson.gz", lambda: repeat(blank_lines_64_mib(b"\n"), 160)),
    "gzip_bomb_blank_crlf_lines": Case(
        "imports/blank.ndjson.gz", lambda: repeat(blank_lines_64_mib(b"\r\n"), 160)
    ),
    # 2 GiB without a newline, plain: the reader skips to the end of the line in bounded memory.
    "ndjson_2gb_single_line": Case(
        "imports/line.ndjson", lambda: chain([b'{"userId":"'], repeated(_A_MIB, 2 * GIB), [b'"}\n'])
    ),
    "csv_2gb_header_line": Case("imports/line.csv", lambda: repeated(b"A" * MIB, 2 * GIB)),
    "csv_2gb_data_line": Case(
        "imports/line.csv", lambda: chain([b"userId,event\n"], repeated(b"A" * MIB, 2 * GIB))
    ),
    # 100k levels of nesting, in each place a reader meets it.
    "json_array_nested_100k": Case("imports/deep.json", lambda: iter([b"[" + nested(100_000) + b"]"])),
    "json_array_object_nested_100k": Case(
        "imports/deep.json",
        lambda: iter([b"[" + _EVENT + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}]"]),
    ),
    "ndjson_nested_100k": Case(
        "imports/deep.ndjson", lambda: iter([_EVENT + b'{"a":' + nested(100_000) + b"}}\n"])
    ),
    # Deeper than orjson writes (255) but shallower than it reads (1024): the rejects file
    # has to cope.
    "ndjson_nested_600": Case(
        "imports/deep.ndjson", lambda: iter([_EVENT + b'{"a":' + nested(600) + b"}}\n"])
    ),
    "json_array_nested_600": Case("imports/deep.json", lambda: iter([b"[" + nested(600) + b"]"])),
    # A CSV cell holding JSON is parsed (coercion): the same depths reach the rejects file.
    "csv_nested_json_cell_600": Case(
        "imports/deep.csv",
        lambda: iter([b"userId,event,timestamp,properties.x\nu1,E,1600000000,", nested(600), b"\n"]),
    ),
    # Just within the reader's depth limit: too deep for repr() as well.
    "json_array_nested_1020": Case("imports/deep.json", lambda: iter([b"[" + nested(1020) + b"]"])),
    "document_head_nested_100k": Case(
        "imports/deep.json", lambda: iter([b'{"batch": [], "x": ' + nested(100_000) + b"}"])
    ),
    # A million columns: in the header (about 7 MB, over the record limit), and in a row.
    "csv_million_column_header": Case("imports/wide.csv", lambda: million_column_header()),
    "csv_million_field_row": Case(
        "imports/wide.csv", lambda: iter([b"userId,event,timestamp\n", b"u1" + b"," * 999_999 + b"\n"])
    ),
    # Invalid UTF-8 in every format, and in a CSV header.
    "ndjson_invalid_utf8": Case(
        "imports/bad.ndjson",
        lambda: iter([b'{"userId":"u\xff\xfe","event":"E","timestamp":1600000000}\n' * 3]),
    ),
    "csv_invalid_utf8_row": Case(
        "imports/bad.csv", lambda: iter([b"userId,event,timestamp\nu\xff,E,1600000000\nu2,E,1600000000\n"])
    ),
    "csv_invalid_utf8_header": Case("imports/bad.csv", lambda: iter([b"user\xffId,event\nu1,E\n"])),
    "json_array_invalid_utf8": Case(
        "imports/bad.json",
        lambda: iter([b'[{"userId":"u1","event":"E","timestamp":1600000000},', b'{"userId":"\xff"}]']),
    ),
    # A JSON array whose one element never ends (2 GiB of one string).
    "json_array_huge_element": Case(
        "imports/huge.json", lambda: chain([b'[{"userId":"'], repeated(_A_MIB, 2 * GIB), [b'"}]'])
    ),
    # Many tiny bad lines: each makes a reject line of ~120 bytes (60x the input).
    "ndjson_many_tiny_bad_lines": Case(
        "imports/tiny.ndjson", lambda: iter([b'{"userId":"u1"}\n', b"x\n" * TINY_BAD_LINES])
    ),
}


def expected(case: str) -> Callable[[dict[str, Any]], None]:
    """What each case must end in (a function asserting on the case's summary)."""

    def rejects(**reasons: int) -> Callable[[dict[str, Any]], None]:
        def check(summary: dict[str, Any]) -> None:
            assert summary["status"] == "QUEUED", summary
            assert summary["rejected_by_reason"] == reasons, summary

        return check

    def failed(message: str) -> Callable[[dict[str, Any]], None]:
        def check(summary: dict[str, Any]) -> None:
            assert summary["status"] == "FAILED", summary
            assert message in summary["error"], summary

        return check

    return {
        "gzip_bomb_zeros": failed("the CSV header line is longer than the record size limit"),
        "gzip_bomb_endless_line": rejects(record_too_large=1, file_unreadable=1),
        "gzip_bomb_blank_lines": rejects(file_unreadable=1),
        "gzip_bomb_blank_crlf_lines": rejects(file_unreadable=1),
        "ndjson_2gb_single_line": rejects(record_too_large=1),
        "csv_2gb_header_line": failed("the CSV header line is longer than the record size limit"),
        "csv_2gb_data_line": rejects(record_too_large=1),
        "json_array_nested_100k": rejects(file_unreadable=1),
        "json_array_object_nested_100k": rejects(file_unreadable=1),
        "ndjson_nested_100k": rejects(invalid_json=1),
        "ndjson_nested_600": rejects(invalid_field=1),
        "json_array_nested_600": rejects(not_an_object=1),
        "json_array_nested_1020": rejects(not_an_object=1),
        "csv_nested_json_cell_600": rejects(invalid_field=1),
        # The head is scanned for a document key; the document itself is nested too deeply.
        "document_head_nested_100k": rejects(file_unreadable=1),
        "csv_million_column_header": failed("the CSV header line is longer than the record size limit"),
        "csv_million_field_row": rejects(csv_field_count=1),
        "ndjson_invalid_utf8": rejects(invalid_utf8=3),
        "csv_invalid_utf8_row": rejects(invalid_utf8=1),
        "csv_invalid_utf8_header": failed("the CSV header is not valid UTF-8"),
        "json_array_invalid_utf8": rejects(file_unreadable=1),
        "json_array_huge_element": rejects(file_unreadable=1),
        "ndjson_many_tiny_bad_lines": rejects(missing_timestamp=1, invalid_json=TINY_BAD_LINES),
    }[case]


# ---- the child process ------------------------------------------------------------------


class _UploadCounter:
    """Stands in for the S3 client: reads what RejectsWriter.upload sends, line by line."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0
        self.longest_line = 0
        self.last_line: dict[str, Any] | None = None

    def upload_fileobj(self, fileobj: Any, bucket: str, key: str, ExtraArgs: Any = None) -> None:  # noqa: N803
        for line in fileobj:
            self.bytes += len(line)
            self.lines += 1
            self.longest_line = max(self.longest_line, len(line))
            self.last_line = orjson.loads(line)  # every line is JSON


def _memory_bytes(field: str) -> int:
    """VmRSS (resident now) or VmHWM (the peak) of this process, from /proc/self/status.

    Not ru_maxrss: Linux carries that over execve from the forked copy of the parent, so it
    would count the pytest process's own memory.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def _reset_peak() -> None:
    """Make VmHWM start again from the current RSS (Linux 4.0+); harmless where refused."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def run_case(name: str, *, rejects_max_bytes: int | None = None) -> dict[str, Any]:
    """Split one case as split_import would; returns a summary (in the child process)."""
    from segment_importer.batch.packing import BatchLimits
    from segment_importer.job import JobOptions, JobOptionsError
    from segment_importer.read.formats import FileFormatError
    from segment_importer.split.splitter import CountingSink, split_stream
    from segment_importer.track.rejects import RejectsWriter
    from segment_importer.track.report import ImportReport

    case = CASES[name]
    stream = LazyStream(case.chunks())
    rejects = RejectsWriter() if rejects_max_bytes is None else RejectsWriter(max_bytes=rejects_max_bytes)
    report = ImportReport(bucket="b", key=case.key, etag="e", size_bytes=0)
    _reset_peak()
    rss_before = _memory_bytes("VmRSS")
    try:
        split_stream(stream, report, JobOptions(), BatchLimits(), CountingSink(), rejects)
        report.status = "QUEUED"
    except (JobOptionsError, FileFormatError) as error:  # what split_import reports as FAILED
        report.status, report.error = "FAILED", str(error)
    upload = _UploadCounter()
    rejects.upload(upload, "b", "rejects/x")
    rejects.close()
    peak = _memory_bytes("VmHWM")
    return {
        "status": report.status,
        "error": report.error,
        "records_read": report.records_read,
        "rejected_by_reason": dict(rejects.by_reason),
        "source_bytes_read": stream.bytes_read,
        "source_reads": stream.reads,
        "rss_growth_mib": round((peak - rss_before) / MIB, 1),
        "rejects_bytes": upload.bytes,
        "rejects_lines": upload.lines,
        "rejects_longest_line": upload.longest_line,
        "rejects_last_line": upload.last_line,
    }


def run_in_child(name: str, *extra: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.unit.test_hostile_input", name, *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, f"{name} crashed the splitter:\n{completed.stderr[-3000:]}"
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ---- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_ends_in_a_reasoned_outcome_in_bounded_memory_and_work(name: str) -> None:
    summary = run_in_child(name)

    expected(name)(summary)
    assert summary["rss_growth_mib"] < RSS_BOUND_MIB, summary
    assert summary["source_reads"] <= summary["source_bytes_read"] // MIN_BYTES_PER_READ + 16, summary
    assert summary["rejects_lines"] <= summary["records_read"] + 1, summary  # + rejects_omitted
    # However large the input, a reject line holds a bounded excerpt of it.
    assert summary["rejects_longest_line"] < REJECT_LINE_BOUND, summary
    if summary["status"] == "QUEUED":  # every reject is listed: no case reaches the 1 GiB cap
        assert summary["rejects_lines"] == sum(summary["rejected_by_reason"].values()), summary


def test_gzip_bombs_are_not_read_to_their_end() -> None:
    """10 MB of gzip that would expand to 10 GiB: reading stops at the expansion guard."""
    for name in ("gzip_bomb_zeros", "gzip_bomb_endless_line", "gzip_bomb_blank_lines"):
        summary = run_in_child(name)
        assert summary["source_bytes_read"] < 2 * MIB, summary
    last = run_in_child("gzip_bomb_endless_line")["rejects_last_line"]
    assert last["reason"] == "file_unreadable"
    assert "expands more than 400-fold" in last["message"]
    assert "decompression bomb" in last["message"]


def test_an_endless_csv_header_fails_without_reading_to_its_end() -> None:
    summary = run_in_child("csv_2gb_header_line")
    assert summary["source_bytes_read"] < 4 * MIB, summary


def test_too_deep_json_says_so() -> None:
    last = run_in_child("json_array_nested_100k")["rejects_last_line"]
    assert (
        last["message"] == "JSON array element 1 is nested deeper than 1024 levels; the rest cannot be read"
    )


def test_a_record_too_deep_to_write_is_kept_cut_in_the_rejects_file() -> None:
    """orjson writes 255 levels at most: the record is kept, cut at 200, instead of crashing."""
    record = run_in_child("ndjson_nested_600")["rejects_last_line"]["record"]
    assert record["userId"] == "u1"
    assert "(nested deeper than 200 levels: cut here)" in json.dumps(record)


def test_a_giant_line_puts_only_an_excerpt_in_the_rejects_spool() -> None:
    summary = run_in_child("ndjson_2gb_single_line")
    assert summary["rejects_bytes"] < REJECT_LINE_BOUND, summary
    assert summary["rejects_last_line"]["record"] == '{"userId":"' + "A" * (4096 - 11)


def test_the_rejects_file_is_capped_and_says_how_many_it_left_out() -> None:
    """1 MB of bad two-byte lines makes ~60 MB of rejects (the default cap is 1 GiB, half of the
    splitter's /tmp): past the cap they are only counted, and the last line says how many."""
    summary = run_in_child("ndjson_many_tiny_bad_lines", "--rejects-max-bytes", str(4 * MIB))
    assert summary["rejected_by_reason"] == {"missing_timestamp": 1, "invalid_json": TINY_BAD_LINES}
    assert summary["rejects_bytes"] < 4 * MIB + REJECT_LINE_BOUND
    last = summary["rejects_last_line"]
    listed = summary["rejects_lines"] - 1
    assert last["reason"] == "rejects_omitted"
    assert last["message"].startswith(f"{TINY_BAD_LINES + 1 - listed} more rejected records are counted")


def test_lazy_stream_never_holds_more_than_a_chunk() -> None:
    """The generator itself must not be what holds the memory (a check on the harness)."""
    stream = LazyStream(repeated(b"A" * MIB, 3 * MIB + 5))
    sizes = [len(stream.read(700_000)) for _ in range(7)]
    assert sum(sizes) == 3 * MIB + 5
    assert stream.read(10) == b""
    assert list(islice(repeated(b"ab", 5), 10)) == [b"ab", b"ab", b"a"]


if __name__ == "__main__":  # the child process: python -m tests.unit.test_hostile_input CASE
    arguments = sys.argv[1:]
    cap = int(arguments[2]) if arguments[1:2] == ["--rejects-max-bytes"] else None
    print(json.dumps(run_case(arguments[0], rejects_max_bytes=cap)))
