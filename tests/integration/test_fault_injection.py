"""Whole imports under every fault at once, checked against what the endpoint received.

Faults: Segment answers 500s, 429s with Retry-After, resets, stalls past the client
timeout, and accepts-then-fails; senders die after posting; SendMessageBatch fails entries;
S3 delivers every event twice; the splitter hands over mid-file (plain and gzip), and splits
the plain file in parallel byte ranges, each handing over mid-range too. The
invariant: every valid record present, each under exactly one messageId; invalid ones only
in the rejects. The figures go to the end-of-suite summary (see conftest).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import orjson

from segment_importer_local.chaos import AwsFaults
from segment_importer_local.errors import EXIT_REJECTS
from segment_importer_local.runner import RunOptions, run_import
from segment_importer_local.segment_endpoint import FaultPlan
from segment_importer_local.verdict import of_run

from ..conftest import FAULT_FIGURES

ENDPOINT_FAULTS = {"status": 0.1, "rate_limit": 0.03, "reset": 0.08, "stall": 0.04, "accept_then_fail": 0.08}
STACK = {
    "BatchMaxMessages": "50",
    "SplitRecordsPerPart": "150",
    "SegmentTimeoutSeconds": "1",
    "ParallelSplitBytes": "32768",  # the plain file (~150 KB) is split in byte ranges; gzip never is
}


def write_export(path: Path, count: int) -> tuple[set[int], set[int]]:
    """Tagged records; every 61st lacks a user, every 173rd is broken JSON."""
    valid, invalid, lines = set(), set(), []
    for number in range(1, count + 1):
        record = {
            "anonymousId": f"a{number}",
            "event": "Viewed",
            "timestamp": f"2020-05-01T00:00:{number % 60:02d}Z",
        }
        record["properties"] = {"file": path.name, "seq": number}
        if number % 61 == 0:
            del record["anonymousId"]
        line = '{"broken": ' if number % 173 == 0 else json.dumps(record)
        (invalid if number % 61 == 0 or number % 173 == 0 else valid).add(number)
        lines.append(line)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return valid, invalid


def splitter_parts(ledger: dict) -> int:
    """Splitter invocations that split the file: its parts, or the parts of its byte ranges."""
    if ledger.get("split_mode") == "spans":
        return ledger["span_parts"]
    return ledger.get("split_part", 0) + 1


def test_nothing_lost_nothing_doubled_under_every_fault(tmp_path: Path) -> None:
    expected = {}
    files = []
    for name, count in (("plain.ndjson", 1500), ("packed.ndjson.gz", 1200)):
        files.append(tmp_path / name)
        expected[name] = write_export(files[-1], count)
    aws_faults = AwsFaults(
        seed=11, sender_crash_rate=0.1, send_batch_failure_rate=0.2, duplicate_s3_events=True
    )
    result = run_import(
        RunOptions(
            files,
            out_dir=tmp_path / "out",
            faults=FaultPlan.random(seed=11, rates=ENDPOINT_FAULTS, retry_after=1, stall_seconds=2.0),
            aws_faults=aws_faults,
            show_progress=False,
            parameter_overrides=STACK,
        )
    )
    received = [orjson.loads(line) for line in Path(result.received_path or "").read_bytes().splitlines()]
    ids_per_record: dict[tuple[str, int], set[str]] = {}
    for message in received:
        key = (message["properties"]["file"], message["properties"]["seq"])
        ids_per_record.setdefault(key, set()).add(message["messageId"])
    doubled = sum(1 for ids in ids_per_record.values() if len(ids) > 1)
    lost = 0
    for outcome in result.files:
        name = Path(outcome.file).name
        valid, invalid = expected[name]
        arrived = {seq for (file, seq) in ids_per_record if file == name}
        lost += len(valid - arrived)
        assert arrived == valid, f"{name}: lost {sorted(valid - arrived)[:10]}"
        assert not arrived & invalid
        rejected = []
        for path in (Path(result.bucket_copy or "") / "rejects" / "local").glob(f"{name}.rejects*.ndjson"):
            rejected += [orjson.loads(line)["number"] for line in path.read_bytes().splitlines()]
        assert sorted(rejected) == sorted(invalid), name
        ledger = outcome.ledger or {}
        assert ledger["messages_delivered"] == ledger["messages_queued"] == len(valid), name
        assert splitter_parts(ledger) >= 8, f"{name}: the splitter did not hand over mid-file"
        if name.startswith("plain"):
            assert ledger["split_mode"] == "spans", "the plain file was not split in byte ranges"
            assert splitter_parts(ledger) > ledger["span_count"] >= 4, "no byte range handed over"
    assert doubled == 0
    stats = result.endpoint_stats or {}
    injected = Counter(stats["faults"]) + Counter(result.aws_faults_injected)
    for kind in (
        "status",
        "rate_limit",
        "reset",
        "stall",
        "accept_then_fail",
        "sender_crash",
        "send_batch_entry_failed",
    ):
        assert injected[kind] > 0, f"no {kind} fault was injected: the seed proves nothing about it"
    assert result.ok
    FAULT_FIGURES.append(
        {
            "records": sum(len(v) + len(i) for v, i in expected.values()),
            "valid": sum(len(v) for v, _ in expected.values()),
            "rejected": sum(len(i) for _, i in expected.values()),
            "faults": dict(injected),
            "segment_requests": stats["requests"],
            "duplicates_absorbed_by_message_id": stats["duplicates"],
            "sqs_redeliveries": result.redelivered_records,
            "splitter_parts": sum(splitter_parts(o.ledger or {}) for o in result.files),
            "byte_ranges": sum((o.ledger or {}).get("span_count", 0) for o in result.files),
            "lost": lost,
            "doubled": doubled,
        }
    )


def test_copies_of_delivered_batches_left_in_the_dead_letter_queue_are_no_failure(tmp_path: Path) -> None:
    """Fault QA 2: senders that died after posting, with MaxReceiveCount 1, left copies of
    delivered batches in the dead-letter queue after the redrive rounds; every record had
    arrived once, and the run said "0 messages not delivered" and NOT OK (exit 1)."""
    export = tmp_path / "plain.ndjson"
    valid, _invalid = write_export(export, 240)
    result = run_import(
        RunOptions(
            [export],
            out_dir=tmp_path / "out",
            aws_faults=AwsFaults(seed=3, sender_crash_rate=0.8),
            redrive_dead_letters=True,  # as --chaos and an operator do
            show_progress=False,
            parameter_overrides={"BatchMaxMessages": "20", "MaxReceiveCount": "1"},
        )
    )
    received = [orjson.loads(line) for line in Path(result.received_path or "").read_bytes().splitlines()]
    assert {message["properties"]["seq"] for message in received} == valid
    assert result.redriven_batches > 0, "nothing was dead-lettered: the test proves nothing"
    verdict = of_run(result, dry_run=False)
    # the export's own bad records (every 61st, every 173rd) are its only rejects: no failure
    assert verdict.code == EXIT_REJECTS, verdict.headline
    assert verdict.headline.startswith("DONE WITH REJECTS: sent 236 of 240 records")
    assert result.ok
