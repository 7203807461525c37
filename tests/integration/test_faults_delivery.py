"""Delivery under faults: redrive finishing an import, the dedupe window, the roles' grants.

Everything runs through the local stack with IAM enforced: each handler's clients refuse
what its role in template.yaml (as SAM expands it) does not grant.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from segment_importer.track.ledger import COMPLETE, COMPLETE_WITH_ERRORS
from segment_importer.track.redrive import REDRIVE_SAFE_AGE_SECONDS, redrive
from segment_importer_local import cli, cli_inspect
from segment_importer_local.iam_guard import RolePolicy
from segment_importer_local.segment_endpoint import FaultPlan, SegmentEndpoint

from ..conftest import WRITE_KEY
from ..model.pipeline import Pipeline


def write_export(path: Path, key: str, count: int) -> set[int]:
    """`count` valid track records, each tagged with its import's key and its number."""
    lines = [
        json.dumps(
            {
                "type": "track",
                "userId": f"user-{number % 7}",
                "event": "Played",
                "timestamp": 1_600_000_000 + number,
                "properties": {"file": key, "seq": number},
            }
        )
        for number in range(1, count + 1)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return set(range(1, count + 1))


@pytest.fixture
def pipeline(endpoint: SegmentEndpoint) -> Iterator[Pipeline]:
    with mock_aws():
        running = Pipeline(endpoint, {"BatchMaxMessages": "500"}, WRITE_KEY)
        try:
            yield running
        finally:
            running.close()


def dead_letter_everything(pipeline: Pipeline, endpoint: SegmentEndpoint) -> None:
    """The endpoint refuses every post (401, not retried) until each batch is dead-lettered."""
    endpoint.faults = FaultPlan.script([401] * 10_000)
    while pipeline.send_step():
        pass
    endpoint.faults = None


def test_a_redrive_after_the_endpoint_recovers_completes_the_import_and_rewrites_its_report(
    pipeline: Pipeline, endpoint: SegmentEndpoint, tmp_path: Path
) -> None:
    """Issue 5: 6 batches dead-lettered, redriven, delivered: COMPLETE, report rewritten."""
    valid = write_export(tmp_path / "history.ndjson", "imports/history.ndjson", 3000)
    pipeline.drop(tmp_path / "history.ndjson", "imports/history.ndjson")
    (ref,) = pipeline.refs
    dead_letter_everything(pipeline, endpoint)
    failed = pipeline.ledger.get(ref) or {}
    assert (failed["status"], failed["batches_failed"], failed["batches_queued"]) == (
        COMPLETE_WITH_ERRORS,
        6,
        6,
    )
    assert pipeline.report(ref)["messages_failed"] == 3000
    assert pipeline.queue_depth("DeadLetterQueue") == 6

    assert pipeline.redrive() == 6
    moved = pipeline.ledger.get(ref) or {}
    assert (moved["status"], moved["batches_failed"], moved["batches_redriven"]) == ("SENDING", 0, 6)
    pipeline.send_step()  # one invocation (batch size 5): one batch is still pending after it
    assert (pipeline.ledger.get(ref) or {})["status"] == "SENDING", "completed with a batch undelivered"
    pipeline.quiesce()

    item = pipeline.ledger.get(ref) or {}
    assert item["status"] == COMPLETE
    assert (item["messages_delivered"], item["messages_failed"], item["batches_redriven"]) == (3000, 0, 0)
    assert item.get("last_error") is None
    assert item.get("first_error") is None
    assert "401" in item["resolved_error"]  # the old error is kept, as history
    report = pipeline.report(ref)
    assert (report["status"], report["messages_delivered"], report["messages_failed"]) == (COMPLETE, 3000, 0)
    pipeline.check(ref, valid, set())


def test_batches_older_than_the_dedupe_window_are_redriven_only_when_forced(
    pipeline: Pipeline, endpoint: SegmentEndpoint, tmp_path: Path
) -> None:
    """A batch Segment accepted with the answer lost is deduped only within ~24 h."""
    write_export(tmp_path / "old.ndjson", "imports/old.ndjson", 1000)
    pipeline.drop(tmp_path / "old.ndjson", "imports/old.ndjson")
    dead_letter_everything(pipeline, endpoint)
    stack = pipeline.stack
    a_day_later = time.time() + REDRIVE_SAFE_AGE_SECONDS + 60

    def later() -> float:
        return a_day_later

    refused = redrive(
        stack.sqs, stack.dead_letter_queue_url, stack.work_queue_url, ledger=pipeline.ledger, now=later
    )
    assert (refused.moved, refused.too_old) == (0, 2)
    assert pipeline.queue_depth("DeadLetterQueue") == 2
    assert (pipeline.ledger.get(pipeline.refs[0]) or {})["status"] == COMPLETE_WITH_ERRORS  # not reopened
    summary = cli_inspect.redrive_summary(refused)
    assert "refused 2 batches" in summary
    assert "--force" in summary
    assert "duplicates" in summary

    forced = redrive(
        stack.sqs,
        stack.dead_letter_queue_url,
        stack.work_queue_url,
        ledger=pipeline.ledger,
        now=later,
        force=True,
    )
    assert (forced.moved, forced.forced, forced.too_old) == (2, 2, 0)
    assert "warning: 2 batches" in cli_inspect.redrive_summary(forced)
    pipeline.quiesce()
    assert (pipeline.ledger.get(pipeline.refs[0]) or {})["status"] == COMPLETE


def test_both_handlers_stay_within_their_template_roles_while_splitting_and_sending_overlap(
    endpoint: SegmentEndpoint, tmp_path: Path
) -> None:
    """Issue 6: a byte-range import whose batches are sent while its ranges are still being
    split: the sender's completion check reads the ranges' items (dynamodb:Query)."""
    key = "imports/ranges.ndjson"
    valid = write_export(tmp_path / "ranges.ndjson", key, 1500)
    with mock_aws():
        pipeline = Pipeline(endpoint, {"ParallelSplitBytes": "16384", "BatchMaxMessages": "40"}, WRITE_KEY)
        try:
            pipeline.drop(tmp_path / "ranges.ndjson", key)
            while pipeline.split_step():  # one range's part, then whatever it queued is sent
                while pipeline.send_step():
                    pass
            pipeline.quiesce()
            (ref,) = pipeline.refs
            item = pipeline.ledger.get(ref) or {}
            assert item["split_mode"] == "spans"
            assert item["span_count"] > 3
            pipeline.check(ref, valid, set())
            asked = {policy.function_id: policy.allowed for policy in pipeline.stack.role_policies}
        finally:
            pipeline.close()
    assert asked["SenderFunction"]["dynamodb:Query"] > 0, "the sender never read the ranges mid-split"
    assert asked["SplitterFunction"]["sqs:SendMessage"] > 0


def test_the_guard_refuses_what_a_role_does_not_grant(pipeline: Pipeline) -> None:
    """The guard can fail: the sender may not read exports, nor send to any queue but the
    work queue (where it defers a batch the rate limit turned away)."""
    sender = next(policy for policy in pipeline.stack.role_policies if policy.function_id == "SenderFunction")
    guarded = RolePolicy(sender.function_id, sender.statements, region="us-east-1", account="123456789012")
    s3 = guarded.guard(boto3.client("s3"))
    sqs = guarded.guard(boto3.client("sqs"))
    with pytest.raises(ClientError, match="s3:GetObject"):
        s3.get_object(Bucket=pipeline.stack.bucket, Key="imports/anything.ndjson")
    with pytest.raises(ClientError, match="sqs:SendMessage"):
        sqs.send_message_batch(
            QueueUrl=pipeline.stack.dead_letter_queue_url, Entries=[{"Id": "1", "MessageBody": "{}"}]
        )
    s3.put_object(Bucket=pipeline.stack.bucket, Key="reports/x.report.json", Body=b"{}")  # granted
    work_queue = pipeline.stack.dead_letter_queue_url.rsplit("/", 1)[-1]
    assert guarded.denied == [
        f"s3:GetObject on arn:aws:s3:::{pipeline.stack.bucket}/imports/anything.ndjson",
        f"sqs:SendMessage on arn:aws:sqs:us-east-1:123456789012:{work_queue}",
    ]


def test_neither_handler_logs_whole_events_even_when_the_environment_asks(
    endpoint: SegmentEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """POWERTOOLS_LOGGER_LOG_EVENT=true would log every SQS batch, records included."""
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    export = tmp_path / "private.ndjson"
    record = {"type": "track", "userId": "u-1", "event": "Secret-Event-7f3a", "timestamp": 1_600_000_000}
    export.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with mock_aws():
        pipeline = Pipeline(endpoint, {}, WRITE_KEY)
        try:
            pipeline.drop(export, "imports/private.ndjson")
            assert pipeline.send_step(), (pipeline.faults.counts, pipeline.ledger.list_imports())
        finally:
            pipeline.close()
    assert endpoint.stats()["messages_accepted"] == 1
    output = capfd.readouterr()
    assert "batch delivered" in output.out  # the handlers did log, to the captured stream
    assert "Secret-Event-7f3a" not in output.out + output.err


def test_run_with_chaos_prints_the_fault_figures_and_that_nothing_was_lost_or_doubled(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    export = tmp_path / "chaos.ndjson"
    write_export(export, "imports/local/chaos.ndjson", 600)
    spec = "seed=5,status=0.05,accept_then_fail=0.1,reset=0.05,sender_crash=0.3,send_batch_failure=0.2"
    arguments = ["run", str(export), "--no-progress", "--out", str(tmp_path / "out"), "--chaos", spec]
    assert cli.main([*arguments, "--parameter", "BatchMaxMessages=20"]) == 0
    shown = capsys.readouterr().out  # results go to stdout
    assert "Chaos: faults injected: " in shown
    for kind in ("accept_then_fail", "sender_crash", "send_batch_entry_failed"):
        assert re.search(rf"{kind}\s+[1-9]", shown), kind  # injected at least once
    assert "lost = 0, doubled = 0" in shown
    assert cli.main([*arguments[:-1], "sender_crahs=0.1"]) == 2  # a usage error
    assert "unknown fault 'sender_crahs'" in capsys.readouterr().err


def test_chaos_figures_count_a_record_under_two_message_ids_as_doubled(tmp_path: Path) -> None:
    from segment_importer_local.chaos import delivery_figures

    message = {"type": "track", "userId": "u", "event": "E", "properties": {"seq": 1}}
    lines = [
        {**message, "messageId": "a", "sentAt": "1"},
        {**message, "messageId": "b", "sentAt": "3"},  # the same record under a new id: doubled
    ]
    received = tmp_path / "received.ndjson"
    received.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert delivery_figures(str(received), messages_queued=3) == {"lost": 1, "doubled": 1}


def test_a_redriven_batch_that_fails_again_is_counted_failed_again(
    pipeline: Pipeline, endpoint: SegmentEndpoint, tmp_path: Path
) -> None:
    """Redriven too early (the cause not fixed): dead-lettered again, the import finished again."""
    write_export(tmp_path / "again.ndjson", "imports/again.ndjson", 1000)
    pipeline.drop(tmp_path / "again.ndjson", "imports/again.ndjson")
    (ref,) = pipeline.refs
    dead_letter_everything(pipeline, endpoint)
    assert pipeline.redrive() == 2
    dead_letter_everything(pipeline, endpoint)
    item = pipeline.ledger.get(ref) or {}
    assert (item["status"], item["batches_failed"], item["batches_redriven"]) == (COMPLETE_WITH_ERRORS, 2, 0)
    assert (item["messages_failed"], item["messages_delivered"]) == (1000, 0)
    assert pipeline.report(ref)["status"] == COMPLETE_WITH_ERRORS
    assert pipeline.queue_depth("DeadLetterQueue") == 2
