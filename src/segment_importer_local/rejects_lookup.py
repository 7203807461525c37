"""Find one import's rejects: the records the splitter rejected (`.rejects.*.ndjson`, one file a
part or byte range) and the messages Segment refused with a 400 (`.refused/batch-*.ndjson`).

KEY may be the import's full key or the name given to `run` (`signups.csv`, `2019/events.csv`);
"0 rejects" (the import is known, nothing was rejected) is told apart from "no such import".

An archive's records are rejected in its members' imports (`<zip>!<member>`, split/archives.py),
so the rejects of an archive are its members', member by member, each member's count said apart.
"""

from __future__ import annotations

import argparse
import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segment_importer.settings import Prefixes
from segment_importer.split.archives import MEMBER_SEPARATOR
from segment_importer.track import keys as bucket_keys
from segment_importer_local.errors import CliError, usage_error


@dataclass(frozen=True, slots=True)
class FoundRejects:
    key: str
    body: bytes
    members: list[tuple[str, int]] = field(default_factory=list)  # an archive's: (key, lines)

    @property
    def lines(self) -> int:
        return self.body.count(b"\n")


def resolve_key(given: str, known: list[str], prefixes: Prefixes) -> str:
    """The one known import key that `given` names (an archive's member by `zip!member` too)."""
    if given in known:
        return given
    name = given.removeprefix("./")
    matches = sorted(
        {
            key
            for key in known
            if key.endswith(("/" + name, MEMBER_SEPARATOR + name)) or key == prefixes.imports + name
        }
    )
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise usage_error(f"{given!r} names {len(matches)} imports: {', '.join(matches)}; give the full key")
    listed = ", ".join(sorted(known)[:10]) or "none"
    raise CliError(f"no such import: {given!r} (imports in that run: {listed})")


def local(arguments: argparse.Namespace) -> FoundRejects:
    from segment_importer_local.resume import BUCKET_COPY
    from segment_importer_local.snapshots import read_snapshot
    from segment_importer_local.status import local_run_dir

    prefixes = Prefixes()
    try:
        run_dir = local_run_dir(arguments.out, arguments.local)
        known = [item["key"] for item in read_snapshot(run_dir)]
    except FileNotFoundError as error:
        raise CliError(str(error)) from None
    key = resolve_key(arguments.key, known, prefixes)
    members = sorted(known_key for known_key in known if known_key.startswith(key + MEMBER_SEPARATOR))
    if not members:
        return FoundRejects(key, _local_body(run_dir / BUCKET_COPY, prefixes, key))
    bodies = [(member, _local_body(run_dir / BUCKET_COPY, prefixes, member)) for member in members]
    return _of_members(key, bodies)


def _local_body(folder: Path, prefixes: Prefixes, key: str) -> bytes:
    rejects_prefix, refused_prefix = _prefixes(prefixes, key)
    # `*` after the prefix, not `*.ndjson`: the first part's file is `.rejects.ndjson`.
    paths = sorted(
        path for path in folder.glob(glob.escape(rejects_prefix) + "*") if path.name.endswith(".ndjson")
    )
    paths += sorted((folder / refused_prefix).glob("*.ndjson"))
    return b"".join(path.read_bytes() for path in paths)


def _of_members(key: str, bodies: list[tuple[str, bytes]]) -> FoundRejects:
    members = [(member, body.count(b"\n")) for member, body in bodies]
    return FoundRejects(key, b"".join(body for _, body in bodies), members)


def deployed(arguments: argparse.Namespace) -> FoundRejects:
    from segment_importer_local.cli_inspect import aws_client, stack_bucket

    prefixes = Prefixes()
    bucket = arguments.bucket or stack_bucket(aws_client("cloudformation", arguments), arguments.stack)
    key = arguments.key if arguments.key.startswith(prefixes.imports) else prefixes.imports + arguments.key
    s3 = aws_client("s3", arguments)

    def body(of: str) -> bytes:
        found = [found for prefix in _prefixes(prefixes, of) for found in _ndjson_keys(s3, bucket, prefix)]
        return b"".join(s3.get_object(Bucket=bucket, Key=name)["Body"].read() for name in found)

    members = _member_keys(s3, bucket, prefixes, key)
    if members:
        return _of_members(key, [(member, body(member)) for member in members])
    found = body(key)
    if not found and not _has_report(s3, bucket, prefixes, key):
        raise CliError(f"no such import: s3://{bucket}/{key} has no report (and no rejects)")
    return FoundRejects(key, found)


def _member_keys(s3: Any, bucket: str, prefixes: Prefixes, key: str) -> list[str]:
    """An archive's member imports, from their reports (`reports/<zip>!<member>.report.json`)."""
    start = bucket_keys.derived_key(prefixes.reports, key + MEMBER_SEPARATOR, prefixes.imports, "")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=start)
    reports = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return sorted(
        prefixes.imports + name.removeprefix(prefixes.reports).removesuffix(bucket_keys.REPORT_SUFFIX)
        for name in reports
        if name.endswith(bucket_keys.REPORT_SUFFIX)
    )


def _prefixes(prefixes: Prefixes, key: str) -> tuple[str, str]:
    return bucket_keys.rejects_prefix(prefixes, key), bucket_keys.refused_prefix(prefixes, key)


def _ndjson_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(
        item["Key"] for page in pages for item in page.get("Contents", []) if item["Key"].endswith(".ndjson")
    )


def _has_report(s3: Any, bucket: str, prefixes: Prefixes, key: str) -> bool:
    report_key = bucket_keys.report_key(prefixes.reports, prefixes.imports, key)
    return bool(s3.list_objects_v2(Bucket=bucket, Prefix=report_key, MaxKeys=1).get("KeyCount"))
