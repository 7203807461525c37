"""A CSV header's column names: repeated and trailing empty names, and a first line that is
a row of data (the file has no header). Errors name positions, never the cells: a header
can itself be personal data (a pasted data row)."""

from __future__ import annotations

import re

from segment_importer.read.records import FileFormatError


def header_names(header: list[str], warnings: list[str]) -> tuple[list[str], int]:
    """The header's column names, and how many of them are named (the rest are trailing
    empty names, as spreadsheets leave after the last column: tolerated, and a cell under one
    is read as `column_N`). A name repeated is read as `name_2` (then `name_3`), with a
    warning naming the column and its positions; an empty name between named ones fails."""
    named = len(header)
    while named and not header[named - 1]:
        named -= 1
    # Positions, not names: a header can itself be personal data (a pasted data row).
    empty = [str(i + 1) for i, name in enumerate(header[:named]) if not name]
    if empty:
        raise FileFormatError(f"the CSV header has empty column names (columns {', '.join(empty)})")
    _refuse_data_as_header(header[:named])
    names = header[:named] + [f"column_{i + 1}" for i in range(named, len(header))]
    if len(set(names)) != len(names):
        names = _numbered_repeats(names, warnings)
    return names, named


# Values no column is named: a first line holding one is a data row (the file has no header).
_DATA_CELLS = (
    (
        "an id (a UUID)",
        re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    ),
    (
        "a time",
        re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}| UTC)?"),
    ),
    ("an epoch time", re.compile(r"\d{10}(?:\d{3})?(?:\d{3})?")),
    ("an email address", re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")),
    ("a URL", re.compile(r"https?://\S+")),
)


def _refuse_data_as_header(names: list[str]) -> None:
    """A file without a header row (Redshift's UNLOAD without HEADER, `tracks_0000_part_00`)
    read its first event as column names, and every row was rejected for a missing time or
    user: say what it is instead. Positions and kinds only: the row is personal data."""
    found = [
        f"column {i + 1} {kind}"
        for i, name in enumerate(names)
        for kind, pattern in _DATA_CELLS
        if pattern.fullmatch(name)
    ]
    if found:
        raise FileFormatError(
            f"the first line is a row of data, not a header ({', '.join(found[:3])}): the file has no "
            "header row (a Redshift UNLOAD without HEADER, a warehouse export without one). Add the "
            "column names as its first line, e.g. (echo 'id,user_id,event,timestamp'; cat FILE) > "
            "FILE.csv, in the file's own separator"
        )


def _numbered_repeats(names: list[str], warnings: list[str]) -> list[str]:
    first_at: dict[str, int] = {}
    taken = set(names)
    fixed = []
    for i, name in enumerate(names):
        if name not in first_at:
            first_at[name] = i
            fixed.append(name)
            continue
        suffix = 2
        while f"{name}_{suffix}" in taken:
            suffix += 1
        renamed = f"{name}_{suffix}"
        taken.add(renamed)
        fixed.append(renamed)
        warnings.append(
            f"the CSV header repeats column {name!r} (columns {first_at[name] + 1} and {i + 1}): "
            f"column {i + 1} is read as {renamed!r}; a job's `columns` can rename it"
        )
    return fixed
