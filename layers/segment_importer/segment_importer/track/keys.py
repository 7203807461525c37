"""Every bucket key the importer derives from a dropped object's key, in one place.

An export dropped at `imports/a/b.csv` has:
- its report at `reports/a/b.csv.report.json`;
- the rejects of its parts under `rejects/a/b.csv.rejects.` (`rejects_prefix`): the first
  part's `.rejects.ndjson`, a later part's `.rejects.partNNNN.ndjson`, a byte range's
  `.rejects.spanNNNN.partNNNN.ndjson`; in key order they are in file order;
- the messages Segment refused, per batch, at `rejects/a/b.csv.refused/batch-NNNNNN.ndjson`;
- its job options in the nearest `job.json`, from its own folder up to the imports prefix.
"""

from __future__ import annotations

from typing import Protocol

JOB_FILE_NAME = "job.json"
REJECTS_INFIX = ".rejects."
REPORT_SUFFIX = ".report.json"


class KeyPrefixes(Protocol):
    """`settings.Prefixes`: where exports are dropped and where reports and rejects go."""

    @property
    def imports(self) -> str: ...
    @property
    def reports(self) -> str: ...
    @property
    def rejects(self) -> str: ...


def derived_key(prefix: str, key: str, imports_prefix: str, suffix: str) -> str:
    """`imports/a/b.csv` -> `<prefix>a/b.csv<suffix>`: reports and rejects mirror the drop."""
    relative = key.removeprefix(imports_prefix)
    return f"{prefix}{relative}{suffix}"


def report_key(reports_prefix: str, imports_prefix: str, key: str) -> str:
    return derived_key(reports_prefix, key, imports_prefix, REPORT_SUFFIX)


def rejects_prefix(prefixes: KeyPrefixes, key: str) -> str:
    """What the keys of every rejects file of an import start with."""
    return derived_key(prefixes.rejects, key, prefixes.imports, REJECTS_INFIX)


def rejects_key(prefixes: KeyPrefixes, key: str, *, part: int = 0, span: int | None = None) -> str:
    """The rejects of one part: of the whole file or its first part, of a later part, or of
    a part of byte range `span`."""
    if span is not None:
        name = f"span{span:04d}.part{part:04d}.ndjson"
    else:
        name = "ndjson" if part == 0 else f"part{part:04d}.ndjson"
    return rejects_prefix(prefixes, key) + name


def refused_prefix(prefixes: KeyPrefixes, key: str) -> str:
    """What the keys of the files of messages Segment refused (HTTP 400) start with."""
    return derived_key(prefixes.rejects, key, prefixes.imports, ".refused/")


def refused_key(prefixes: KeyPrefixes, key: str, batch_number: int) -> str:
    """Where the messages Segment refused in one batch are kept."""
    return f"{refused_prefix(prefixes, key)}batch-{batch_number:06d}.ndjson"


def job_file_candidates(key: str, imports_prefix: str) -> list[str]:
    """Job file keys to try for an object, nearest folder first, up to the imports prefix."""
    folders = key.split("/")[:-1]
    root_depth = len(imports_prefix.strip("/").split("/")) if imports_prefix.strip("/") else 0
    return ["/".join([*folders[:depth], JOB_FILE_NAME]) for depth in range(len(folders), root_depth - 1, -1)]


def is_job_file(key: str) -> bool:
    return key.rsplit("/", 1)[-1] == JOB_FILE_NAME
