"""The functions as the SAM CLI builds and runs them: `sam local invoke` in Docker, on loopback.

The docker tests need a running dockerd and the local Lambda base image (`make docker-up
local-image`, which `.ci/run` runs first); where dockerd does not answer they are skipped and
say why. Each invokes a function through the SAM CLI (the template's handler path, layer,
environment and memory, in a container on the host network) against a moto server holding the
stack's resources and the embedded Segment endpoint, then checks what reached the endpoint and
the ledger in moto. The other tests check the pieces that make those runs line up with the
template: the image name the SAM CLI looks for, events/env.json, events/ and the launcher.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote_plus

import pytest

from segment_importer.batch.envelope import QueuedBatch, read_envelope
from segment_importer.import_ref import ImportRef
from segment_importer.track.ledger import COMPLETE, COMPLETE_WITH_ERRORS, FAILED, Ledger
from segment_importer_local import sam_local
from segment_importer_local.chaos import AwsFaults
from segment_importer_local.event_source import SqsPoller
from segment_importer_local.runner import RunOptions, run_import
from segment_importer_local.sam_engine import SamEngine
from segment_importer_local.sam_host_network import host_network_options
from segment_importer_local.sam_local import (
    LocalAws,
    SamCli,
    SamInvokeError,
    base_image_tag,
    ensure_built,
    env_json_text,
    find_sam_python,
    function_ids,
    local_aws,
    remote_function,
)
from segment_importer_local.template_config import StackTemplate

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
SAMPLE = ROOT / "examples" / "spreadsheet.csv"
TEMPLATE = StackTemplate.load(ROOT / "template.yaml")
FUNCTIONS = function_ids(TEMPLATE)
# What a clean run invokes: every function but the one that consumes the splitter's failures.
SPLIT_FAILURES = "SplitFailuresFunction"
CLEAN_RUN_FUNCTIONS = [function for function in FUNCTIONS if function != SPLIT_FAILURES]


def _sam_python() -> Path | None:
    try:
        return find_sam_python(ROOT)
    except SamInvokeError:
        return None


SAM_PYTHON = _sam_python()
needs_sam = pytest.mark.skipif(SAM_PYTHON is None, reason="SAM CLI not found (run `make setup`)")


def _event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def _load_image_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("local_image_build", ROOT / "local-image" / "build.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- what the runs line up with (no Docker) -------------------------------------------------


@pytest.mark.sam
@needs_sam
def test_the_image_is_tagged_as_the_sam_cli_looks_for_it() -> None:
    """The SAM CLI's own naming, for the template's runtime and architecture."""
    runtime = TEMPLATE.function_property("SplitterFunction", "Runtime")
    # The local containers run this machine's architecture (the deployed stack's is arm64).
    architecture = sam_local.host_architecture()
    script = (
        "import sys\n"
        "from samcli.local.docker.lambda_image import LambdaImage, Runtime\n"
        "print(f'{LambdaImage._INVOKE_REPO_PREFIX}/{Runtime.get_image_name_tag(sys.argv[1], sys.argv[2])}')\n"
    )
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", script, runtime, architecture],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    assert base_image_tag(TEMPLATE) == result.stdout.strip()


def test_env_json_is_what_the_template_and_the_local_stack_give() -> None:
    """events/env.json is generated (`python scripts/moto_stack.py --write-env-json`): a resource
    renamed in the template, or a hand edit, shows here."""
    with local_aws(TEMPLATE) as aws:
        generated = env_json_text(aws.stack)

    assert (EVENTS / "env.json").read_text(encoding="utf-8") == generated
    overrides = json.loads(generated)
    assert set(overrides) == set(FUNCTIONS)
    assert overrides["SenderFunction"]["SEGMENT_HOST"].startswith("http://127.0.0.1:")
    assert overrides["SplitterFunction"]["WORK_QUEUE_URL"].startswith("http://127.0.0.1:")


def test_events_name_the_local_stacks_resources() -> None:
    with local_aws(TEMPLATE) as aws:
        bucket, work_queue_arn = aws.stack.bucket, aws.stack.resolver.attributes["WorkQueue.Arn"]
        failure_queue_arn = aws.stack.queue_arn("SplitterFailureQueue")
    (s3_record,) = _event("s3-put.json")["Records"]
    sqs_records = _event("sqs-batch.json")["Records"]
    assert {record["eventSourceARN"] for record in _event("split-failure.json")["Records"]} == {
        failure_queue_arn
    }

    assert s3_record["s3"]["bucket"]["name"] == bucket
    assert unquote_plus(s3_record["s3"]["object"]["key"]).startswith(
        TEMPLATE.function_environment("SplitterFunction")["IMPORTS_PREFIX"]
    )
    for record in sqs_records:
        assert record["eventSourceARN"] == work_queue_arn
        assert read_envelope(record["body"])["source"]["bucket"] == bucket


def test_the_launcher_moves_lambda_containers_to_the_host_network() -> None:
    """What the SAM CLI passes to docker-py for a function's container, and what it becomes."""
    sam_options = {
        "entrypoint": ["/var/rapid/aws-lambda-rie", "--log-level", "error"],
        "ports": {"8080": ("127.0.0.1", 5432)},
        "labels": {"sam.cli.container.type": "lambda"},
        "environment": {"A": "1"},
    }

    options = host_network_options(dict(sam_options))

    assert options["network_mode"] == "host"
    assert "ports" not in options
    flags = options["entrypoint"][3:]
    assert flags[:2] == ["--runtime-interface-emulator-address", "127.0.0.1:5432"]
    assert flags[2] == "--runtime-api-address"
    assert flags[3].startswith("127.0.0.1:")
    assert flags[3] != "127.0.0.1:5432"
    assert options["environment"] == sam_options["environment"]
    build_container = {**sam_options, "labels": {"sam.cli.container.type": "build"}}
    assert host_network_options(dict(build_container)) == build_container


@pytest.mark.parametrize(
    ("options", "refused"),
    [
        ({"dry_run": True}, "--dry-run"),
        ({"aws_faults": AwsFaults(duplicate_s3_events=True)}, "AWS fault injection"),
    ],
)
def test_the_sam_engine_refuses_what_only_the_in_process_handlers_honour(options: dict, refused: str) -> None:
    """DRY_RUN is no template variable and the AWS faults patch this process's clients: a container
    would send for real, or run without the faults. Refused before anything starts."""
    with pytest.raises(SamInvokeError, match=refused):
        SamEngine(RunOptions(files=[SAMPLE], engine="sam", **options))


# ---- through the SAM CLI, in Docker ---------------------------------------------------------


@pytest.fixture(scope="module")
def docker_ready() -> None:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed (make docker-up installs Debian's docker.io)")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60, check=False)
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        pytest.skip(f"dockerd is not running ({reason}); `make docker-up` starts it (as root)")
    builder = _load_image_builder()
    tag = base_image_tag(TEMPLATE)
    wanted = builder.inputs_digest(builder.host_python("3.13"), tag)
    found = builder.current_digest(tag)
    if found != wanted:
        state = "missing" if found is None else f"built from other inputs ({found})"
        pytest.skip(f"the local image {tag} is {state}: run `make local-image`")


@pytest.fixture(scope="module")
def sam(docker_ready: None) -> SamCli:
    if SAM_PYTHON is None:
        pytest.skip("SAM CLI not found (run `make setup`)")
    ensure_built(SAM_PYTHON, TEMPLATE)  # `sam build` only if the code changed since `make sam-build`
    return SamCli.for_build(ROOT, EVENTS / "env.json")


@pytest.mark.docker
@pytest.mark.sam
def test_the_local_run_with_the_sam_engine_delivers_every_valid_record(sam: SamCli, tmp_path: Path) -> None:
    """`segment-importer run --engine sam`: the runner's pipeline with both functions served by
    `sam local start-lambda` (before the module's moto server below takes the port)."""
    result = run_import(RunOptions(files=[SAMPLE], engine="sam", out_dir=tmp_path, show_progress=False))

    (outcome,) = result.files
    assert result.ok
    assert outcome.ledger is not None
    assert outcome.messages_delivered == outcome.ledger["messages_queued"] > 0
    assert result.endpoint_stats is not None
    assert result.endpoint_stats["messages_accepted"] == outcome.messages_delivered
    log = (Path(result.run_dir or "") / "functions.log").read_text(encoding="utf-8")
    for function in CLEAN_RUN_FUNCTIONS:  # each ran in its container, with the template's memory
        memory = TEMPLATE.function_property(function, "MemorySize")
        assert f"Mounting {ROOT / '.aws-sam' / 'build' / function} as /var/task" in log
        assert f"Memory Size: {memory} MB" in log
    # Nothing failed: the splitter failure queue stayed empty, its function was never invoked.
    assert f"Mounting {ROOT / '.aws-sam' / 'build' / SPLIT_FAILURES} as /var/task" not in log


@pytest.fixture(scope="module")
def aws(docker_ready: None) -> Iterator[LocalAws]:
    with local_aws(TEMPLATE) as running:
        yield running


def _memory_reported(sam: SamCli, function: str) -> list[str]:
    return [
        line.split("Memory Size:")[1].split("MB")[0].strip()
        for invocation in sam.invocations
        if invocation.function == function
        for line in invocation.log.splitlines()
        if line.startswith("REPORT RequestId") and "Memory Size:" in line
    ]


@pytest.mark.docker
@pytest.mark.sam
def test_a_record_split_in_one_container_reaches_the_endpoint_through_the_other(
    sam: SamCli, aws: LocalAws
) -> None:
    stack = aws.stack
    (s3_record,) = _event("s3-put.json")["Records"]
    key = unquote_plus(s3_record["s3"]["object"]["key"])
    stack.s3.upload_file(str(SAMPLE), stack.bucket, key)

    split = sam.invoke_file("SplitterFunction", EVENTS / "s3-put.json")
    (summary,) = split["imports"]
    queued_ids: list[str] = []
    sender = remote_function(stack, "SenderFunction", sam.invoke)
    poller = SqsPoller(
        stack.sqs,
        stack.work_queue_url,
        stack.resolver.attributes["WorkQueue.Arn"],
        sender,
        stack.sqs_batch_size("SenderFunction"),
    )
    drained = poller.drain(
        on_batch_done=lambda body: queued_ids.extend(
            m["messageId"] for m in QueuedBatch.from_body(body).messages
        )
    )
    ledger = Ledger(stack.dynamodb, stack.table_name("ImportsTable"), stack.table_name("BatchesTable"))
    (item,) = [entry for entry in ledger.list_imports() if entry["key"] == key]

    assert summary["key"] == key
    assert summary["messages_queued"] > 0
    assert drained.handler_errors == drained.records_failed == 0
    assert len(queued_ids) == len(set(queued_ids)) == summary["messages_queued"]
    received = aws.endpoint.by_message_id
    assert set(queued_ids) <= set(received)
    assert {received[message_id]["userId"] for message_id in queued_ids} >= {"user_008", "user_016"}
    assert item["status"] in (COMPLETE, COMPLETE_WITH_ERRORS)  # the sample holds rows it rejects
    assert item["messages_queued"] == item["messages_delivered"] == summary["messages_queued"]
    assert item["batches_failed"] == item["messages_refused"] == 0
    # The containers ran with the template's memory (the SAM CLI's REPORT line says so).
    for function in CLEAN_RUN_FUNCTIONS:
        memory = str(TEMPLATE.function_property(function, "MemorySize"))
        reported = _memory_reported(sam, function)
        assert reported
        assert set(reported) == {memory}


@pytest.mark.docker
@pytest.mark.sam
def test_the_sender_container_delivers_the_sample_sqs_batch(sam: SamCli, aws: LocalAws) -> None:
    """events/sqs-batch.json as it is: every message reaches the endpoint, which accepts only the
    write key stored in moto's SSM, so the container read it there."""
    sample_ids = [
        message["messageId"]
        for record in _event("sqs-batch.json")["Records"]
        for message in QueuedBatch.from_body(record["body"]).messages
    ]

    response = sam.invoke_file("SenderFunction", EVENTS / "sqs-batch.json")

    assert response == {"batchItemFailures": []}
    received = aws.endpoint.by_message_id
    assert sample_ids
    assert all(message_id in received for message_id in sample_ids)
    assert aws.endpoint.stats()["rejected_requests"] == {}


@pytest.mark.docker
@pytest.mark.sam
def test_the_split_failures_container_fails_the_import_of_the_sample_killed_split(
    sam: SamCli, aws: LocalAws
) -> None:
    """events/split-failure.json as it is: Lambda's record of the sample S3 event, every attempt
    timed out, and a redriven task of the same import. The ledger holds the import as the
    killed split left it (SPLITTING, claimed by the record's request id): it ends FAILED."""
    stack = aws.stack
    records = _event("split-failure.json")["Records"]
    invocation = json.loads(records[0]["body"])
    (s3_record,) = invocation["requestPayload"]["Records"]
    ref = ImportRef(
        s3_record["s3"]["bucket"]["name"],
        unquote_plus(s3_record["s3"]["object"]["key"]),
        s3_record["s3"]["object"]["eTag"],
    )
    ledger = Ledger(stack.dynamodb, stack.table_name("ImportsTable"), stack.table_name("BatchesTable"))
    # The module's splitter test imported the same sample: start this import afresh.
    for item in stack.dynamodb.scan(TableName=stack.table_name("ImportsTable"))["Items"]:
        key = {name: item[name] for name in ("import_id",) if name in item}
        if key:
            stack.dynamodb.delete_item(TableName=stack.table_name("ImportsTable"), Key=key)
    assert ledger.start_split(
        ref, s3_record["s3"]["object"]["size"], invocation["requestContext"]["requestId"]
    )

    response = sam.invoke_file(SPLIT_FAILURES, EVENTS / "split-failure.json")

    assert response == {"batchItemFailures": []}
    item = ledger.get(ref)
    assert item is not None
    assert item["status"] == FAILED
    assert item["last_error"].startswith("the splitter run was stopped: Sandbox.Timedout after 3 attempts")
    memory = str(TEMPLATE.function_property(SPLIT_FAILURES, "MemorySize"))
    assert set(_memory_reported(sam, SPLIT_FAILURES)) == {memory}
