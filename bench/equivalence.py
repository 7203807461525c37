"""Check that performance changes kept behaviour identical: same batches, same rejects.

Runs the splitter core over a corpus (generated events in every format, the examples, and
edge cases for mapping, coercion, timestamps and sizes, under several job options) with two
code trees, each in its own process, and compares digests of everything the splitter
produced: every SQS body, the rejects file, the report's counts. Also compares
`coerce_cell`, `normalize_timestamp` and `wire_size_bound` on many crafted and random inputs.

    .venv/bin/python -m bench.equivalence --reference PATH [--candidate PATH]

PATH is a folder holding a `segment_importer` package (the candidate defaults to this
checkout's). `python -m bench.reference` builds a reference tree from a git commit.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import subprocess
import sys
from typing import Any

from bench import data
from bench.common import ROOT, child_environment

JOBS: dict[str, dict[str, Any]] = {
    "default": {},
    "columns": {"columns": {"uid": "userId", "props": "properties", "Email": "traits.email", "junk": None}},
    "context": {"context": {"source": "migration", "library": {"name": "x"}}, "integrations": {"All": False}},
    "lenient": {"requireTimestamp": False, "type": "identify", "messageIdSalt": "w2"},
    "event": {"event": "Imported", "source": "segment"},
    "mixpanel": {"source": "mixpanel"},
    "amplitude": {"source": "amplitude"},
    # CSV only (see CSV_JOBS): the job's cell options and a single-byte encoding.
    "csv_cells": {"nullValues": ["\\N", "NULL", "None", "-"], "trimCells": True},
    "cp1252": {"encoding": "cp1252", "trimCells": True},
}
CSV_JOBS = frozenset({"csv_cells", "cp1252"})

TIMES: list[Any] = [
    "2021-03-04T05:06:07.123Z",
    "2021-03-04T05:06:07Z",
    "2021-03-04T05:06:07.1Z",
    "2021-03-04T05:06:07.123z",
    "2021-03-04T05:06:07.123+02:00",
    "2021-03-04 05:06:07 UTC",
    "2021-03-04 05:06:07.123456",
    "2021-03-04",
    "2021-02-30T00:00:00.000Z",
    "2021-13-01T00:00:00.000Z",
    "2021-01-01T24:00:00.000Z",
    "2021-01-01T23:59:60.000Z",
    "2021-W01-1T00:00:00.123Z",
    "0000-01-01T00:00:00.000Z",
    "0001-01-01T00:00:00.000Z",
    "9999-12-31T23:59:59.999Z",
    "2021-01-01T00:00:00,123Z",
    "\uff12\uff10\uff12\uff11-01-01T00:00:00.000Z",
    " 2021-03-04T05:06:07.123Z",
    "2021-03-04T05:06:07.123Z ",
    "2021-03-04T05:06:07.123456789Z",
    "2021-03-04T05:06:07.123 +0000",
    1609459200,
    1609459200.5,
    1609459200123,
    1609459200123456,
    -1,
    "1609459200",
    "1609459200.250",
    "-86400",
    "",
    "   ",
    "yesterday",
    "nan",
    True,
    None,
    [],
    {"t": 1},
    1e300,
    10**400,
    "1" * 40,
    "2021-03-04T05:06:07.123Z\u0000",
]

CELLS = [
    "",
    "true",
    "TRUE",
    "True",
    "false",
    "FALSE",
    "tRuE",
    "truth",
    "f",
    "t",
    "0",
    "42",
    "-7",
    "007",
    "02134",
    "-0",
    "3.5",
    "-0.25",
    "1.",
    ".5",
    "1e5",
    "9007199254740992",
    "9007199254740993",
    "12345678901234567",
    "1234567890123456",
    "-1234567890123456",
    "\u0663",
    "\u0663.\u0665",
    "\u00b2",
    "{}",
    "[]",
    '{"a": 1}',
    "[1, 2]",
    "{bad",
    "[",
    " 42",
    "42 ",
    "+1",
    "null",
    "NaN",
    "inf",
    "İ",
    "K",
    "\u212a",
    "-",
    "--1",
    "0.0",
    "00.5",
    "1_000",
]


def edge_records() -> list[dict[str, Any]]:
    base = {"type": "track", "userId": "u1", "event": "E", "timestamp": "2021-03-04T05:06:07.123Z"}
    records: list[dict[str, Any]] = [dict(base, timestamp=t) for t in TIMES]
    records += [
        dict(base, type=" TRACK "),
        dict(base, type="Identify"),
        dict(base, type="bogus"),
        dict(base, type=""),
        dict(base, type=None),
        dict(base, type=5),
        dict(base, type=["track"]),
        dict(base, userId=42),
        dict(base, userId=4.0),
        dict(base, userId=4.5),
        dict(base, userId=True),
        dict(base, userId={"a": 1}),
        dict(base, userId="  "),
        dict(base, userId=" u2 "),
        {**base, "userId": None, "anonymousId": "a1"},
        {**base, "userId": None},
        dict(base, event=""),
        dict(base, event=None),
        dict(base, event=7),
        {"type": "group", "userId": "u", "groupId": 9, "timestamp": "2021-01-01"},
        {"type": "group", "userId": "u"},
        {"type": "alias", "userId": "u", "previousId": "p"},
        {"type": "alias", "previousId": "p", "anonymousId": "a"},
        {"type": "page", "userId": "u", "name": "Home"},
        {"type": "screen", "anonymousId": "a", "timestamp": 0, "category": "c", "extra": 1},
        {"type": "identify", "userId": "u", "properties": {"p": 1}, "plan": "pro", "traits": {"t": 1}},
        {"type": "identify", "userId": "u", "properties": "x"},
        dict(base, traits={"email": "e"}),
        dict(base, context={"ip": "1.2.3.4", "traits": {"a": 1}}, traits={"b": 2}),
        dict(base, context="bad"),
        dict(base, properties=[1]),
        dict(base, integrations={"All": False}),
        dict(base, channel="server", extra={"x": [1, 2]}, other=None),
        dict(base, properties={}),
        dict(base, messageId="ajs-1", sentAt="x", receivedAt="y", projectId="p", writeKey="k", version=2),
        {
            "user_id": "u",
            "event": "e",
            "event_text": "Real E",
            "original_timestamp": "2021-01-01T00:00:00Z",
            "received_at": "2021-01-01",
            "id": "wid",
            "uuid_ts": "x",
            "anonymous_id": "a",
            "message_id": None,
        },
        {"userId": "u", "user_id": "v", "event": "e", "timestamp": 1},
        {
            "event": "Signed Up",
            "properties": {
                "distinct_id": "u1",
                "time": 1614834367,
                "$insert_id": "i1",
                "ip": "1.2.3.4",
                "$current_url": "https://x",
                "plan": "pro",
            },
        },
        {"event": "E", "properties": {"distinct_id": "$device:d1", "time": 1614834367000, "$user_id": None}},
        {
            "event_type": "Played",
            "user_id": "u",
            "device_id": "d",
            "event_time": "2021-03-04 05:06:07.123000",
            "event_properties": {"a": 1},
            "user_properties": {"b": 2},
            "insert_id": "ins",
            "os_name": "iOS",
            "city": "X",
            "ip_address": "1.2.3.4",
            "library": "amplitude-ios",
        },
        {"event_type": "$identify", "user_id": "u", "event_time": "2021-01-01", "user_properties": {"x": 1}},
        dict(base, properties={"f": 1e-7, "g": 1.5e-10, "h": 1e22, "s": "one-time e-mail"}),
        dict(base, properties={"del": "a\x7fb", "nonascii": "Zoë 😀", "bom": "\ufeff", "nc": "\ufffe\uffff"}),
        dict(base, properties={"big": "x" * 32_000}),
        dict(base, properties={"big": "é" * 11_000}),
        dict(base, properties={"big": "\x7f" * 6000}),
        dict(base, properties={"big": "x" * 20_000, "y": "é" * 4000}),
        dict(base, properties={"n": 2**70}),
        dict(base, properties={"deep": {"a": {"b": {"c": [{"d": None}]}}}}),
        {"uid": "u9", "props": {"a": 1}, "Email": "e@x", "junk": 1, "event": "E", "timestamp": 1},
        {
            "uid": "u9",
            "props": "text",
            "userId": "keep",
            "event": "E",
            "timestamp": 1,
            "a.b": 1,
            "a": {"c": 2},
        },
    ]
    return records


def edge_csv() -> list[tuple[str, bytes]]:
    header = (
        "type,userId,event,timestamp,properties.value,traits.x,bare,properties,context.ip,context.page.path"
    )
    rows = [header]
    for i, cell in enumerate(CELLS):
        quoted = '"' + cell.replace('"', '""') + '"'
        rows.append(f"track,u{i},E,2021-03-04T05:06:07.123Z,{quoted},{quoted},{quoted},,1.2.3.4,/p")
    rows.append('track,u,E,1609459200,1,2,3,"{""plan"": ""pro"", ""value"": 0}",,')
    rows.append('track,u,E,1609459200,,,,"   ",,')
    rows.append('track,u,E,1609459200,,,,"[1]",,')
    rows.append("identify,u,,,,5,6,,,")
    rows.append("track,,E,1609459200,,,,,,")
    overlapping = (
        "userId,event,timestamp,a.b,a.b.c,a,properties.x.y,properties.x\nu,E,1,1,2,3,4,5\nu,E,1,,2,,4,\n"
    )
    tsv = "userId\tevent\ttimestamp\tproperties.n\nu\tE\t1\t007\nu\tE\t2\t7\n"
    return [
        *csv_shape_cases(),
        ("edge.csv", ("\n".join(rows) + "\n").encode()),
        ("overlap.csv", overlapping.encode()),
        ("edge.tsv", tsv.encode()),
        ("crlf.csv", ("\r\n".join(rows) + "\r\n").encode("utf-8-sig")),
    ]


def csv_shape_cases() -> list[tuple[str, bytes]]:
    """CSV files for the reader and the row shapes: quoted line breaks (and a quote never
    closed), empty, blank and null cells, repeated and trailing unnamed header names, deep
    and overlapping dotted columns, JSON text, wrong field counts, invalid UTF-8, cp1252."""
    header = "type,userId,event,timestamp,plan,plan,properties.items,context.page.path,traits.n,,"
    rows = [
        'track,u1,E,1609459200,pro,free,"[{""sku"": 1}]",/p,5,,',
        'track,u2,E,1609459200,"multi\nline","a\r\nb","[1,\n2]",/p,"  7 ",,',
        "track,u3,E,1609459200,\\N,NULL,None,-,\\N,,",
        "track,u4,E,1609459200,, ,,,,,",
        'track,u5,E,1609459200,"  padded  ",true,"{bad",/q,-0.5,x,y',
        "track,u6,E,1609459200,pro",
        "",
        ",,,,,,,,,,",
        "identify,u7,,,plan,x,,,,,",
    ]
    rows += [f"track,u{i},E,{1609459200 + i},p{i % 3},{i % 2},,/p{i % 4},{i},," for i in range(8, 40)]
    dotted = "userId,event,timestamp,a.b.c,a.b.d,properties.x.y.z,properties.x.w,context.library.name\n"
    dotted += "".join(f"u,E,{1609459200 + i},{i},,{i % 3 or ''},w,lib\n" for i in range(12))
    unclosed = 'userId,event,timestamp,properties.note\nu,E,1609459200,"open\n'
    unclosed += "u,E,1609459201,x\nu,E,1609459202,x\n"
    text = ("\n".join([header, *rows]) + "\n").encode()
    cp1252 = "userId,event,timestamp,properties.café\nu,Café,1609459200,naïve \u2013 \u201cquoted\u201d\n"
    cp1252 += "u,E,1609459201,£5\n"
    return [
        ("shapes.csv", text),
        ("shapes_crlf.csv", text.replace(b"\n", b"\r\n")),
        ("dotted.csv", dotted.encode()),
        ("unclosed.csv", unclosed.encode()),
        ("bad_utf8.csv", b"userId,event,timestamp,p\nu,E,1609459200,caf\xe9\nu,E,1609459201,ok\n"),
        ("cp1252.csv", cp1252.encode("cp1252")),
    ]


def corpus() -> list[tuple[str, bytes]]:
    items = data.events(3000, seed=99)
    files: list[tuple[str, bytes]] = []
    for fmt, make in data.FORMATS.items():
        blob = make(items)
        files.append((f"gen.{data.EXTENSIONS[fmt]}", blob))
        files.append((f"gen.{data.EXTENSIONS[fmt]}.gz", data.gzipped(blob)))
    edge = edge_records()
    files.append(("edge.ndjson", data.ndjson_lenient(edge) + b"not json\n[1]\n\n{}\n"))
    files.append(("edge.json", b"[" + b",".join(data.dumps_lenient(r) for r in edge) + b"]"))
    files += edge_csv()
    for path in sorted((ROOT / "examples").iterdir()):
        if path.is_file():
            files.append((path.name, path.read_bytes()))
    return files


def split_digests() -> dict[str, Any]:
    from segment_importer.job import JobOptions

    try:  # the layer in stage subpackages
        from segment_importer.batch.packing import BatchLimits
        from segment_importer.split.splitter import split_stream
        from segment_importer.track.rejects import RejectsWriter
        from segment_importer.track.report import ImportReport
    except ImportError:  # a reference tree from before them (8dc8935 and earlier): flat modules
        from segment_importer.batching import BatchLimits  # type: ignore[no-redef]
        from segment_importer.rejects import RejectsWriter  # type: ignore[no-redef]
        from segment_importer.report import ImportReport  # type: ignore[no-redef]
        from segment_importer.splitter import split_stream  # type: ignore[no-redef]
    try:
        from segment_importer.batch.envelope import batch_body
    except ImportError:  # before batch/envelope.py
        try:
            from segment_importer.batch.queueing import batch_body  # type: ignore[no-redef]
        except ImportError:
            from segment_importer.queueing import batch_body  # type: ignore[no-redef]
    try:
        from segment_importer.import_ref import ImportRef as Source
    except ImportError:  # a reference checkout from before ImportRef
        from segment_importer.queueing import BatchSource as Source  # type: ignore[attr-defined,no-redef]

    class Sink:
        def __init__(self) -> None:
            self.batches_queued = self.messages_queued = 0
            self.digest = hashlib.sha256()

        def put(self, batch: Any) -> None:
            self.digest.update(batch_body(Source("b", "k", "e"), batch) + b"\n")
            self.batches_queued += 1
            self.messages_queued += batch.size

        def flush(self) -> None:
            pass

    results: dict[str, Any] = {}
    for limits_name, limits in (("default", BatchLimits()), ("small", BatchLimits(20_000, 7, 65_536))):
        for job_name, options in JOBS.items():
            if limits_name == "small" and job_name != "default":
                continue
            job = JobOptions().merged_with(options)
            for name, blob in corpus():
                if job_name in CSV_JOBS and not name.endswith((".csv", ".tsv", ".csv.gz")):
                    continue
                report = ImportReport(bucket="b", key=f"imports/{name}", etag="etag", size_bytes=len(blob))
                sink, rejects = Sink(), RejectsWriter()
                try:
                    split_stream(io.BytesIO(blob), report, job, limits, sink, rejects)
                    outcome = "ok"
                except Exception as error:  # an error is an outcome to compare too
                    outcome = f"{type(error).__name__}: {error}"
                rejects._file.seek(0)
                results[f"{limits_name}/{job_name}/{name}"] = {
                    "outcome": outcome,
                    "bodies": sink.digest.hexdigest(),
                    "rejects": hashlib.sha256(rejects._file.read()).hexdigest(),
                    "counts": [report.records_read, sink.messages_queued, sink.batches_queued, rejects.total],
                    "by_reason": dict(sorted(rejects.by_reason.items())),
                }
                rejects.close()
    return results


def function_results() -> dict[str, Any]:
    try:
        from segment_importer.batch.encoding import wire_size_bound
        from segment_importer.mapping.coercion import coerce_cell
        from segment_importer.mapping.timestamps import normalize_timestamp
    except ImportError:  # a reference tree of flat modules
        from segment_importer.coercion import coerce_cell  # type: ignore[no-redef]
        from segment_importer.encoding import wire_size_bound  # type: ignore[no-redef]
        from segment_importer.timestamps import normalize_timestamp  # type: ignore[no-redef]

    rng = random.Random(7)
    alphabet = "0123456789-.:TZz +tTrRuUeEfFaAlLsS{}[]\"' \u0663\u00b2\u00e9\x7f"
    cells = CELLS + [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12))) for _ in range(20_000)
    ]
    times = TIMES + [
        f"{rng.randrange(0, 10000):04d}-{rng.randrange(0, 14):02d}-{rng.randrange(0, 33):02d}T"
        f"{rng.randrange(0, 26):02d}:{rng.randrange(0, 61):02d}:{rng.randrange(0, 62):02d}."
        f"{rng.randrange(0, 1000):03d}{rng.choice('ZzZ')}"
        for _ in range(20_000)
    ]
    times += ["".join(rng.choice(alphabet) for _ in range(24)) for _ in range(5000)]
    blobs = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))) for _ in range(5000)]
    blobs += [
        bytes(rng.choice(b',:e-\x7f"ab\xc3\xa9') for _ in range(rng.randrange(0, 40))) for _ in range(5000)
    ]

    def outcome(function: Any, value: Any) -> str:
        try:
            return repr(function(value))
        except Exception as error:
            return f"{type(error).__name__}: {error}"

    digest = {}
    for name, function, values in (
        ("coerce_cell", coerce_cell, cells),
        ("normalize_timestamp", normalize_timestamp, times),
        ("wire_size_bound", wire_size_bound, blobs),
    ):
        digest[name] = hashlib.sha256("\n".join(outcome(function, v) for v in values).encode()).hexdigest()
    return digest


def _worker() -> None:
    print(json.dumps({"split": split_digests(), "functions": function_results()}))


def run_tree(code: str | None) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.equivalence", "--worker"],
        env=child_environment(code),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference", help="folder holding the reference segment_importer package")
    parser.add_argument("--candidate", help="folder holding the candidate package (default: this checkout)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker()
        return 0
    if not args.reference:
        parser.error("--reference is required")
    reference, candidate = run_tree(args.reference), run_tree(args.candidate)
    differences = [
        f"{kind} {name}: {reference[kind][name]} != {candidate[kind].get(name)}"
        for kind in ("split", "functions")
        for name in reference[kind]
        if reference[kind][name] != candidate[kind].get(name)
    ]
    cases = len(reference["split"]) + len(reference["functions"])
    print(f"{cases} cases compared; {len(differences)} differ")
    for line in differences:
        print("  " + line)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
