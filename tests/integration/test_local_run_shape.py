"""The local run's shape, bounded by counts: the work queue stays shallow while the file is
split (the sender drains it meanwhile), records are deleted ten to a call, and the embedded
endpoint runs in a process of its own that keeps message ids, not messages."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import orjson
import requests

from segment_importer_local.endpoint_process import EndpointProcess
from segment_importer_local.runner import WORK_QUEUE_DEPTH, RunOptions, run_import

from ..conftest import WRITE_KEY

BATCH_MESSAGES = 10  # many batches from a small file


def _write_events(path: Path, count: int) -> None:
    lines = (
        json.dumps(
            {"type": "track", "userId": f"user-{n}", "event": "Played", "timestamp": 1_600_000_000 + n}
        )
        for n in range(count)
    )
    path.write_text("\n".join(lines) + "\n")


def test_the_work_queue_stays_shallow_while_the_file_is_split(tmp_path: Path) -> None:
    export = tmp_path / "history.ndjson"
    _write_events(export, 1500)
    result = run_import(
        RunOptions(
            [export],
            out_dir=tmp_path / "out",
            show_progress=False,
            parameter_overrides={"BatchMaxMessages": str(BATCH_MESSAGES)},
        )
    )
    assert result.ok
    assert result.files[0].messages_delivered == 1500
    batches = result.files[0].report["batches_queued"]
    assert batches == 150
    sender_batch = 5  # the template's SenderBatchSize default
    # Counted in moto before each SendMessageBatch: the splitter sends (up to ten) only below
    # the depth. The old runner queued all 150 before the first was sent.
    assert result.work_queue_deepest is not None
    assert result.work_queue_deepest < WORK_QUEUE_DEPTH * sender_batch + 10
    # Ten records to a delete: at most two calls for an invocation of five (none failed here).
    assert result.redelivered_records == 0
    assert result.sqs_batch_calls == result.sender_invocations
    stats = result.endpoint_stats or {}
    assert stats["messages_accepted"] == 1500
    assert stats["process_peak_rss_mb"] > 0  # the endpoint ran in a process of its own


def test_the_endpoint_process_dedupes_counts_and_writes_what_it_accepts(tmp_path: Path) -> None:
    received = tmp_path / "received.ndjson"
    batch = [
        {
            "type": "track",
            "userId": "u",
            "event": "E",
            "messageId": f"m-{n % 3}",
            "timestamp": "2021-01-01T00:00:00Z",
        }
        for n in range(5)
    ]
    with EndpointProcess(WRITE_KEY, output_path=received) as endpoint:
        answer = requests.post(
            f"{endpoint.url}/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""), timeout=10
        )
        assert answer.status_code == 200
        stats = endpoint.stats()
        assert (stats["messages_accepted"], stats["duplicates"], stats["requests"]) == (3, 2, 1)
        wrong = requests.post(
            f"{endpoint.url}/v1/batch", json={"batch": batch}, auth=("nope", ""), timeout=10
        )
        assert wrong.status_code == 401
    assert endpoint.stats()["messages_accepted"] == 3  # the last figures, after it stopped
    lines = [orjson.loads(line) for line in received.read_bytes().splitlines()]
    assert sorted(line["messageId"] for line in lines) == ["m-0", "m-1", "m-2"]


_UNSET_BY_THREAD: list[tuple[str, str]] = []  # (thread name, variable): the audit hook's record
_AUDITING = threading.Event()


def _record_unsetenv(event: str, args: tuple[object, ...]) -> None:
    if event == "os.unsetenv" and _AUDITING.is_set():
        key = args[0]
        _UNSET_BY_THREAD.append((threading.current_thread().name, os.fsdecode(key)))  # type: ignore[arg-type]


def test_the_splitter_thread_never_removes_a_variable_the_sender_thread_reads(tmp_path: Path) -> None:
    """os.environ is the process's: while the sender thread iterates it (botocore does, for
    proxies, on every client it makes), a variable removed by the splitter's thread raises
    KeyError in the sender. That crashed an invocation under load, before it posted: a receive
    was spent without a post (with MaxReceiveCount=2 a batch was dead-lettered after one).
    Audit events record every unsetenv, deterministically, whatever the timing."""
    export = tmp_path / "history.ndjson"
    _write_events(export, 50)
    sys.addaudithook(_record_unsetenv)  # cannot be removed: it records only while _AUDITING is set
    _UNSET_BY_THREAD.clear()
    _AUDITING.set()
    try:
        result = run_import(RunOptions([export], out_dir=tmp_path / "out", show_progress=False))
    finally:
        _AUDITING.clear()
    assert result.ok
    assert [entry for entry in _UNSET_BY_THREAD if entry[0] == "local-splitter"] == []
