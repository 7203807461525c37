"""Parquet exports (warehouse unloads, DuckDB, Spark), read a row group at a time.

`PARQUET_READER` (registry: `Format.PARQUET`, detected by the `PAR1` magic bytes) reads the
object through its handle's ranged reads (`Content.handle`: an S3 object read by ranged GETs;
`parquet_records(handle)` directly) and yields one `SourceRecord` per row. pyarrow reads the footer, then one
row group's column chunks at a time, in slices of `BATCH_ROWS` rows: memory is bounded by one
row group, never the whole file, and the object is never downloaded whole.

Record numbers are the row's position in the file, 1-based (row groups in file order), so
they are stable across re-reads. A continued part resumes at a row group and a row within it:
its `ResumePoint` is the number of the next row (offset 0: the part opens the object from its
start, as every Parquet read does, footer first); the reader finds that row's group from the
footer's row counts, reads from that group on and skips the rows before it there.

Values become what a JSON export of the same table holds:
* structs and maps -> objects (map keys as text), lists -> arrays;
* timestamps of any unit, with or without a time zone -> ISO 8601 UTC text (a timestamp
  without a zone is read as UTC, as everywhere in the importer); sub-microsecond digits are
  cut (Segment keeps milliseconds);
* dates -> `YYYY-MM-DD`, times of day -> `HH:MM:SS[.ffffff]`, durations -> seconds;
* decimals -> numbers where a JSON number holds them exactly (integers, and decimals whose
  shortest float text is the same value), else text; a column whose type allows more than 15
  digits is text in every row (one JSON type per column); integers of any size stay exact;
* NaN and infinities (no JSON number) -> null;
* a top-level null is an absent column, as an empty CSV cell is (a warehouse row holds
  nulls in every column it did not fill); nulls inside structs and lists are kept.
Binary columns (BYTE_ARRAY without a text type) fail the file, by name: a Segment message is
JSON text. The job's `columns` can drop one (`{"payload": null}`): it is then never read.

pyarrow lives in its own Lambda layer (ParquetLayer, template parameter EnableParquet): without
it, a Parquet file fails with PARQUET_LAYER_MISSING, never an ImportError.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import math
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from segment_importer.read.opening import Content
from segment_importer.read.ranged_file import RangedFile, RangeSource
from segment_importer.read.reader import Format, ReadOptions
from segment_importer.read.records import FileFormatError, RecordStream, ResumePoint, SourceRecord
from segment_importer.track import reasons

PARQUET_LAYER_MISSING = (
    "Parquet needs the ParquetLayer: set EnableParquet=true (pyarrow is not installed in this function)"
)
BATCH_ROWS = 10_000  # rows turned into Python values at a time, within one row group
Converter = Callable[[Any], list[Any]]  # an Arrow column -> its JSON values


def _pyarrow() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, imported on first use: the main layer does not carry them."""
    try:
        import pyarrow  # optional: in its own layer
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError as error:
        raise FileFormatError(PARQUET_LAYER_MISSING) from error
    return pyarrow, pyarrow.parquet


@dataclass(frozen=True, slots=True)
class RowGroupLayout:
    """The rows before each row group (its first row's number - 1), from the footer: the
    reader's `ReadPosition`."""

    first_rows: tuple[int, ...]
    rows: int

    def group_of(self, number: int) -> int:
        """The row group holding record `number` (1-based)."""
        return bisect.bisect_right(self.first_rows, number - 1) - 1

    def after(self, number: int) -> ResumePoint:
        return ResumePoint(0, number + 1)


@dataclass(frozen=True, slots=True)
class ParquetReader:
    format: Format = Format.PARQUET
    label: str = "Parquet"
    resumable: bool = True  # at a row group and a row in it (the record number says which)
    span_splittable: bool = False  # row groups would be its spans: not done (docs/formats.md)
    has_header: bool = False
    records_span_lines: bool = False
    cells_are_text: bool = False

    def open(self, content: Content, options: ReadOptions) -> RecordStream:
        if content.handle is None or content.compression != "none":
            raise FileFormatError(
                "a Parquet file is read by ranged reads of an uncompressed object of its own (its pages"
                " are compressed inside it): drop the .parquet file itself, not gzipped or in an archive"
            )
        return parquet_records(content.handle, resume=options.resume, dropped_columns=options.dropped_columns)


PARQUET_READER = ParquetReader()


def parquet_records(
    source: RangeSource,
    *,
    resume: ResumePoint | None = None,
    dropped_columns: Collection[str] = (),
    batch_rows: int = BATCH_ROWS,
) -> RecordStream:
    """The records of a Parquet object. Raises FileFormatError when pyarrow is missing, the
    file is not Parquet (or is damaged), or a column that is read holds binary data."""
    pa, pq = _pyarrow()
    if hasattr(source, "ranges_are_progress"):  # read by ranges only: they are its progress
        source.ranges_are_progress = True
    file = RangedFile(source)
    try:
        parquet = pq.ParquetFile(file, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as error:
        raise FileFormatError(f"the Parquet file cannot be opened: {_arrow_message(error)}") from error
    schema = parquet.schema_arrow
    columns = [name for name in schema.names if name not in set(dropped_columns)]
    _refuse_binary(pa, schema, columns)
    layout = _layout(parquet.metadata)
    first = resume.line if resume else 1
    target = _readable_schema(pa, schema, columns)
    converters = [_column_reader(pa, target.field(name).type) for name in columns]
    rows = _rows(parquet, layout, columns, target, converters, first, batch_rows)
    return RecordStream(Format.PARQUET.value, "none", rows, layout)


def _arrow_message(error: BaseException) -> str:
    # pyarrow's messages describe the file's structure (sizes, magic bytes), not its values.
    return str(error).splitlines()[0][:300]


def _layout(metadata: Any) -> RowGroupLayout:
    first_rows, total = [], 0
    for index in range(metadata.num_row_groups):
        first_rows.append(total)
        total += metadata.row_group(index).num_rows
    return RowGroupLayout(tuple(first_rows), total)


def _rows(
    parquet: Any,
    layout: RowGroupLayout,
    columns: list[str],
    target: Any,
    converters: list[Converter],
    first: int,
    batch_rows: int,
) -> Iterator[SourceRecord]:
    """The rows from record `first` on, one row group (and slice) at a time."""
    if first > layout.rows:
        return
    start_group = layout.group_of(first)
    skip = first - 1 - layout.first_rows[start_group]
    number = first - 1
    for group in range(start_group, len(layout.first_rows)):
        batches = parquet.iter_batches(
            batch_size=batch_rows, row_groups=[group], columns=columns, use_threads=False
        )
        for batch in batches:
            if skip:  # take, not slice: pyarrow cannot cast a sliced struct column (ArrowInvalid)
                cut = min(skip, batch.num_rows)
                batch, skip = batch.take(list(range(cut, batch.num_rows))), skip - cut
            if batch.num_rows:
                yield from _batch_records(batch, number, target, converters)
                number += batch.num_rows


def _batch_records(
    batch: Any, number: int, target: Any, converters: list[Converter]
) -> Iterator[SourceRecord]:
    names = batch.schema.names
    try:
        values = _columns(batch, target, converters)
    except (ValueError, OverflowError, ArithmeticError):  # a value with no JSON form: find its rows
        yield from _rows_one_by_one(batch, number, target, converters)
        return
    for offset, row in enumerate(zip(*values, strict=True), start=number + 1):
        yield SourceRecord(
            offset, {name: value for name, value in zip(names, row, strict=True) if value is not None}
        )


def _columns(batch: Any, target: Any, converters: list[Converter]) -> list[list[Any]]:
    out = []
    for column, kind, convert in zip(batch.columns, target.types, converters, strict=True):
        if column.type != kind:
            column = column.cast(kind, safe=False)  # safe=False: nanoseconds are cut, not refused
        out.append(convert(column))
    return out


def _rows_one_by_one(
    batch: Any, number: int, target: Any, converters: list[Converter]
) -> Iterator[SourceRecord]:
    for index in range(batch.num_rows):
        row = batch.take([index])
        try:
            values = _columns(row, target, converters)
        except (ValueError, OverflowError, ArithmeticError) as error:
            detail = f"row {number + index + 1} holds a value with no JSON form ({type(error).__name__})"
            yield SourceRecord(number + index + 1, reason=reasons.INVALID_FIELD, detail=detail)
            continue
        fields = {
            name: column[0]
            for name, column in zip(row.schema.names, values, strict=True)
            if column[0] is not None
        }
        yield SourceRecord(number + index + 1, fields)


# --- types --------------------------------------------------------------------------------


def _is_binary(pa: Any, kind: Any) -> bool:
    types = pa.types
    return bool(
        types.is_binary(kind)
        or types.is_large_binary(kind)
        or types.is_fixed_size_binary(kind)
        or getattr(types, "is_binary_view", lambda _: False)(kind)
    )


def _binary_path(pa: Any, kind: Any, path: str) -> str | None:
    """The path of the first binary value inside a type, or None."""
    if _is_binary(pa, kind):
        return path
    if pa.types.is_struct(kind):
        for index in range(kind.num_fields):
            child = kind.field(index)
            found = _binary_path(pa, child.type, f"{path}.{child.name}")
            if found:
                return found
    elif pa.types.is_map(kind):
        return _binary_path(pa, kind.key_type, f"{path}.key") or _binary_path(
            pa, kind.item_type, f"{path}.value"
        )
    elif _is_list(pa, kind):
        return _binary_path(pa, kind.value_type, f"{path}[]")
    elif pa.types.is_dictionary(kind):
        return _binary_path(pa, kind.value_type, path)
    return None


def _refuse_binary(pa: Any, schema: Any, columns: list[str]) -> None:
    for name in columns:
        path = _binary_path(pa, schema.field(name).type, name)
        if path:
            raise FileFormatError(
                f"column {name!r} holds binary data (at {path}): a Segment message is JSON text;"
                f' drop the column with the job option "columns": {{"{name}": null}}, or export it as text'
            )


def _is_list(pa: Any, kind: Any) -> bool:
    types = pa.types
    return bool(types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind))


def _readable_schema(pa: Any, schema: Any, columns: list[str]) -> Any:
    """The schema values are cast to before they become Python: every timestamp as UTC
    microseconds, times and durations in microseconds (nanoseconds have no Python type)."""
    return pa.schema([pa.field(name, _readable(pa, schema.field(name).type)) for name in columns])


def _readable(pa: Any, kind: Any) -> Any:
    types = pa.types
    if types.is_timestamp(kind):
        return pa.timestamp("us", tz="UTC")
    if types.is_time(kind):
        return pa.time64("us")
    if types.is_duration(kind):
        return pa.duration("us")
    if types.is_struct(kind):
        return pa.struct(
            [pa.field(f.name, _readable(pa, f.type)) for f in (kind.field(i) for i in range(kind.num_fields))]
        )
    if types.is_map(kind):
        return pa.map_(_readable(pa, kind.key_type), _readable(pa, kind.item_type))
    if types.is_large_list(kind):
        return pa.large_list(_readable(pa, kind.value_type))
    if _is_list(pa, kind):
        return pa.list_(_readable(pa, kind.value_type))
    return kind


# A decimal of at most 15 significant digits is exactly a double's shortest text.
_EXACT_FLOAT_DIGITS = 15


def _column_reader(pa: Any, kind: Any) -> Converter:
    """How a column (an Arrow array of the readable type) becomes JSON values: vectorised in
    Arrow for timestamps and floats (the common costly columns), per value only for types
    that hold a value JSON has no form for."""
    compute = pa.compute
    if pa.types.is_timestamp(kind):
        return lambda column: _iso_column(pa, column)
    if pa.types.is_decimal(kind) and kind.precision > _EXACT_FLOAT_DIGITS:
        # Some values of such a column would not fit a JSON number exactly: all are text, so a
        # column has one JSON type in every row (a destination's schema takes its first).
        return lambda column: compute.cast(column, pa.string()).to_pylist()
    if pa.types.is_floating(kind):
        return lambda column: compute.if_else(compute.is_finite(column), column, None).to_pylist()
    if not _needs_conversion(pa, kind):
        return lambda column: column.to_pylist(maps_as_pydicts="lossy")
    return lambda column: [
        None if value is None else json_value(value) for value in column.to_pylist(maps_as_pydicts="lossy")
    ]


def _iso_column(pa: Any, column: Any) -> list[str | None]:
    """ISO 8601 UTC text: milliseconds, or microseconds when any value of the slice has them."""
    compute = pa.compute
    with contextlib.suppress(pa.ArrowInvalid):  # a safe cast refuses to cut sub-ms digits
        column = column.cast(pa.timestamp("ms", tz="UTC"))
    return compute.strftime(column, format="%Y-%m-%dT%H:%M:%SZ").to_pylist()


def _needs_conversion(pa: Any, kind: Any) -> bool:
    types = pa.types
    if types.is_string(kind) or types.is_large_string(kind) or types.is_integer(kind):
        return False
    if types.is_boolean(kind) or types.is_null(kind):
        return False
    if types.is_struct(kind):
        return any(_needs_conversion(pa, kind.field(i).type) for i in range(kind.num_fields))
    if types.is_map(kind):
        key_is_text = types.is_string(kind.key_type) or types.is_large_string(kind.key_type)
        return not key_is_text or _needs_conversion(pa, kind.item_type)
    if _is_list(pa, kind):
        return _needs_conversion(pa, kind.value_type)
    if types.is_dictionary(kind):
        return _needs_conversion(pa, kind.value_type)
    return True  # dates, times, durations, decimals, floats inside nested values


def json_value(value: Any) -> Any:
    """A Python value from pyarrow as JSON holds it (see the module's docstring)."""
    if isinstance(value, str | bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return decimal_value(value)
    raise ValueError(f"a {type(value).__name__} value has no JSON form")


def iso_utc(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z: milliseconds, or microseconds when the value has them."""
    utc = value.astimezone(dt.UTC) if value.tzinfo else value
    spec = "milliseconds" if utc.microsecond % 1000 == 0 else "microseconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def decimal_value(value: Decimal) -> int | float | str:
    """An integer when integral (within 64 bits, as orjson writes them), a float when its
    shortest text is the same value, else text (a float would change the amount)."""
    if not value.is_finite():
        return str(value)
    if value == value.to_integral_value():
        whole = int(value)
        return whole if -(2**63) <= whole < 2**64 else str(value)  # what a JSON encoder writes exactly
    number = float(value)
    return number if Decimal(repr(number)) == value else str(value)
