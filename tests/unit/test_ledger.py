"""The import ledger on moto's DynamoDB, with the tables built from template.yaml."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from moto import mock_aws

from segment_importer.import_ref import ImportRef
from segment_importer.track.ledger import (
    ALREADY_KILLED,
    COMPLETE,
    COMPLETE_WITH_ERRORS,
    FAILED,
    KILLED,
    MOVED_ON,
    NOT_FOUND,
    SENDING,
    SPLITTING,
    Ledger,
    StoppedRun,
)
from segment_importer_local.stack import LocalStack
from segment_importer_local.template_config import StackTemplate

REF = ImportRef("bucket", "imports/2019/events.ndjson", "etag-1")


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with mock_aws():
        yield LocalStack(StackTemplate.load()).create(write_key="k")


@pytest.fixture
def ledger(stack: LocalStack) -> Ledger:
    return Ledger(stack.dynamodb, stack.table_name("ImportsTable"), stack.table_name("BatchesTable"))


def split(ledger: Ledger, batches: int, messages_per_batch: int = 10, rejected: int = 0) -> str | None:
    assert ledger.start_split(REF, 1000, "request-1")
    counts = {
        "records_read": batches * messages_per_batch + rejected,
        "messages_queued": batches * messages_per_batch,
        "batches_queued": batches,
        "rejected": rejected,
    }
    return ledger.finish_split(REF, counts)


def test_a_redelivered_batch_counts_once(ledger: Ledger) -> None:
    split(ledger, batches=2)
    assert ledger.record_delivered(REF, 1, 10, 0) is True
    assert ledger.record_delivered(REF, 1, 10, 0) is False  # the same SQS message again
    item = ledger.get(REF)
    assert item is not None
    assert (item["batches_delivered"], item["messages_delivered"]) == (1, 10)
    assert item["status"] == SENDING


def test_completes_exactly_once_when_every_batch_is_resolved(ledger: Ledger) -> None:
    split(ledger, batches=2)
    ledger.record_delivered(REF, 1, 10, 0)
    assert ledger.complete_if_done(REF) is None  # one batch still pending
    ledger.record_delivered(REF, 2, 10, 0)
    assert ledger.complete_if_done(REF) == COMPLETE
    assert ledger.complete_if_done(REF) is None  # the transition happened already
    item = ledger.get(REF)
    assert item is not None
    assert item["status"] == COMPLETE
    assert item["finished_at"] >= item["started_at"]


def test_dead_lettered_and_rejected_mean_complete_with_errors(ledger: Ledger) -> None:
    split(ledger, batches=2, rejected=3)
    ledger.record_delivered(REF, 1, 10, 0)
    assert ledger.record_dead_lettered(REF, 2, 10, "Segment answered HTTP 401 (invalid_write_key)")
    assert not ledger.record_dead_lettered(REF, 2, 10, "again")
    assert ledger.complete_if_done(REF) == COMPLETE_WITH_ERRORS
    item = ledger.get(REF)
    assert item is not None
    assert (item["batches_failed"], item["messages_failed"]) == (1, 10)
    assert item["first_error"] == item["last_error"] == "Segment answered HTTP 401 (invalid_write_key)"


def test_a_redriven_batch_moves_from_failed_to_delivered(ledger: Ledger) -> None:
    split(ledger, batches=1)
    ledger.record_dead_lettered(REF, 1, 10, "HTTP 500")
    assert ledger.record_delivered(REF, 1, 10, 0) is True
    assert ledger.record_delivered(REF, 1, 10, 0) is False
    item = ledger.get(REF)
    assert item is not None
    assert (item["batches_delivered"], item["batches_failed"], item["messages_failed"]) == (1, 0, 0)


def test_refused_messages_are_counted_apart_from_delivered(ledger: Ledger) -> None:
    split(ledger, batches=1)
    ledger.record_delivered(REF, 1, 10, refused=2)
    assert ledger.complete_if_done(REF) == COMPLETE_WITH_ERRORS
    item = ledger.get(REF)
    assert item is not None
    assert (item["messages_delivered"], item["messages_refused"]) == (8, 2)


def test_an_empty_file_completes_when_the_split_finishes(ledger: Ledger) -> None:
    assert split(ledger, batches=0) == COMPLETE


def test_the_split_can_finish_after_the_sender_resolved_everything(ledger: Ledger) -> None:
    assert ledger.start_split(REF, 1000, "request-1")
    ledger.record_split_progress(REF, {"batches_queued": 1, "messages_queued": 10})
    ledger.record_delivered(REF, 1, 10, 0)
    assert ledger.complete_if_done(REF) is None  # still splitting: more batches may come
    item = ledger.get(REF)
    assert item is not None
    assert item["status"] == SPLITTING
    final_counts = {"batches_queued": 1, "messages_queued": 10, "records_read": 10}
    assert ledger.finish_split(REF, final_counts) == COMPLETE


def test_a_repeated_s3_event_does_not_restart_a_live_import(ledger: Ledger) -> None:
    assert ledger.start_split(REF, 1000, "request-1")
    assert not ledger.start_split(REF, 1000, "request-2")  # a duplicate notification
    assert ledger.start_split(REF, 1000, "request-1")  # Lambda's retry of the same event
    ledger.fail_split(REF, "file_unreadable", {"records_read": 5})
    item = ledger.get(REF)
    assert item is not None
    assert item["status"] == FAILED
    assert item["first_error"] == "file_unreadable"
    assert ledger.start_split(REF, 1000, "request-3")  # a failed import may be dropped again


class AtomicCalls:
    """Serialises calls to a client: each DynamoDB operation is atomic, as in AWS, while the
    workers' sequences of operations interleave freely (moto itself is not thread-safe)."""

    def __init__(self, client: object) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> object:
        method = getattr(self._client, name)

        def call(*args: object, **kwargs: object) -> object:
            with self._lock:
                return method(*args, **kwargs)

        return call


def test_concurrent_senders_count_each_batch_once(stack: LocalStack) -> None:
    batches = 40
    tables = (stack.table_name("ImportsTable"), stack.table_name("BatchesTable"))
    ledger = Ledger(AtomicCalls(stack.dynamodb), *tables)
    split(ledger, batches=batches)
    errors: list[BaseException] = []

    def deliver(worker: int) -> None:
        try:
            for number in range(1, batches + 1):  # every worker tries every batch
                ledger.record_delivered(REF, number, 10, 0)
                ledger.complete_if_done(REF)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=deliver, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    item = ledger.get(REF)
    assert item is not None
    assert (item["batches_delivered"], item["messages_delivered"]) == (batches, batches * 10)
    assert item["status"] == COMPLETE


def test_list_imports_filters_by_key_prefix(ledger: Ledger) -> None:
    other = ImportRef("bucket", "imports/2020/events.ndjson", "etag-2")
    ledger.start_split(REF, 1, "r1")
    ledger.start_split(other, 1, "r2")
    assert [item["key"] for item in ledger.list_imports("imports/2020/")] == [other.key]
    assert len(ledger.list_imports()) == 2


def test_each_part_of_a_continued_split_runs_once(ledger: Ledger) -> None:
    assert ledger.start_split(REF, 1000, "request-1")
    assert ledger.claim_part(REF, 1)
    assert not ledger.claim_part(REF, 1)  # the same checkpoint delivered twice
    assert ledger.claim_part(REF, 2)
    assert not ledger.claim_part(REF, 1)  # an old checkpoint arriving late
    ledger.finish_split(REF, {"batches_queued": 0})
    assert not ledger.claim_part(REF, 3)  # nothing runs once the split has finished


def test_items_carry_a_ttl_when_a_retention_is_set(stack: LocalStack) -> None:
    ledger = Ledger(
        stack.dynamodb, stack.table_name("ImportsTable"), stack.table_name("BatchesTable"), retention_days=30
    )
    split(ledger, batches=1)
    ledger.record_delivered(REF, 1, 10, 0)
    expected = time.time() + 30 * 86_400
    item = ledger.get(REF)
    assert item is not None
    assert abs(item["expires_at"] - expected) < 60
    batch = stack.dynamodb.get_item(
        TableName=stack.table_name("BatchesTable"),
        Key={"import_id": {"S": REF.import_id}, "batch_number": {"N": "1"}},
    )["Item"]
    assert abs(int(batch["expires_at"]["N"]) - expected) < 60


def test_a_split_in_spans_sums_them_and_keeps_the_import_item_small(
    stack: LocalStack, ledger: Ledger
) -> None:
    """Each span's survey and counts live in an item of their own: the import's item (which
    the sender rewrites once per batch, billed by its size) does not grow with the spans."""
    spans = 40
    assert ledger.start_split(REF, spans << 30, "request-1")
    job = {"source": "auto", "context": {"note": "x" * 2000}}
    ledger.plan_spans(REF, spans, {"format": "ndjson", "compression": "none", "job": job})
    base = item_bytes(stack)
    reasons = {f"reason_{n}": n for n in range(8)}
    surveyed = []
    for index in range(spans):
        survey = {"start": index << 30, "end": (index + 1) << 30, "lines": 2_000_000 + index, "problem": None}
        surveyed.append(ledger.record_survey(REF, index, survey))
        ledger.record_survey(REF, index, survey)  # repeated: counted once
    assert surveyed[:-1] == [None] * (spans - 1)
    assert [survey["lines"] for survey in surveyed[-1] or []] == [2_000_000 + i for i in range(spans)]
    ledger.begin_span_split(REF)
    all_done = []
    for index in range(spans):
        assert ledger.claim_span_part(REF, index, 0)
        assert not ledger.claim_span_part(REF, index, 0)  # a repeated checkpoint
        counts = {
            "records_read": 2_000_000,
            "messages_queued": 1_999_000,
            "batches_queued": 800,
            "rejected": 1000,
            "rejected_by_reason": reasons,
            "rejects_key": "rejects/" + "k" * 1000 + f".rejects.span{index:04d}.part0000.ndjson",
            "rejects_omitted": 0,
            "format": "ndjson",
            "compression": "none",
            "job": job,
        }
        ledger.record_span_counts(REF, index, {**counts, "records_read": 5}, done=False)  # progress
        all_done.append(ledger.record_span_counts(REF, index, counts, done=True))
        ledger.record_span_counts(REF, index, counts, done=True)  # repeated: counted once
    assert all_done == [False] * (spans - 1) + [True]
    assert item_bytes(stack) - base < 2000, "the import's item grew with the spans"
    item = ledger.get(REF)
    assert item is not None
    assert (item["records_read"], item["batches_queued"], item["spans_done"]) == (
        spans * 2_000_000,
        spans * 800,
        spans,
    )
    assert item["rejected_by_reason"] == {reason: count * spans for reason, count in reasons.items()}
    assert item["rejects_key"].endswith(".span0000.part0000.ndjson")  # the first written
    assert ledger.finish_span_split(REF) is None  # batches are still pending ...
    finished = ledger.get(REF)
    assert finished is not None
    assert finished["status"] == SENDING
    assert finished["batches_queued"] == spans * 800  # ... the totals are on the item now ...
    assert ledger.finish_span_split(REF) is None  # ... and the move to SENDING happens once
    assert not ledger.claim_span_part(REF, 0, 1)  # no more parts once the import is not splitting
    assert finished["span_parts"] == spans  # the parts run, repeats not counted


def item_bytes(stack: LocalStack) -> int:
    """The item's size as DynamoDB counts it, about: its attribute names and values as JSON."""
    key = {"import_id": {"S": REF.import_id}}
    item = stack.dynamodb.get_item(TableName=stack.table_name("ImportsTable"), Key=key)["Item"]
    return len(json.dumps(item))


def test_a_restart_keeps_the_senders_counts_and_admits_each_retry_of_a_part(ledger: Ledger) -> None:
    """Issue 11: Lambda's retry of the S3 event (same request id) must not zero what the sender
    counted (those batches stay resolved); a redelivered checkpoint (higher receive count)
    redoes its part, a second copy of the same delivery does not."""
    assert ledger.start_split(REF, 1000, "request-1") == 1
    ledger.record_split_progress(REF, {"batches_queued": 2, "messages_queued": 20, "records_read": 20})
    assert ledger.record_delivered(REF, 1, 10, 0)
    assert ledger.start_split(REF, 1000, "request-1") == 2  # the retry: attempt 2
    item = ledger.get(REF)
    assert item is not None
    assert (item["batches_delivered"], item["messages_delivered"]) == (1, 10)
    assert (item["batches_queued"], item["records_read"]) == (0, 0)  # the split's own counts start over
    assert ledger.claim_part(REF, 1, attempt=1)
    assert not ledger.claim_part(REF, 1, attempt=1)  # another copy of the same delivery
    assert ledger.claim_part(REF, 1, attempt=2)  # redelivered after a run that died
    assert ledger.claim_part(REF, 2, attempt=1)
    assert not ledger.claim_part(REF, 1, attempt=3)  # a part already passed
    ledger.fail_split(REF, "internal error", {})
    assert ledger.start_split(REF, 1000, "request-9") == 1  # dropped again: a fresh first run


# ---- a split stopped for good (the split failures function) --------------------------------

KILLED_ERROR = "the splitter run was stopped: Sandbox.Timedout after 3 attempts"
SPLIT_COUNTS = {"records_read": 700, "messages_queued": 690, "batches_queued": 7, "rejected": 10}


def test_a_split_killed_on_its_last_run_fails_with_the_counts_it_recorded(ledger: Ledger) -> None:
    assert ledger.start_split(REF, 1000, "request-1")
    ledger.record_split_progress(REF, SPLIT_COUNTS)
    assert ledger.record_delivered(REF, 1, 100, 0)

    assert ledger.fail_killed_split(REF, StoppedRun("request-1"), KILLED_ERROR) == KILLED
    item = ledger.get(REF)
    assert item is not None
    assert item["status"] == FAILED
    assert {name: item[name] for name in SPLIT_COUNTS} == SPLIT_COUNTS
    assert (item["batches_delivered"], item["messages_delivered"]) == (1, 100)
    assert item["last_error"] == item["first_error"] == KILLED_ERROR
    assert item["finished_at"] >= item["started_at"]
    # The same message again: nothing changes, and it is known as this failure.
    assert ledger.fail_killed_split(REF, StoppedRun("request-1"), KILLED_ERROR) == ALREADY_KILLED
    assert ledger.get(REF) == item


def test_a_stopped_run_the_ledger_no_longer_waits_on_changes_nothing(ledger: Ledger) -> None:
    assert ledger.fail_killed_split(REF, StoppedRun("request-1"), KILLED_ERROR) == NOT_FOUND
    assert ledger.start_split(REF, 1000, "request-1")
    assert ledger.start_split(REF, 1000, "request-1") == 2  # Lambda's retry
    ledger.fail_split(REF, "not a format we read", {})
    assert ledger.start_split(REF, 1000, "request-2")  # dropped again: a restart under a new request
    before = ledger.get(REF)

    assert ledger.fail_killed_split(REF, StoppedRun("request-1"), KILLED_ERROR) == MOVED_ON
    ledger.finish_split(REF, {**SPLIT_COUNTS, "batches_queued": 1})
    assert ledger.get(REF)["status"] == SENDING  # type: ignore[index]
    assert ledger.fail_killed_split(REF, StoppedRun("request-2"), KILLED_ERROR) == MOVED_ON
    ledger.record_delivered(REF, 1, 690, 0)
    assert ledger.complete_if_done(REF) == COMPLETE_WITH_ERRORS
    assert ledger.fail_killed_split(REF, StoppedRun("request-2"), KILLED_ERROR) == MOVED_ON
    item = ledger.get(REF)
    assert item is not None
    assert before is not None
    assert item["status"] == COMPLETE_WITH_ERRORS
    assert "last_error" not in item


def test_a_stopped_part_fails_the_import_only_while_the_split_has_not_passed_it(ledger: Ledger) -> None:
    assert ledger.start_split(REF, 1000, "request-1")
    # The S3 event's run handed over: its own stop (a retry killed later) is no longer the split's.
    assert ledger.claim_part(REF, 1)
    assert ledger.fail_killed_split(REF, StoppedRun("request-1"), KILLED_ERROR) == MOVED_ON
    assert ledger.claim_part(REF, 2)
    assert ledger.fail_killed_split(REF, StoppedRun("request-1", part=1), KILLED_ERROR) == MOVED_ON
    assert ledger.fail_killed_split(REF, StoppedRun("other-request", part=2), KILLED_ERROR) == MOVED_ON
    assert ledger.get(REF)["status"] == SPLITTING  # type: ignore[index]
    # Part 3 never got to its claim (each run stopped first): the split cannot go on either.
    assert ledger.fail_killed_split(REF, StoppedRun("request-1", part=3), KILLED_ERROR) == KILLED
    assert ledger.get(REF)["status"] == FAILED  # type: ignore[index]
    assert not ledger.claim_part(REF, 3, attempt=4)  # a late copy of the task does not split on


def test_a_stopped_byte_range_fails_the_import_with_the_ranges_totals(ledger: Ledger) -> None:
    assert ledger.start_split(REF, 1000, "request-1")
    ledger.plan_spans(REF, 2, {"format": "ndjson", "compression": "none", "job": {}})
    survey = {"start": 0, "end": 500, "lines": 5, "problem": None}
    ledger.record_survey(REF, 0, survey)
    ledger.record_survey(REF, 1, {**survey, "start": 500, "end": 1000})
    # A survey already recorded is behind the split, whatever became of its run.
    stopped_survey = StoppedRun("request-1", span=1, survey=True)
    assert ledger.fail_killed_split(REF, stopped_survey, KILLED_ERROR) == MOVED_ON
    ledger.begin_span_split(REF)
    for index in (0, 1):
        assert ledger.claim_span_part(REF, index, 0)
        ledger.record_span_counts(REF, index, {**SPLIT_COUNTS, "rejected_by_reason": {"x": 10}}, done=False)
    assert ledger.claim_span_part(REF, 1, 1)  # range 1 went on to its part 1
    assert ledger.fail_killed_split(REF, StoppedRun("request-1", part=0, span=1), KILLED_ERROR) == MOVED_ON

    assert ledger.fail_killed_split(REF, StoppedRun("request-1", part=0, span=0), KILLED_ERROR) == KILLED
    item = ledger.get(REF)
    assert item is not None
    assert item["status"] == FAILED
    assert item["records_read"] == 2 * SPLIT_COUNTS["records_read"]  # the ranges' sum, on the item
    assert item["rejected_by_reason"] == {"x": 20}
    assert not ledger.claim_span_part(REF, 0, 1)


def test_a_stopped_survey_fails_the_import_before_its_range_is_surveyed(ledger: Ledger) -> None:
    assert ledger.start_split(REF, 1000, "request-1")
    ledger.plan_spans(REF, 2, {"format": "ndjson", "compression": "none", "job": {}})
    # The S3 event's run planned byte ranges: the surveys carry the split on, not that run.
    assert ledger.fail_killed_split(REF, StoppedRun("request-1"), KILLED_ERROR) == MOVED_ON
    stopped = StoppedRun("request-1", span=0, survey=True)
    assert ledger.fail_killed_split(REF, stopped, KILLED_ERROR) == KILLED
    assert ledger.get(REF)["status"] == FAILED  # type: ignore[index]
