"""Property tests for the streaming readers: no input makes them raise, and data round-trips."""

from __future__ import annotations

import csv
import gzip
import io
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_importer.read.detect import DOCUMENT_ARRAY_KEYS
from segment_importer.read.formats import FileFormatError, open_records
from segment_importer.read.records import SourceRecord
from segment_importer.track.reasons import REASONS

KEYS = ["export", "x.csv", "x.tsv", "x.json", "x.ndjson", "x.jsonl", "x.csv.gz", "x.json.gz", "x.gz"]
# Pieces that steer random bytes into the interesting corners of every parser.
TOKENS = [
    b"{", b"}", b"[", b"]", b'"', b",", b":", b"\t", b" ", b"\n", b"\r\n", b"\r", b"\\", b"a", b"1",
    b"-1.5e3", b"null", b"\xff", b"\xc3\xa9", b"\xef\xbb\xbf", b'"batch"', b'"data": [', b"\x1f\x8b", b"\x00",
]  # fmt: skip


class BodyLike:
    """read(n) only, at most `most` bytes per call (like a network body)."""

    def __init__(self, data: bytes, most: int) -> None:
        self._data = data
        self._pos = 0
        self._most = most

    def read(self, amt: int) -> bytes:
        chunk = self._data[self._pos : self._pos + min(amt, self._most)]
        self._pos += len(chunk)
        return chunk


def read_all(data: bytes, key: str, limit: int = 1 << 20, most: int = 0) -> list[SourceRecord] | None:
    """Every record, or None when open_records refuses a CSV header (its only allowed raise)."""
    stream = BodyLike(data, most) if most else io.BytesIO(data)
    try:
        records = open_records(stream, key, max_record_bytes=limit)
    except FileFormatError:
        return None
    return list(records)


def assert_well_formed(records: list[SourceRecord]) -> None:
    numbers = [r.number for r in records]
    assert numbers == sorted(set(numbers))
    assert all(n >= 1 for n in numbers)
    for r in records:
        assert (r.fields is None) != (r.reason is None)
        if r.reason is None:
            assert isinstance(r.fields, dict)
            assert r.raw is None
        else:
            assert r.reason in REASONS
            assert r.detail
        if r.raw is not None:
            r.raw.encode("utf-8")  # writable to the rejects file: no lone surrogates
    assert all(r.reason != "file_unreadable" for r in records[:-1])


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


@st.composite
def messy_bytes(draw: st.DrawFn) -> bytes:
    """Random bytes, token soup, or either one gzipped (whole, cut short, or in members)."""
    if draw(st.booleans()):
        data = draw(st.binary(max_size=600))
    else:
        data = b"".join(draw(st.lists(st.sampled_from(TOKENS), max_size=80)))
    wrap = draw(st.sampled_from(["plain", "plain", "gzip", "cut", "members"]))
    if wrap == "gzip":
        return gz(data)
    if wrap == "cut":
        blob = gz(data)
        return blob[: draw(st.integers(0, len(blob)))]
    if wrap == "members":
        split = draw(st.integers(0, len(data)))
        return gz(data[:split]) + gz(data[split:])
    return data


@settings(max_examples=300, deadline=None)
@given(
    data=messy_bytes(),
    key=st.sampled_from(KEYS),
    limit=st.sampled_from([1, 7, 64, 1 << 20]),
    most=st.sampled_from([0, 1, 5]),
)
def test_any_bytes_never_raise_from_iteration(data: bytes, key: str, limit: int, most: int) -> None:
    records = read_all(data, key, limit, most)
    if records is not None:
        assert_well_formed(records)


# --- round trips ------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    # ijson's C backend with use_float=True refuses integers outside (-2**63, 2**63).
    | st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# A one-line file holding `{"batch": [{...}]}` is a document wrapping records (read/detect.py),
# not one NDJSON record: the wrapper keys are left out of the generated names.
json_objects = st.dictionaries(
    st.text(max_size=10).filter(lambda name: name not in DOCUMENT_ARRAY_KEYS), json_values, max_size=6
)


@settings(max_examples=200, deadline=None)
@given(
    objects=st.lists(json_objects, max_size=20),
    newline=st.sampled_from([b"\n", b"\r\n"]),
    blanks=st.lists(st.integers(0, 2), min_size=20, max_size=20),
    compress=st.booleans(),
    bom=st.booleans(),
)
def test_ndjson_round_trips(
    objects: list[dict[str, Any]], newline: bytes, blanks: list[int], compress: bool, bom: bool
) -> None:
    lines: list[bytes] = []
    expected: list[tuple[int, dict[str, Any]]] = []
    for obj, blank in zip(objects, blanks, strict=False):
        lines.extend([b""] * blank)  # blank lines are skipped but still counted
        lines.append(orjson.dumps(obj))
        expected.append((len(lines), obj))
    data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(line + newline for line in lines)
    records = read_all(gz(data) if compress else data, "x.json")
    assert records is not None
    assert_well_formed(records)
    assert [(r.number, r.fields) for r in records] == expected


@settings(max_examples=200, deadline=None)
@given(objects=st.lists(json_objects, max_size=20), compress=st.booleans(), document=st.booleans())
def test_json_array_round_trips(objects: list[dict[str, Any]], compress: bool, document: bool) -> None:
    if document:  # the pretty-printed single document: its "batch" array is streamed
        # (no shared `context`/`integrations`: those are merged in, see test_batch_shared)
        data = orjson.dumps({"sentAt": {"batch": 1}, "batch": objects}, option=orjson.OPT_INDENT_2)
    else:
        data = orjson.dumps(objects, option=orjson.OPT_INDENT_2 if objects and objects[0] else 0)
    records = read_all(gz(data) if compress else data, "x")
    assert records is not None
    assert_well_formed(records)
    assert [(r.number, r.fields) for r in records] == list(enumerate(objects, 1))


Table = tuple[list[str], list[list[str]]]
# No ";" in names: a header like "a;b" with no comma reads as semicolon-separated (the
# reader's documented heuristic for spreadsheets saved in decimal-comma locales).
csv_names = st.text(min_size=1, max_size=8).map(str.strip).filter(lambda name: bool(name) and ";" not in name)


@st.composite
def csv_tables(draw: st.DrawFn) -> Table:
    header = draw(st.lists(csv_names, min_size=1, max_size=5, unique=True))
    # An unquoted first name starting like JSON would (rightly) be read as JSON.
    if header[0][0] in "[{":
        header[0] = "_" + header[0]
    cells = st.text(max_size=10) | st.sampled_from(["", ",", '"', "a\r\nb", "\n", " "])
    rows = draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header)), max_size=15))
    return header, rows


@settings(max_examples=200, deadline=None)
@given(table=csv_tables(), tsv=st.booleans(), compress=st.booleans(), bom=st.booleans())
def test_csv_round_trips(table: Table, tsv: bool, compress: bool, bom: bool) -> None:
    header, rows = table
    text = io.StringIO()
    writer = csv.writer(text, delimiter="\t" if tsv else ",", lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = (b"\xef\xbb\xbf" if bom else b"") + text.getvalue().encode()
    records = read_all(gz(data) if compress else data, "x.tsv" if tsv else "x.csv")
    assert records is not None
    assert_well_formed(records)
    expected = []
    for number, row in enumerate(rows, 1):
        fields = {name: cell for name, cell in zip(header, row, strict=True) if cell}
        if fields:
            expected.append((number, fields))
    assert [(r.number, r.fields) for r in records] == expected
