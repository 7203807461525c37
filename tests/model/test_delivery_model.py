"""A model-based check of the delivery promise, in the spirit of Jepsen.

Hypothesis's stateful testing drives the local stack (moto, the embedded endpoint, both
handlers with IAM enforced) through random schedules: invocations that die at any AWS call
(or right after their handler returned), duplicate and late deliveries of queued messages,
the same S3 event twice, an endpoint that refuses for a while or accepts and loses the
answer, and redrives of the dead-letter queue at any moment. At quiescence (no more faults,
every queue run dry, the dead-letter queue redriven) the checker asserts: every valid record
reached the endpoint under exactly one messageId, every invalid one is in the rejects, and
the ledger says COMPLETE (COMPLETE_WITH_ERRORS exactly when the file had invalid records),
its counts equal to what the endpoint received, and the report says the same.

Bounded for a loaded 2-core machine: small files, short schedules, a fixed number of
derandomized examples (the same schedules every run).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from moto import mock_aws

from segment_importer_local.segment_endpoint import Fault, FaultPlan, SegmentEndpoint

from ..conftest import WRITE_KEY
from .pipeline import Pipeline

KEY = "imports/model.ndjson"
# Below the continuation queue's maxReceiveCount (3): a split task that dies every time is
# dead-lettered for good (and alarmed), which is not what this model checks.
MAX_SPLITTER_DEATHS = 2
# Byte-range tasks die too: a retried task redoes its part (claims are per attempt; pinned by
# test_a_byte_range_task_that_dies_after_its_claim_is_resumed).
SPLITTER_DEATHS_IN_BYTE_RANGES = True
DIE_AT = st.none() | st.integers(min_value=0, max_value=14)


def write_export(path: Path, count: int, invalid_every: int) -> tuple[set[int], set[int]]:
    valid, invalid, lines = set(), set(), []
    for number in range(1, count + 1):
        record = {
            "type": "track",
            "userId": f"user-{number % 5}",
            "event": "Played",
            "timestamp": 1_600_000_000 + number,
            "properties": {"file": KEY, "seq": number},
        }
        if invalid_every and number % invalid_every == 0:
            del record["userId"]
            invalid.add(number)
        else:
            valid.add(number)
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return valid, invalid


class DeliveryModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._aws = mock_aws()
        self._aws.start()
        self.endpoint = SegmentEndpoint(WRITE_KEY).start()
        self.folder = Path(tempfile.mkdtemp(prefix="delivery-model-"))
        self.pipeline: Pipeline | None = None
        self.expected: tuple[set[int], set[int]] = (set(), set())
        self.byte_ranges = False

    @initialize(
        count=st.integers(min_value=12, max_value=40),
        invalid_every=st.sampled_from([0, 0, 7, 11]),
        byte_ranges=st.booleans(),
        die_at=DIE_AT,
        repeat=st.booleans(),
    )
    def drop_the_file(
        self, count: int, invalid_every: int, byte_ranges: bool, die_at: int | None, repeat: bool
    ) -> None:
        # Two receives before the dead-letter queue: refusals and deaths reach it, and redrives matter.
        overrides = {"BatchMaxMessages": "8", "SplitRecordsPerPart": "15", "MaxReceiveCount": "2"}
        overrides["ParallelSplitBytes"] = "3000" if byte_ranges else "0"
        self.byte_ranges = byte_ranges
        self.pipeline = Pipeline(self.endpoint, overrides, WRITE_KEY)
        path = self.folder / "model.ndjson"
        self.expected = write_export(path, count, invalid_every)
        self.pipeline.drop(path, KEY, die_at_call=die_at, repeat=repeat)

    def _splitter_deaths(self) -> int:
        assert self.pipeline
        counts = self.pipeline.faults.counts
        return counts["SplitterFunction_died_mid_invocation"] + counts["SplitterFunction_raised"]

    @rule(die_at=DIE_AT, duplicate=st.booleans())
    def split(self, die_at: int | None, duplicate: bool) -> None:
        assert self.pipeline
        if self._splitter_deaths() >= MAX_SPLITTER_DEATHS or (
            self.byte_ranges and not SPLITTER_DEATHS_IN_BYTE_RANGES
        ):
            die_at = None
        self.pipeline.split_step(die_at_call=die_at, duplicate=duplicate)

    @rule(die_at=DIE_AT, die_after=st.booleans(), duplicate=st.booleans())
    def send(self, die_at: int | None, die_after: bool, duplicate: bool) -> None:
        assert self.pipeline
        self.pipeline.send_step(die_at_call=die_at, die_after=die_after, duplicate=duplicate)

    @rule()
    def hold_a_batch_back(self) -> None:
        assert self.pipeline
        self.pipeline.hold_one()

    @precondition(lambda self: self.pipeline is not None and self.pipeline.held)
    @rule()
    def deliver_held_batches_late(self) -> None:
        assert self.pipeline
        self.pipeline.release_held()

    @rule(requests=st.integers(min_value=1, max_value=8))
    def endpoint_refuses(self, requests: int) -> None:
        """401 for the next requests: not retried, so batches head for the dead-letter queue."""
        self.endpoint.faults = FaultPlan.script([401] * requests)
        assert self.pipeline
        self.pipeline.faults.counts["endpoint_refusals"] += requests

    @rule()
    def endpoint_accepts_and_loses_the_answer(self) -> None:
        self.endpoint.faults = FaultPlan.script([Fault.accept_then_fail()])
        assert self.pipeline
        self.pipeline.faults.counts["answers_lost"] += 1

    @rule()
    def redrive(self) -> None:
        assert self.pipeline
        self.pipeline.redrive()

    def teardown(self) -> None:
        try:
            if self.pipeline:
                self.pipeline.quiesce()
                (ref,) = self.pipeline.refs
                valid, invalid = self.expected
                figures = self.pipeline.check(ref, valid, invalid)
                MODEL_FIGURES.append(figures)
        finally:
            if self.pipeline:
                self.pipeline.close()
            self.endpoint.stop()
            self._aws.stop()


MODEL_FIGURES: list[dict[str, int]] = []


def test_a_byte_range_task_that_dies_after_its_claim_is_resumed(tmp_path: Path) -> None:
    """Found by the model (shrunk by hypothesis): a file in 2 byte ranges, the first range's
    task dies at its 4th AWS call (after its claim), and Lambda runs it again."""
    with mock_aws(), SegmentEndpoint(WRITE_KEY) as endpoint:
        overrides = {"BatchMaxMessages": "8", "SplitRecordsPerPart": "20", "ParallelSplitBytes": "3000"}
        pipeline = Pipeline(endpoint, overrides, WRITE_KEY)
        try:
            valid, invalid = write_export(tmp_path / "model.ndjson", 33, 0)
            pipeline.drop(tmp_path / "model.ndjson", KEY)
            pipeline.split_step()  # the two surveys
            pipeline.split_step()
            pipeline.split_step(die_at_call=3)  # the first range: claimed, then the environment dies
            pipeline.quiesce()
            (ref,) = pipeline.refs
            pipeline.check(ref, valid, invalid)
        finally:
            pipeline.close()


DeliveryModel.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# Bounded by examples and steps; the timeout only allows for a machine shared with others.
test_delivery_promise_holds_under_random_schedules = pytest.mark.timeout(900)(DeliveryModel.TestCase)
