"""A file none of whose first records can be read is not the format it was read as: say so.

Read line by line, a pretty-printed document, an HTML error page saved as `.csv` or a log
file is a reject per line and no event: the run would say OK. After NO_RECORD_LIMIT
rejected records and not one read, the file ends with a `file_unreadable` record saying
what it looks like (described by its shape, never its content), and the rest is not read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from segment_importer.read.reader import Format
from segment_importer.read.records import SourceRecord, unreadable

NO_RECORD_LIMIT = 1000


def what_it_looks_like(head: bytes, fmt: Format) -> str:
    """A description of a file by its head's shape (no content)."""
    start = head.lstrip()[:1]
    if start == b"<":
        return "HTML or XML (it starts with '<'), not an export"
    if start in (b"{", b"["):
        return "JSON that is not one object per line nor one document"
    if fmt is Format.CSV:
        return "text without a CSV header its rows match (a log, or a file with a title above the header?)"
    if fmt is Format.SNOWPLOW_TSV:
        return "tab-separated lines that are not Snowplow enriched events of the current 131-field layout"
    return f"something other than {fmt.value}"


def records_or_give_up(records: Iterator[SourceRecord], looks_like: str) -> Iterator[SourceRecord]:
    rejected: Counter[str] = Counter()
    for record in records:
        yield record
        if record.reason is None:
            yield from records  # a record: the file is what it was read as
            return
        rejected[record.reason] += 1
        if rejected.total() >= NO_RECORD_LIMIT and record.reason != "file_unreadable":
            reasons = ", ".join(f"{count} {reason}" for reason, count in rejected.most_common())
            detail = (
                f"the first {rejected.total()} records hold no record that could be read ({reasons}): "
                f"the file looks like {looks_like}; the rest is not read"
            )
            yield unreadable(record.number + 1, detail)
            return
