"""ZIP archives (Amplitude's Export API, vendors' bulk downloads): an import of their members.

`open_archive(source)` reads the central directory through ranged reads (`ranged_file`) and
lists the members; `open_member` streams one member's decompressed bytes from the archive,
never extracting to disk or holding a member whole. Each member is then read as a file of its
own (`formats.open_records`: NDJSON, JSON arrays, CSV, gzip inside), with its own record
numbers.

Bombs and traps are bounded before anything is decompressed, from the central directory:
* at most `max_members` members and `max_total_bytes` uncompressed bytes in all (the archive
  is refused whole: one invocation splits every member);
* a member expanding more than `max_expansion`-fold (past a floor) is refused; zipfile never
  reads a member past its declared size, so the declared sizes bound the work;
* nested archives (by name, and by content when opened), encrypted members, names that leave
  their folder (`..`, absolute paths, drive letters, backslashes) and compression methods
  zipfile cannot read are refused, each with its reason;
* directory entries hold no data and are not members; macOS metadata (`__MACOSX/`, `._*`,
  `.DS_Store`) is listed as skipped, with that reason.
"""

from __future__ import annotations

import lzma
import re
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

from segment_importer.read.ranged_file import RangedFile, RangeSource
from segment_importer.read.records import DamagedError, FileFormatError

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_NESTED_SUFFIXES = (".zip", ".jar", ".tar", ".tgz", ".tar.gz", ".7z", ".rar", ".gz.zip")
_METADATA = re.compile(r"(^|/)(__MACOSX/|\._[^/]*$|\.DS_Store$)")
_DRIVE = re.compile(r"^[A-Za-z]:")
_PIECE = 1 << 16
_SUPPORTED = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# What reading a damaged member raises (the source's own errors, the network's, pass through).
_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, lzma.LZMAError, OSError, ValueError)


def is_zip(head: bytes) -> bool:
    return head.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC))


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_members: int = 10_000
    max_total_bytes: int = 4 << 30  # uncompressed, all members: what one invocation can split
    max_expansion: int = 400  # as gzip's bound (formats.MAX_GZIP_EXPANSION)
    expansion_floor: int = 64 << 20


@dataclass(frozen=True, slots=True)
class ArchiveMember:
    """One member: where it is, how big it says it is, and why it is not read (if so)."""

    index: int  # its place in the central directory, 0-based
    name: str
    size: int  # declared uncompressed bytes
    compressed_size: int
    refusal: str | None = None  # the member fails with this reason
    skip: str | None = None  # not an export (metadata): listed, not read

    @property
    def safe_name(self) -> str:
        """The name keys are derived from: the member's own, unless it is refused as unsafe
        (a name that leaves its folder must not shape a key or a local path)."""
        return self.name if safe_member_name(self.name) else f"member-{self.index:05d}"


class Archive:
    """An opened archive: its members, and streams of their bytes."""

    def __init__(self, file: RangedFile, archive: zipfile.ZipFile, members: list[ArchiveMember]) -> None:
        self._file = file
        self._zip = archive
        self.members = members

    def open_member(self, member: ArchiveMember) -> MemberStream:
        info = self._zip.infolist()[member.index]
        return MemberStream(self._zip.open(info))

    @property
    def bytes_fetched(self) -> int:
        return self._file.bytes_fetched

    def close(self) -> None:
        self._zip.close()


class MemberStream:
    """A member's decompressed bytes; a damaged member's errors become DamagedError, which the
    readers turn into a `file_unreadable` record after the records before it.

    Read in pieces of at most `_PIECE`: zipfile checks a member's CRC at its end and then drops
    what that read held, so a smaller read loses less of a damaged member."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        try:
            if size is None or size < 0:
                return self._stream.read()
            return self._stream.read(min(size, _PIECE))
        except _MEMBER_ERRORS as error:
            raise DamagedError(f"the archive member is damaged ({type(error).__name__})") from error


def open_archive(source: RangeSource, limits: ArchiveLimits | None = None) -> Archive:
    """The archive's members from its central directory. Raises FileFormatError when it is not
    a readable ZIP or exceeds `limits` as a whole."""
    limits = limits or ArchiveLimits()
    file = RangedFile(source)
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError) as error:
        raise FileFormatError(f"the ZIP archive cannot be read: {type(error).__name__}") from error
    infos = [info for info in archive.infolist() if not info.is_dir()]
    if any(info.filename == "[Content_Types].xml" for info in infos):  # Office Open XML's package part
        raise FileFormatError(
            "this is an Excel workbook (or another Office file), not an archive of exports:"
            " save the sheet as CSV"
        )
    if len(infos) > limits.max_members:
        raise FileFormatError(f"the ZIP archive has {len(infos):,} members; at most {limits.max_members:,}")
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise FileFormatError(
            f"the ZIP archive expands to {total:,} bytes; at most {limits.max_total_bytes:,}"
            " (split it into smaller archives)"
        )
    indexes = {id(info): index for index, info in enumerate(archive.infolist())}
    members = [_member(indexes[id(info)], info, limits) for info in infos]
    return Archive(file, archive, members)


def _member(index: int, info: zipfile.ZipInfo, limits: ArchiveLimits) -> ArchiveMember:
    refusal = _refusal(info, limits)
    skip = "macOS metadata, not an export" if refusal is None and _METADATA.search(info.filename) else None
    return ArchiveMember(index, info.filename, info.file_size, info.compress_size, refusal, skip)


def _refusal(info: zipfile.ZipInfo, limits: ArchiveLimits) -> str | None:
    name = info.filename
    if not safe_member_name(name):
        return "the member's name leaves its folder (path traversal); it is not read"
    if name.lower().endswith(_NESTED_SUFFIXES) and not name.lower().endswith((".json.gz", ".csv.gz")):
        return "a nested archive; archives inside archives are not read (unpack it and drop its files)"
    if info.flag_bits & 0x1:
        return "the member is encrypted"
    if info.compress_type not in _SUPPORTED:
        return f"compression method {info.compress_type} is not supported (stored, deflate, bzip2, LZMA)"
    expanded = info.file_size > limits.expansion_floor
    if expanded and info.file_size > limits.max_expansion * max(info.compress_size, 1):
        return (
            f"the member expands more than {limits.max_expansion}-fold ({info.file_size:,} bytes from"
            f" {info.compress_size:,}); not read (a decompression bomb?)"
        )
    return None


def safe_member_name(name: str) -> bool:
    """A relative name that stays inside its folder."""
    if not name or "\\" in name or "\x00" in name or name.startswith("/") or _DRIVE.match(name):
        return False
    return ".." not in name.split("/")


def is_nested_archive(head: bytes) -> bool:
    """The member's first bytes are an archive's (ZIP, 7z, RAR, tar's ustar at 257)."""
    magic = (ZIP_MAGIC, EMPTY_ZIP_MAGIC, b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07")
    return head.startswith(magic) or head[257:262] == b"ustar"
