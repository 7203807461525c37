"""A job's own workspace: the keys it may name, the stack's policy, the version 2 envelope,
the sender's resolver and the pre-flight of the job's key (over real HTTP)."""

from __future__ import annotations

import orjson
import pytest

from segment_importer.batch.envelope import (
    MalformedBatch,
    QueuedBatch,
    batch_body,
    envelope_target,
    read_envelope,
)
from segment_importer.batch.packing import QUEUE_ENVELOPE_BYTES, Batch
from segment_importer.deliver.preflight import PreflightFailed, WriteKeyPreflight, check_write_key
from segment_importer.deliver.target_resolver import TargetRefused, TargetResolver
from segment_importer.deliver.targets import MAX_NAME_CHARS, JobTarget, TargetPolicy
from segment_importer.import_ref import ImportRef
from segment_importer.job import JobOptions, JobOptionsError, parse_job_document
from segment_importer_local.segment_endpoint import SegmentEndpoint
from segment_importer_local.template_config import StackTemplate

from ..conftest import WRITE_KEY

# The template's defaults: what a deployed stack allows unless told otherwise.
PREFIX = StackTemplate.load().parameter_defaults()["JobKeyParameterPath"]
DEFAULT = StackTemplate.load().parameter_defaults()["WriteKeyParameterName"]
SOURCE = ImportRef("drops", "imports/acme/events.ndjson", "etag")
MESSAGE = b'{"type":"track","userId":"u","event":"E","messageId":"m"}'


def policy(default_host: str = "https://api.segment.io") -> TargetPolicy:
    return TargetPolicy(DEFAULT, default_host, PREFIX, ("https://events.eu1.segmentapis.com",))


def one_batch() -> Batch:
    batch = Batch(number=4)
    batch.bodies.append(MESSAGE)
    return batch


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"writeKeyParameter": "write-keys/test"}, "not an SSM parameter name"),
        ({"writeKeyParameter": PREFIX + "../write-key"}, "no '..'"),
        ({"writeKeyParameter": PREFIX + "*"}, "not an SSM parameter name"),
        ({"writeKeyParameter": PREFIX + "a?"}, "not an SSM parameter name"),
        ({"writeKeyParameter": PREFIX + "x" * MAX_NAME_CHARS}, f"at most {MAX_NAME_CHARS} characters"),
        ({"writeKeyParameter": "secretsmanager:segment/test"}, "Secrets Manager is for the stack's own key"),
        ({"writeKeyParameter": 7}, "not a string"),
        ({"host": "http://events.eu1.segmentapis.com"}, "https only"),
        ({"host": "https://events.eu1.segmentapis.com/v1/batch"}, "give the host only"),
        ({"host": "https://user@events.eu1.segmentapis.com"}, "give the host only"),
        ({"host": "https://events.eu1.segmentapis.com:port"}, "port is not a number"),
        ({"host": "events.eu1.segmentapis.com"}, "not an https URL"),
    ],
)
def test_check_job_names_what_is_wrong_with_a_target(document: dict[str, object], fragment: str) -> None:
    with pytest.raises(JobOptionsError) as caught:
        parse_job_document(orjson.dumps(document), "job.json")
    (problem,) = caught.value.problems
    assert fragment in problem
    assert problem.startswith(f"job.json: {next(iter(document))!r} must be")


def test_every_target_problem_is_listed_at_once() -> None:
    document = {"writeKeyParameter": "secretsmanager:x", "host": "http://collector.example.com"}
    with pytest.raises(JobOptionsError) as caught:
        parse_job_document(orjson.dumps(document), "job.json")
    assert len(caught.value.problems) == 2


def test_a_job_without_a_target_reads_and_writes_as_before() -> None:
    job = JobOptions().merged_with({"event": "Signed Up"})
    assert job.target is None
    assert "writeKeyParameter" not in job.to_document()
    assert "host" not in job.to_document()


def test_a_target_survives_the_checkpoint_round_trip() -> None:
    job = JobOptions().merged_with(
        {"writeKeyParameter": PREFIX + "test", "host": "https://events.eu1.segmentapis.com"}
    )
    assert job.target == JobTarget(PREFIX + "test", "https://events.eu1.segmentapis.com")
    assert JobOptions().merged_with(job.to_document()) == job


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        (JobTarget("/segment-importer/other/key"), f"is not under {PREFIX}"),
        (JobTarget(PREFIX.rstrip("/") + "-old/key"), f"is not under {PREFIX}"),  # a sibling path
        (JobTarget(host="https://collector.example.com"), "is not one the stack allows"),
        (JobTarget(PREFIX), "a path, not a parameter name"),  # QA: the folder itself passed
    ],
)
def test_the_policy_refuses_what_the_stack_does_not_allow(target: JobTarget, fragment: str) -> None:
    (problem,) = policy().problems(target)
    assert fragment in problem


@pytest.mark.parametrize(
    "target",
    [
        None,
        JobTarget(),
        JobTarget(PREFIX + "test"),
        JobTarget(PREFIX + "eu/prod"),
        JobTarget(DEFAULT),  # the stack's own, named explicitly
        JobTarget(host="https://events.eu1.segmentapis.com"),
        JobTarget(host="https://api.segment.io/"),  # the stack's SegmentHost
        JobTarget(host="https://API.Segment.IO"),  # host names are case-insensitive (QA)
    ],
)
def test_the_policy_allows_the_prefix_the_hosts_and_the_stacks_own(target: JobTarget | None) -> None:
    assert policy().problems(target) == []


def test_no_path_configured_allows_only_the_stacks_own_key() -> None:
    closed = TargetPolicy(DEFAULT, "https://api.segment.io", "", ())
    assert closed.problems(JobTarget(DEFAULT)) == []
    (problem,) = closed.problems(JobTarget(PREFIX + "test"))
    assert "no JobKeyParameterPath configured" in problem


def test_the_policy_reads_the_functions_environment() -> None:
    env = {
        "WRITE_KEY_PARAMETER": DEFAULT,
        "SEGMENT_HOST": "https://api.segment.io/",
        "JOB_KEY_PARAMETER_PATH": PREFIX,
        "JOB_SEGMENT_HOSTS": "https://api.segment.io,https://events.eu1.segmentapis.com",
    }
    read = TargetPolicy.from_env(env)
    assert read == TargetPolicy(
        DEFAULT,
        "https://api.segment.io",
        PREFIX,
        ("https://api.segment.io", "https://events.eu1.segmentapis.com"),
    )
    assert read.host_of(None) == "https://api.segment.io"
    assert read.parameter_of(JobTarget(host="https://events.eu1.segmentapis.com")) == DEFAULT


def test_a_body_without_a_target_is_version_1_as_before() -> None:
    body = batch_body(SOURCE, one_batch())
    assert body.startswith(b'{"v":1,')
    assert b'"target"' not in body
    assert QueuedBatch.from_body(body).target is None
    assert envelope_target(read_envelope(body)) is None


def test_a_body_with_a_target_is_version_2_and_carries_only_names() -> None:
    target = JobTarget(PREFIX + "eu", "https://events.eu1.segmentapis.com")
    body = batch_body(SOURCE, one_batch(), target)
    envelope = read_envelope(body)
    assert envelope["v"] == 2
    assert envelope["target"] == {
        "writeKeyParameter": PREFIX + "eu",
        "host": "https://events.eu1.segmentapis.com",
    }
    queued = QueuedBatch.from_body(body)
    assert (queued.target, queued.number, queued.messages) == (target, 4, [orjson.loads(MESSAGE)])
    only_key = batch_body(SOURCE, one_batch(), JobTarget(PREFIX + "test"))
    assert read_envelope(only_key)["target"] == {"writeKeyParameter": PREFIX + "test"}


def test_the_largest_target_fits_the_queue_envelope_allowance() -> None:
    longest = ImportRef("b" * 63, "imports/" + "k" * 1016, "e" * 40)
    target = JobTarget("/" + "p" * (MAX_NAME_CHARS - 1), "https://" + "h" * (MAX_NAME_CHARS - 8))
    batch = Batch(number=10**9)
    batch.bodies.append(MESSAGE)
    body = batch_body(longest, batch, target)
    assert len(body) - len(MESSAGE) <= QUEUE_ENVELOPE_BYTES


@pytest.mark.parametrize(
    "target",
    [None, {}, {"writeKeyParameter": "/x/*"}, {"host": "ftp://h"}, {"writeKey": "a-key"}, "text"],
)
def test_a_version_2_body_with_a_target_this_code_does_not_write_is_malformed(target: object) -> None:
    envelope = {
        "v": 2,
        "source": {"bucket": "b", "key": "k", "etag": "e"},
        "batch_number": 1,
        "message_count": 1,
    }
    if target is not None:
        envelope["target"] = target
    body = orjson.dumps(envelope)[:-1] + b',"batch":[' + MESSAGE + b"]}"
    with pytest.raises(MalformedBatch):
        QueuedBatch.from_body(body)
    with pytest.raises(MalformedBatch):
        read_envelope(body)


def test_the_resolver_posts_each_target_with_its_own_key() -> None:
    keys = {DEFAULT: WRITE_KEY, PREFIX + "test": "the-test-source-key"}
    with SegmentEndpoint(WRITE_KEY, other_write_keys=["the-test-source-key"]) as endpoint:
        resolver = TargetResolver(policy(endpoint.url), keys.__getitem__, timeout_seconds=5)
        resolver.poster(None).deliver([orjson.loads(MESSAGE)], deadline=float("inf"))
        test_message = {**orjson.loads(MESSAGE), "messageId": "m2"}
        resolver.poster(JobTarget(PREFIX + "test")).deliver([test_message], deadline=float("inf"))
        assert endpoint.accepted_by_write_key() == {WRITE_KEY: 1, "the-test-source-key": 1}


def test_the_resolver_refuses_before_reading_a_key_and_never_says_one() -> None:
    read: list[str] = []

    def key_of(name: str) -> str:
        read.append(name)
        raise RuntimeError("ParameterNotFound: value=secret-ish")

    resolver = TargetResolver(policy(), key_of)
    with pytest.raises(TargetRefused, match="is not under"):
        resolver.target(JobTarget("/elsewhere/key"))
    assert read == []
    with pytest.raises(TargetRefused) as caught:
        resolver.target(JobTarget(PREFIX + "missing"))
    assert str(caught.value) == f"the write key in '{PREFIX}missing' could not be read (RuntimeError)"


def test_the_preflight_asks_about_the_jobs_key_not_the_stacks(endpoint: SegmentEndpoint) -> None:
    keys = {PREFIX + "test": WRITE_KEY, PREFIX + "typo": "a-key-no-source-has"}
    stack_key_reads: list[int] = []

    def stack_key() -> str:
        stack_key_reads.append(1)
        return "the-stacks-key-unknown-here"

    preflight = WriteKeyPreflight(endpoint.url, stack_key, key_of=keys.__getitem__)
    job = JobOptions().merged_with({"writeKeyParameter": PREFIX + "test"})
    check_write_key(preflight, policy(), job)
    assert stack_key_reads == []
    with pytest.raises(PreflightFailed, match="pre-flight failed") as caught:
        check_write_key(preflight, policy(), JobOptions().merged_with({"writeKeyParameter": PREFIX + "typo"}))
    assert "a-key-no-source-has" not in str(caught.value)
    with pytest.raises(PreflightFailed, match=f"'{PREFIX}missing' could not be read \\(KeyError\\)"):
        check_write_key(
            preflight, policy(), JobOptions().merged_with({"writeKeyParameter": PREFIX + "missing"})
        )
    with pytest.raises(PreflightFailed, match="pre-flight failed"):
        check_write_key(preflight, policy(), JobOptions())  # no target: the stack's key


def test_a_target_the_stack_refuses_is_a_job_error_before_any_key_is_read() -> None:
    preflight = WriteKeyPreflight("http://127.0.0.1:9", lambda: pytest.fail("read the stack's key"))
    job = JobOptions().merged_with(
        {"writeKeyParameter": "/elsewhere/key", "host": "https://collector.example.com"}
    )
    with pytest.raises(JobOptionsError) as caught:
        check_write_key(preflight, policy(), job)
    assert len(caught.value.problems) == 2


def test_a_sender_without_a_resolver_never_posts_a_targeted_batch_to_its_default() -> None:
    from segment_importer.deliver.segment_client import BatchPoster, SegmentTarget
    from segment_importer.deliver.sender import SenderServices, send_records
    from segment_importer.settings import Prefixes

    body = batch_body(SOURCE, one_batch(), JobTarget(PREFIX + "test")).decode()
    record = {"messageId": "targeted", "body": body, "attributes": {"ApproximateReceiveCount": "1"}}
    with SegmentEndpoint(WRITE_KEY) as endpoint:
        services = SenderServices(BatchPoster(SegmentTarget(WRITE_KEY, endpoint.url, 5.0)), None, Prefixes())
        response = send_records([record], services, remaining_seconds=lambda: 60.0)
        assert response == {"batchItemFailures": [{"itemIdentifier": "targeted"}]}
        assert endpoint.stats()["requests"] == 0
