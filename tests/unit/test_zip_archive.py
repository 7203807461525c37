"""ZIP archives that zipfile writes here: the central directory and members read by ranges,
members streamed as files of their own, and every bomb and trap bounded or refused."""

from __future__ import annotations

import gzip
import io
import os
import zipfile

import orjson
import pytest

from segment_importer.read.formats import open_records
from segment_importer.read.handle import BytesHandle
from segment_importer.read.records import FileFormatError
from segment_importer.read.zip_archive import ArchiveLimits, open_archive, safe_member_name


class CountingHandle(BytesHandle):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.fetched = 0

    def read_range(self, start: int, end: int) -> bytes:
        data = super().read_range(start, end)
        self.fetched += len(data)
        return data


def lines(count: int, tag: str) -> bytes:
    return b"".join(
        orjson.dumps({"userId": f"u{i}", "event": tag, "timestamp": "2021-01-01T00:00:00Z"}) + b"\n"
        for i in range(count)
    )


def archive_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return sink.getvalue()


def test_members_are_files_of_their_own_with_their_own_numbers() -> None:
    data = archive_of(
        {
            "p/p_2024-01-01_0#0.json.gz": gzip.compress(lines(3, "A")),
            "p/p_2024-01-01_0#1.json.gz": gzip.compress(lines(2, "B")),
            "rows.csv": b"userId,event\nu9,C\n",
            "folder/": b"",
        }
    )
    archive = open_archive(BytesHandle(data))
    assert [m.name for m in archive.members] == [
        "p/p_2024-01-01_0#0.json.gz",
        "p/p_2024-01-01_0#1.json.gz",
        "rows.csv",
    ]
    read = {}
    for member in archive.members:
        stream = open_records(archive.open_member(member), member.name)
        read[member.name] = (stream.format, stream.compression, [r.number for r in stream])
    assert read == {
        "p/p_2024-01-01_0#0.json.gz": ("ndjson", "gzip", [1, 2, 3]),
        "p/p_2024-01-01_0#1.json.gz": ("ndjson", "gzip", [1, 2]),
        "rows.csv": ("csv", "none", [1]),
    }


def test_the_directory_and_a_member_are_read_by_ranges_not_the_whole_archive() -> None:
    members = {f"m{i:02d}.ndjson": os.urandom(400_000).hex().encode() for i in range(20)}
    data = archive_of(members, zipfile.ZIP_STORED)
    handle = CountingHandle(data)
    archive = open_archive(handle)
    assert len(archive.members) == 20
    listed = handle.fetched
    assert listed < 2 << 20  # the central directory, in at most two read-ahead blocks
    member = archive.members[7]
    assert archive.open_member(member).read(-1) == members["m07.ndjson"]
    assert handle.fetched < listed + member.size + (2 << 20)
    assert handle.fetched < len(data) / 4


@pytest.mark.parametrize(
    "name", ["../evil.ndjson", "a/../../evil.ndjson", "/etc/passwd", "C:evil.csv", "a\\..\\b.csv", ""]
)
def test_names_that_leave_their_folder_are_refused(name: str) -> None:
    assert not safe_member_name(name)


def test_unsafe_names_never_shape_a_key_and_traps_are_refused_with_reasons() -> None:
    data = archive_of(
        {
            "ok.ndjson": lines(1, "A"),
            "../../x.ndjson": lines(1, "B"),
            "inner.zip": archive_of({"a.ndjson": lines(1, "C")}),
            "__MACOSX/._ok.ndjson": b"\x00\x05\x16\x07",
            ".DS_Store": b"\x00\x00\x00\x01Bud1",
        }
    )
    members = {m.name: m for m in open_archive(BytesHandle(data)).members}
    assert members["ok.ndjson"].refusal is None
    traversal = members["../../x.ndjson"]
    assert "path traversal" in (traversal.refusal or "")
    assert traversal.safe_name == "member-00001"
    assert "nested archive" in (members["inner.zip"].refusal or "")
    assert members["__MACOSX/._ok.ndjson"].skip
    assert members[".DS_Store"].skip


def test_encrypted_members_and_unknown_methods_are_refused() -> None:
    data = bytearray(archive_of({"secret.ndjson": lines(1, "A"), "odd.ndjson": lines(1, "B")}))
    # zipfile cannot encrypt: set the flag as an encrypting tool does (central directory entry,
    # general purpose bit 0), and give the second member a method zipfile cannot read (Deflate64).
    first, second = (i for i in range(len(data)) if data[i : i + 4] == b"PK\x01\x02")
    data[first + 8] |= 0x1
    data[second + 10 : second + 12] = (9).to_bytes(2, "little")
    secret, odd = open_archive(BytesHandle(bytes(data))).members
    assert secret.refusal == "the member is encrypted"
    assert "compression method 9 is not supported" in (odd.refusal or "")


def test_a_member_expanding_past_the_ratio_is_refused_before_it_is_read() -> None:
    data = archive_of({"bomb.ndjson": b"\n" * (4 << 20), "fine.ndjson": lines(50, "A")})
    limits = ArchiveLimits(expansion_floor=1 << 20)
    members = {m.name: m for m in open_archive(BytesHandle(data), limits).members}
    assert "expands more than 400-fold" in (members["bomb.ndjson"].refusal or "")
    assert members["fine.ndjson"].refusal is None


def test_an_archive_over_its_total_size_or_member_count_is_refused_whole() -> None:
    data = archive_of({f"m{i}.ndjson": lines(100, "A") for i in range(5)})
    with pytest.raises(FileFormatError, match=r"expands to .* bytes; at most 1,000"):
        open_archive(BytesHandle(data), ArchiveLimits(max_total_bytes=1000))
    with pytest.raises(FileFormatError, match="has 5 members; at most 4"):
        open_archive(BytesHandle(data), ArchiveLimits(max_members=4))


def test_a_damaged_member_ends_in_file_unreadable_after_its_good_records() -> None:
    content = lines(20_000, "A")
    data = bytearray(archive_of({"a.ndjson": content}, zipfile.ZIP_STORED))
    start = data.index(content[:40])
    data[start + len(content) - 100] ^= 0xFF  # the stored bytes no longer match their CRC
    archive = open_archive(BytesHandle(bytes(data)))
    records = list(open_records(archive.open_member(archive.members[0]), "a.ndjson"))
    assert records[-1].reason == "file_unreadable"
    assert "damaged" in (records[-1].detail or "")
    good = [r.number for r in records if r.fields]
    assert good == list(range(1, len(good) + 1))
    assert len(good) >= 19_000  # at most one 64 KiB piece is lost with the damage


def test_an_excel_workbook_is_named_not_read_as_an_archive() -> None:
    """An .xlsx is a ZIP of XML parts: its members are not exports."""
    data = archive_of({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"})
    with pytest.raises(FileFormatError, match="Excel workbook"):
        open_archive(BytesHandle(data))


def test_not_a_readable_zip_fails_the_file() -> None:
    with pytest.raises(FileFormatError, match="ZIP archive cannot be read"):
        open_archive(BytesHandle(b"PK\x03\x04" + b"\x00" * 200))
