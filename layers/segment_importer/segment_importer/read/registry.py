"""The readers, keyed by format: the one place a format is added (one line per format)."""

from __future__ import annotations

from segment_importer.read.csv_rows import CSV_READER
from segment_importer.read.json_array import JSON_ARRAY_READER
from segment_importer.read.ndjson import NDJSON_READER
from segment_importer.read.parquet import PARQUET_READER
from segment_importer.read.reader import Format, Reader
from segment_importer.read.snowplow_tsv import SNOWPLOW_TSV_READER

READERS: dict[Format, Reader] = {
    Format.NDJSON: NDJSON_READER,
    Format.JSON_ARRAY: JSON_ARRAY_READER,
    Format.CSV: CSV_READER,
    Format.PARQUET: PARQUET_READER,
    Format.SNOWPLOW_TSV: SNOWPLOW_TSV_READER,
}


def reader_for(fmt: str) -> Reader:
    """The reader of a format, by its enum or its value ("csv", as reports and tasks hold it)."""
    return READERS[Format(fmt)]


def resumable_labels() -> str:
    """The formats a part can resume, for messages ("NDJSON and CSV")."""
    return " and ".join(reader.label for reader in READERS.values() if reader.resumable)
