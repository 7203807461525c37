"""Run the whole pipeline on this machine: moto for AWS, the real handlers, a real endpoint.

The stack comes from template.yaml (`stack`), the files are uploaded under `imports/`, the
splitter handler gets each S3 event (as an asynchronous invocation: retried, then recorded in
the splitter failure queue), the split failures function drains that queue, and the sender
handler drains the work queue the way the event source mapping would (`event_source`). By
default the sender posts to an embedded Segment-compatible endpoint; with a write key it posts
to Segment (or `host`).
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from botocore.exceptions import ClientError
from moto import mock_aws

from segment_importer.batch.envelope import read_envelope
from segment_importer.deliver import segment_client
from segment_importer.deliver.rate_limit import EventRateLimit
from segment_importer.deliver.segment_client import BatchPoster
from segment_importer.job import JOB_FILE_NAME
from segment_importer.settings import Prefixes
from segment_importer.split import splitter as splitter_module
from segment_importer.split.archives import MEMBER_SEPARATOR
from segment_importer.track import keys, reasons
from segment_importer.track.completion import complete_and_report
from segment_importer.track.ledger import COMPLETE, COMPLETE_WITH_ERRORS, Ledger
from segment_importer.track.redrive import redrive
from segment_importer.track.report import STATUS_DRY_RUN, STATUS_FAILED
from segment_importer_local import sam_engine
from segment_importer_local.chaos import AwsFaults, around_send_message_batch
from segment_importer_local.destination import preflight_host
from segment_importer_local.disk_exports import DiskExports
from segment_importer_local.endpoint_process import EndpointProcess
from segment_importer_local.errors import STOP_REQUESTED, Stopped
from segment_importer_local.event_source import (
    AsyncInvoker,
    InvocationStopped,
    QueueGate,
    SqsPoller,
    s3_put_event,
)
from segment_importer_local.inputs import InputFile, find_inputs
from segment_importer_local.moto_tuning import tuned_moto
from segment_importer_local.progress import PLAIN_EVERY_SECONDS, PipelineProgress, RetryLog, SplitProgressLog
from segment_importer_local.resume import (
    BUCKET_COPY,
    Delivered,
    DeliveredLog,
    key_digest,
    on_both,
    save_run,
    skipping_delivered,
)
from segment_importer_local.run_state import FINISHED, FUNCTIONS_LOG, RUNNING, STOPPED, write_state
from segment_importer_local.segment_endpoint import FaultPlan, SegmentEndpoint
from segment_importer_local.snapshots import LedgerSnapshots, point_to_latest
from segment_importer_local.stack import LocalFunction, LocalStack, environment, one_moto_request_at_a_time
from segment_importer_local.status import with_archive_totals
from segment_importer_local.template_config import StackTemplate

REDRIVE_ROUNDS = 3  # redrives after delivery, each followed by draining the work queue again
WORK_QUEUE_DEPTH = 4  # sender invocations' worth of batches the work queue may hold while splitting
LOCAL_FOLDER = "local/"  # under the imports prefix: where a local run drops its files
_FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass
class RunOptions:
    files: list[Path]
    job_config: Path | None = None
    write_key: str | None = None
    # {SSM parameter name: key} for the parameters job files name (seeded; never saved).
    job_write_keys: dict[str, str] = field(default_factory=dict)
    host: str | None = None
    preflight_host: str | None = None  # the settings CDN to check the key at, for a non-Segment host
    dry_run: bool = False
    out_dir: Path = Path("out")
    template_path: Path | None = None
    faults: FaultPlan | None = None  # on the embedded Segment endpoint
    aws_faults: AwsFaults = field(default_factory=AwsFaults)  # on the AWS side (none by default)
    show_progress: bool = True
    progress_every: float = PLAIN_EVERY_SECONDS  # seconds between plain lines, stderr not a terminal
    verbose: bool = False  # also echo the functions' JSON log lines to stderr
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    engine: str = "local"  # "sam": the functions in SAM CLI containers (sam_engine)
    # Each function's clients refuse what its role in template.yaml does not grant (as in AWS).
    enforce_iam: bool = True
    # After delivery, redrive the dead-letter queue (as an operator would) and deliver again.
    redrive_dead_letters: bool = False
    resumed: Delivered | None = None  # run --resume: the batches a stopped run delivered

    def to_saved(self) -> dict[str, Any]:
        """What `run --resume` needs to run this again (never the write key)."""
        return {
            "files": [str(path.resolve()) for path in self.files],
            "config": str(self.job_config.resolve()) if self.job_config else None,
            "write_key_given": bool(self.write_key),
            # A salted digest, never the key: a resume with another key is told apart and refused.
            "write_key_digest": key_digest(self.write_key) if self.write_key else None,
            "job_write_key_parameters": sorted(self.job_write_keys),
            "host": self.host,
            "preflight_host": self.preflight_host,
            "dry_run": self.dry_run,
            "parameters": self.parameter_overrides,
            "template": str(self.template_path.resolve()) if self.template_path else None,
        }


@dataclass
class FileOutcome:
    file: str
    key: str
    report: dict[str, Any]  # the splitter's report (the final one if the import finished)
    ledger: dict[str, Any] | None = None  # the import's ledger item at the end of the run
    batches_in_dead_letter_queue: int = 0  # counted in the queue itself, as a cross-check
    members: list[dict[str, Any]] = field(default_factory=list)  # an archive's: its members' items

    @property
    def messages_delivered(self) -> int:
        return self._count("messages_delivered")

    @property
    def messages_refused(self) -> int:
        return self._count("messages_refused")

    @property
    def batches_dead_lettered(self) -> int:
        return self._count("batches_failed")

    @property
    def complete(self) -> bool:
        """Every valid record of the file was accepted (or, in a dry run, validated)."""
        if self.report.get("status") == STATUS_DRY_RUN:
            return True
        ledger = self.ledger or {}
        return (
            ledger.get("status") in (COMPLETE, COMPLETE_WITH_ERRORS)
            and self.messages_delivered == ledger.get("messages_queued")
            and self.batches_dead_lettered == 0
            and self.messages_refused == 0
            and self.batches_in_dead_letter_queue == 0
        )

    @property
    def read_to_its_end(self) -> bool:
        """False when the rest of the file could not be read (a truncated gzip, a broken JSON
        array): the records after that point are unknown, so the run is not OK."""
        return reasons.FILE_UNREADABLE not in self.report.get("rejected_by_reason", {})

    def _count(self, name: str) -> int:
        return int((self.ledger or {}).get(name, 0))


@dataclass
class RunResult:
    files: list[FileOutcome]
    destination: str
    endpoint_stats: dict[str, Any] | None = None
    received_path: str | None = None
    sender_invocations: int = 0
    sender_errors: int = 0
    redelivered_records: int = 0  # SQS records that came back (failed, crashed, or retried)
    redriven_batches: int = 0  # moved back from the dead-letter queue (redrive_dead_letters)
    aws_faults_injected: dict[str, int] = field(default_factory=dict)
    split_seconds: float = 0.0  # wall time of the splitter invocations
    send_seconds: float = 0.0  # wall time draining the work queue through the sender
    bucket_copy: str | None = None  # reports and rejects, copied out of the local bucket
    mapped_path: str | None = None  # a dry run: every message it would send (NDJSON)
    page_path: str | None = None  # a dry run: the preview page of what it would send
    run_dir: str | None = None  # also holds functions.log, the functions' own log lines
    resumed_batches_skipped: int = 0  # run --resume: delivered before the stop, not sent again
    resumed_messages_skipped: int = 0
    work_queue_deepest: int | None = None  # split while sending: the most batches queued at once
    sqs_batch_calls: int = 0  # the sender's DeleteMessageBatch / ChangeMessageVisibilityBatch calls

    @property
    def ok(self) -> bool:
        return all(outcome.complete and outcome.read_to_its_end for outcome in self.files)

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        for entry, outcome in zip(document["files"], self.files, strict=True):
            entry["complete"] = outcome.complete
            entry["read_to_its_end"] = outcome.read_to_its_end
            entry["messages_delivered"] = outcome.messages_delivered
            entry["messages_refused"] = outcome.messages_refused
            entry["batches_dead_lettered"] = outcome.batches_dead_lettered
        document["ok"] = self.ok
        return document


def run_import(options: RunOptions) -> RunResult:
    """Import `options.files` through the local stack; nothing leaves this machine by default."""
    template = StackTemplate.load(options.template_path)
    inputs = find_inputs(options.files)
    with ExitStack() as stack:
        stack.enter_context(environment(_FAKE_AWS_ENVIRONMENT))
        sam = stack.enter_context(sam_engine.SamEngine(options)) if options.engine == "sam" else None
        exports = None
        if sam is None:
            stack.enter_context(mock_aws())
            exports = stack.enter_context(DiskExports().serving())
            stack.enter_context(tuned_moto())  # moto's memory and work per call bounded
            stack.enter_context(_waits_end_at_a_stop())
        stack.enter_context(_owner_only_files())
        run_dir = options.out_dir / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        stopping = stack.enter_context(_stop_recorded(run_dir))
        save_run(run_dir, options.to_saved())
        write_state(run_dir, RUNNING)
        point_to_latest(options.out_dir, run_dir)
        delivered_log = DeliveredLog(run_dir, options.resumed or Delivered())
        stack.callback(delivered_log.close)
        endpoint, write_key, host, received = _destination(options, stack, run_dir)
        overrides = {
            **_destination_parameters(options, endpoint, host, template),
            **options.parameter_overrides,
        }
        # The functions log JSON to stdout, as in Lambda: keep it in the run's folder instead,
        # with the libraries' own log lines and warnings (the terminal shows the run's progress).
        function_log: Any = stack.enter_context((run_dir / FUNCTIONS_LOG).open("w", encoding="utf-8"))
        if options.verbose:
            function_log = _EchoToStderr(function_log)
        stack.enter_context(redirect_stdout(function_log))
        stack.enter_context(_library_logs_to(function_log))
        if sam:
            aws = sam.stack(template, overrides).create(write_key, options.job_write_keys)
        else:
            local = LocalStack(template, overrides, enforce_iam=options.enforce_iam, exports=exports)
            aws = local.create(write_key, options.job_write_keys)
        snapshots = stopping.snapshots = LedgerSnapshots(_ledger(aws), run_dir)
        progress = stack.enter_context(
            PipelineProgress(enabled=options.show_progress, plain_every=options.progress_every)
        )
        result = RunResult([], destination=host or "Segment", received_path=received, run_dir=str(run_dir))
        _run_phases(options, aws, inputs, progress, result, snapshots, delivered_log, sam is not None)
        if endpoint:
            result.endpoint_stats = endpoint.stats()
        result.bucket_copy = str(_copy_bucket_out(aws, run_dir / BUCKET_COPY))
        if options.dry_run:
            result.mapped_path, result.page_path = _write_would_send(options, inputs, run_dir)
        write_state(run_dir, FINISHED, ok=result.ok)
        return result


def _run_phases(
    options: RunOptions,
    aws: LocalStack,
    inputs: list[InputFile],
    progress: PipelineProgress,
    result: RunResult,
    snapshots: LedgerSnapshots,
    delivered_log: DeliveredLog,
    in_containers: bool,
) -> None:
    """Split and deliver, then settle the final numbers."""
    # Nothing to send, or the functions in containers: one phase after the other.
    if options.dry_run or in_containers:
        started = time.perf_counter()
        result.files = _split_all(aws, options, inputs, progress, snapshots)
        snapshots.write()
        result.split_seconds = time.perf_counter() - started
        if not options.dry_run:
            started = time.perf_counter()
            _deliver(options, aws, progress, result, snapshots, delivered_log)
            result.send_seconds = time.perf_counter() - started
    else:
        _split_while_delivering(options, aws, inputs, progress, result, snapshots, delivered_log)
    _settle(aws, result.files, snapshots, delivered_log.batches)


@contextmanager
def _waits_end_at_a_stop() -> Iterator[None]:
    """A stop (Ctrl-C, SIGTERM, SIGHUP: the CLI sets STOP_REQUESTED) ends the sender's waits
    at once: between retries, and for the shared rate. The invocation's post threads are
    joined before the stop can go on (its thread pool's exit), and they would otherwise retry
    until their deadline: minutes, with a host that times out. What a stop leaves is at most
    the requests in flight, each cut at SegmentTimeoutSeconds; their batches, unanswered, are
    sent again by a resume with the same messageIds. The waits are the
    posters' and the rate limit's `sleep` (keyword defaults, for the objects the handlers
    make during the run)."""
    defaults = [BatchPoster.__init__.__kwdefaults__, EventRateLimit.__init__.__kwdefaults__]
    saved = [dict(default) for default in defaults]
    for default in defaults:
        default["sleep"] = _sleep_unless_stopped
    try:
        yield
    finally:
        for default, before in zip(defaults, saved, strict=True):
            default.update(before)


def _sleep_unless_stopped(seconds: float) -> None:
    if STOP_REQUESTED.wait(max(seconds, 0.0)):
        raise InvocationStopped("Runtime.ExitError", "the local run is stopping")


@dataclass
class _StopRecord:
    snapshots: LedgerSnapshots | None = None  # None until the stack is made


@contextmanager
def _stop_recorded(run_dir: Path) -> Iterator[_StopRecord]:
    """Ctrl-C, SIGTERM, SIGHUP or a failure, from the run folder's first moment (making the
    stack takes seconds): the state says so for `status`, and `run --resume` goes on."""
    record = _StopRecord()
    try:
        yield record
    except BaseException as error:
        _record_stop(run_dir, record.snapshots, error)
        raise


def _record_stop(run_dir: Path, snapshots: LedgerSnapshots | None, error: BaseException) -> None:
    """The run's state `stopped`, with why, and a last ledger snapshot: `status` shows the
    counts at the stop and `run --resume` carries on from delivered.ndjson."""
    if isinstance(error, Stopped):
        reason = f"stopped by {error.name}"
    elif isinstance(error, KeyboardInterrupt):
        reason = "interrupted (Ctrl-C)"
    else:
        reason = f"failed: {type(error).__name__}"  # the message may quote a record: not kept here
    try:
        if snapshots is not None:
            snapshots.write()
    except Exception:  # the stop is what matters; the last periodic snapshot stays
        logging.getLogger(__name__).warning("could not write the last ledger snapshot", exc_info=True)
    write_state(run_dir, STOPPED, reason=reason)


def _write_would_send(options: RunOptions, inputs: list[InputFile], run_dir: Path) -> tuple[str, str]:
    """A dry run's `mapped.ndjson` (the messages it would send, as the splitter mapped and
    shaped them) and `preview.html`, from the same core the splitter ran (see preview.py),
    each file under the job file the splitter found for it."""
    from segment_importer.track.report_page import preview_page
    from segment_importer_local.preview import preview_inputs

    mapped, page = run_dir / "mapped.ndjson", run_dir / "preview.html"
    with mapped.open("wb") as output:
        document = preview_inputs(inputs, options.job_config, mapped=output)
    page.write_text(preview_page(document), encoding="utf-8")
    return str(mapped), str(page)


def _destination(
    options: RunOptions, stack: ExitStack, run_dir: Path
) -> tuple[SegmentEndpoint | EndpointProcess | None, str, str | None, str | None]:
    """The embedded endpoint (default), or Segment with the caller's key."""
    if options.write_key:
        return None, options.write_key, options.host, None
    write_key = f"local-{secrets.token_hex(8)}"
    received = run_dir / "received.ndjson"
    endpoint: SegmentEndpoint | EndpointProcess
    others = options.job_write_keys.values()  # the sources of jobs that name their own key
    if options.faults is None:  # in a process of its own: it does not hold the pipeline's GIL
        endpoint = stack.enter_context(
            EndpointProcess(write_key, output_path=received, other_write_keys=others)
        )
    else:  # a fault plan's draws and scripts live in this process
        endpoint = stack.enter_context(
            SegmentEndpoint(write_key, faults=options.faults, output_path=received, other_write_keys=others)
        )
    return endpoint, write_key, endpoint.url, str(received)


def _destination_parameters(
    options: RunOptions,
    endpoint: SegmentEndpoint | EndpointProcess | None,
    host: str | None,
    template: StackTemplate,
) -> dict[str, str]:
    """Where the sender posts and the pre-flight asks: the embedded endpoint serves both. For
    Segment's own hosts (US, EU) the template's settings CDN checks the key; for another host
    only an explicit `preflight_host` can (see destination.py)."""
    if endpoint is not None:
        return {"SegmentHost": endpoint.url, "PreflightHost": endpoint.url}
    default = template.parameter_defaults().get("PreflightHost", "")
    settings_host = preflight_host(host, options.preflight_host, default)
    return {**({"SegmentHost": host} if host else {}), "PreflightHost": settings_host}


@contextmanager
def _owner_only_files() -> Iterator[None]:
    """What a run writes (received events, rejects, logs) holds personal data: owner only."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


class _EchoToStderr:
    """--verbose: the functions' log lines go to functions.log and to stderr (looked up at each
    write, so that on a terminal they go through the progress display, above its bars)."""

    def __init__(self, log: Any) -> None:
        self._log = log

    def write(self, text: str) -> int:
        sys.stderr.write(text)
        return int(self._log.write(text))

    def flush(self) -> None:
        self._log.flush()
        sys.stderr.flush()


class JsonLineFormatter(logging.Formatter):
    """A library's log record as the functions' own lines are: one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info and record.exc_info[1] is not None:
            # Where an invocation failed, and the exception's type: not its message, which
            # may quote a record's values (no personal data in logs).
            error = record.exc_info[1]
            line["exception"] = type(error).__name__
            line["traceback"] = "".join(traceback.format_tb(error.__traceback__))
        return orjson.dumps(line).decode()


@contextmanager
def _library_logs_to(stream: Any) -> Iterator[None]:
    """Every logger but the CLI's own (segment's `Unknown error`, Powertools' warnings) goes to
    the run's functions.log, not the terminal."""
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(JsonLineFormatter())  # functions.log stays one JSON object a line
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def _split_while_delivering(
    options: RunOptions,
    aws: LocalStack,
    inputs: list[InputFile],
    progress: PipelineProgress,
    result: RunResult,
    snapshots: LedgerSnapshots,
    delivered_log: DeliveredLog,
) -> None:
    """Split in a thread while the sender drains the work queue, as Lambda overlaps them.

    The gate holds the splitter back while the queue is `WORK_QUEUE_DEPTH` sender batches
    deep, so the queue (and moto's memory) stays shallow however large the file. Both
    functions' environments are set for the whole overlap: os.environ is the process's,
    and each function's own block would otherwise undo the other's on leaving.
    """
    depth = WORK_QUEUE_DEPTH * aws.sqs_batch_size("SenderFunction")
    gate = QueueGate(lambda: _queue_depth(aws.sqs, aws.work_queue_url), depth)
    outcomes: list[FileOutcome] = []
    failures: list[BaseException] = []
    started = time.perf_counter()

    # Loaded one after the other, here: a handler module's import configures Powertools'
    # loggers from the environment of the moment, which is the process's.
    # The split failures function first: the package's loggers take the config of the last one
    # loaded, and a failure is rare (the splitter's and sender's lines read as they always did).
    failures_id = _split_failures_function(aws)
    failures_function = aws.function(failures_id) if failures_id else None
    splitter_function, sender_function = aws.function("SplitterFunction"), aws.function("SenderFunction")

    def split() -> None:
        try:
            with gate.producer():
                outcomes.extend(
                    _split_all(
                        aws, options, inputs, progress, snapshots, splitter_function, failures_function
                    )
                )
                result.split_seconds = time.perf_counter() - started
        except BaseException as exc:  # re-raised in the caller's thread
            failures.append(exc)

    # Every variable the splitter's thread sets (its blocks restore them on leaving) is set
    # here first, so leaving never removes one: a removal while the sender's thread iterates
    # os.environ (botocore does, for proxies, on each client) is a KeyError in an invocation.
    both = {
        **(failures_function.environment if failures_function else {}),
        **_splitter_settings(splitter_function, options),
        **aws.function_environment("SenderFunction"),
    }
    splitter = threading.Thread(target=split, name="local-splitter", daemon=True)
    with environment(both), one_moto_request_at_a_time(), _holding_back(gate, aws.work_queue_url):
        splitter.start()
        try:
            _deliver(
                options, aws, progress, result, snapshots, delivered_log, gate=gate, sender=sender_function
            )
        except BaseException:  # Ctrl-C or a failure: the splitter stops at its next send
            gate.abort()
            splitter.join()
            raise
        gate.close()
        splitter.join()
    if failures:
        raise failures[0]
    result.files = outcomes
    result.work_queue_deepest = gate.deepest
    result.send_seconds = time.perf_counter() - started
    snapshots.write()


def _queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


@contextmanager
def _holding_back(gate: QueueGate, work_queue_url: str) -> Iterator[None]:
    """The splitter's SendMessageBatch to the work queue waits for room (`QueueGate`).

    Registered on boto3's default session, as chaos's faults are, so the client the
    splitter's handler creates inherits it; removed when the block ends.
    """

    def before(params: dict[str, Any], **_: Any) -> None:
        if params.get("QueueUrl") == work_queue_url and threading.current_thread().name == "local-splitter":
            gate.wait_for_room()

    def after(**_: Any) -> None:
        gate.sent()

    with around_send_message_batch(before, after):
        yield


def _split_all(
    aws: LocalStack,
    options: RunOptions,
    inputs: list[InputFile],
    progress: PipelineProgress,
    snapshots: LedgerSnapshots,
    splitter: LocalFunction | None = None,
    split_failures: LocalFunction | None = None,
) -> list[FileOutcome]:
    # Job files first, each at its folder's prefix: the nearest one governs a file, as in the
    # bucket (--config is the drop's root job file).
    if options.job_config:
        aws.s3.upload_file(str(options.job_config), aws.bucket, f"{_drop_folder(aws)}{JOB_FILE_NAME}")
    for job_file in (item for item in inputs if item.is_job_file):
        aws.s3.upload_file(str(job_file.path), aws.bucket, f"{_drop_folder(aws)}{job_file.relative}")
    if split_failures is None and not options.dry_run and (failures_id := _split_failures_function(aws)):
        split_failures = aws.function(failures_id)
    splitter = splitter or aws.function("SplitterFunction")
    splits = _LocalSplits(aws, options, progress, splitter, split_failures)
    with _following_split_progress(progress, snapshots):
        return [splits.split(item) for item in inputs if not item.is_job_file]


def _drop_folder(aws: LocalStack) -> str:
    return aws.prefixes.imports + LOCAL_FOLDER


def _split_failures_function(aws: LocalStack) -> str | None:
    """The function that consumes the splitter's failure queue (OnFailure destination), if any."""
    queue = aws.on_failure_queue("SplitterFunction")
    return aws.sqs_consumer(queue) if queue else None


def _splitter_settings(splitter: LocalFunction, options: RunOptions) -> dict[str, str]:
    """The splitter's environment in a local run: the template's, and the run's DRY_RUN (not a
    template variable)."""
    return {**splitter.environment, "DRY_RUN": "true" if options.dry_run else "false"}


class _LocalSplits:
    """Each file uploaded, its S3 event handed to the splitter as an asynchronous invocation,
    its later parts drained from the continuation queue, and what failed for good (the
    splitter failure queue) drained through the split failures function, as Lambda would."""

    def __init__(
        self,
        aws: LocalStack,
        options: RunOptions,
        progress: PipelineProgress,
        splitter: LocalFunction,
        split_failures: LocalFunction | None = None,
    ) -> None:
        self._aws, self._options, self._progress, self._splitter = aws, options, progress, splitter
        self._settings = _splitter_settings(splitter, options)
        continuation_url = aws.queue_urls["ContinuationQueue"]
        self._continued = SqsPoller(
            aws.sqs,
            continuation_url,
            _queue_arn(aws, continuation_url),
            splitter,
            aws.sqs_batch_size("SplitterFunction"),
        )
        failure_queue = aws.on_failure_queue("SplitterFunction")
        self._failure_url = aws.queue_urls[failure_queue] if failure_queue else None
        on_failure = self._record_failure if self._failure_url else None
        self._invoker = AsyncInvoker(splitter, aws.async_retries("SplitterFunction"), on_failure)
        self._split_failures = split_failures
        self._failed: SqsPoller | None = None
        # A dry run records nothing in the ledger: there is no import for a failure to fail.
        if self._failure_url and split_failures and not options.dry_run:
            self._failed = SqsPoller(
                aws.sqs,
                self._failure_url,
                _queue_arn(aws, self._failure_url),
                split_failures,
                aws.sqs_batch_size(split_failures.logical_id),
            )

    def _record_failure(self, record: dict[str, Any]) -> None:
        """Lambda's OnFailure destination: the invocation record, to the splitter failure queue."""
        assert self._failure_url is not None
        self._aws.sqs.send_message(QueueUrl=self._failure_url, MessageBody=orjson.dumps(record).decode())

    def split(self, item: InputFile) -> FileOutcome:
        aws, faults, path = self._aws, self._options.aws_faults, item.path
        key = f"{_drop_folder(aws)}{item.relative}"
        aws.put_export(path, key)
        head = aws.s3.head_object(Bucket=aws.bucket, Key=key)
        self._progress.start_file(item.relative, head["ContentLength"])
        event = s3_put_event(aws.bucket, key, head["ContentLength"], head["ETag"].strip('"'))
        with environment(self._settings), faults.failing_send_message_batch():
            self._invoker.invoke(event)
            if faults.duplicate_s3_events:
                faults.injected["duplicate_s3_event"] += 1
                self._invoker.invoke(event)  # S3 notifications are at-least-once
            self._continued.drain()  # the file's later parts, if it was split in several
        if self._failed is not None and self._split_failures is not None:
            with environment(self._split_failures.environment):
                self._failed.drain()  # a split stopped for good: its import is FAILED
        report = _read_report(aws, Prefixes.from_env(self._settings), key)
        self._progress.file_split(report["messages_queued"])
        return FileOutcome(file=str(path), key=key, report=report)


@contextmanager
def _following_split_progress(progress: PipelineProgress, snapshots: LedgerSnapshots) -> Iterator[None]:
    """Move the split bar, and refresh `status`'s snapshot, as the splitter logs its progress
    (at INFO: the level the function's Powertools Logger gives the package's loggers)."""

    def on_read(span: int | None, bytes_read: int) -> None:
        progress.split_read(span, bytes_read)
        snapshots.write(at_most_every=1.0)

    handler = SplitProgressLog(on_read)
    splitter_logger = logging.getLogger(splitter_module.__name__)
    splitter_logger.addHandler(handler)
    try:
        yield
    finally:
        splitter_logger.removeHandler(handler)


def _deliver(
    options: RunOptions,
    aws: LocalStack,
    progress: PipelineProgress,
    result: RunResult,
    snapshots: LedgerSnapshots,
    delivered_log: DeliveredLog,
    *,
    gate: QueueGate | None = None,
    sender: LocalFunction | None = None,
) -> None:
    resumed = options.resumed or Delivered()
    function = sender or aws.function("SenderFunction")
    sender = skipping_delivered(function, resumed, _ledger(aws), aws.s3, aws.prefixes)
    poller = SqsPoller(
        aws.sqs,
        aws.work_queue_url,
        _queue_arn(aws, aws.work_queue_url),
        sender,
        aws.sqs_batch_size("SenderFunction"),
        crashes=options.aws_faults.sender_crashes,
        gate=gate,
    )

    def tally(body: str) -> None:
        if not delivered_log.deferred(body):  # a deferred batch's copy is still to come
            progress.delivered(read_envelope(body)["message_count"])
        snapshots.write(at_most_every=1.0)

    retries = RetryLog(progress.retrying)
    client_logger = logging.getLogger(segment_client.__name__)
    client_logger.addHandler(retries)
    try:
        with environment(sender.environment):
            stats = poller.drain(on_batch_done=on_both(tally, delivered_log.batch_done))
            rounds = REDRIVE_ROUNDS if options.redrive_dead_letters else 0
            while rounds and (moved := _redrive_all(aws)):
                result.redriven_batches += moved
                stats = poller.drain(on_batch_done=on_both(tally, delivered_log.batch_done))
                rounds -= 1
    finally:
        client_logger.removeHandler(retries)
    result.resumed_batches_skipped = resumed.skipped_batches
    result.resumed_messages_skipped = resumed.skipped_messages
    result.sender_invocations, result.sender_errors = stats.invocations, stats.handler_errors
    result.redelivered_records = stats.records_failed
    result.sqs_batch_calls = stats.batch_calls
    result.aws_faults_injected = dict(options.aws_faults.injected)


def _redrive_all(aws: LocalStack) -> int:
    ledger, prefixes = _ledger(aws), aws.prefixes
    return redrive(
        aws.sqs,
        aws.dead_letter_queue_url,
        aws.work_queue_url,
        ledger=ledger,
        complete=lambda ref: complete_and_report(aws.s3, ledger, ref, prefixes),
    ).moved


def _settle(
    aws: LocalStack, outcomes: list[FileOutcome], snapshots: LedgerSnapshots, delivered: set[tuple[str, int]]
) -> None:
    """Final numbers: the ledger's items, and the dead-letter queue counted as a cross-check
    (but for copies of batches delivered: a sender that died after posting left them there)."""
    items = {item["key"]: item for item in with_archive_totals(snapshots.write())}
    in_queue = _dead_lettered(aws, delivered)
    for outcome in outcomes:
        outcome.ledger = items.get(outcome.key)  # an archive's: its members' totals
        member_prefix = f"{outcome.key}{MEMBER_SEPARATOR}"
        outcome.members = [item for key, item in sorted(items.items()) if key.startswith(member_prefix)]
        outcome.batches_in_dead_letter_queue = sum(
            count for key, count in in_queue.items() if key == outcome.key or key.startswith(member_prefix)
        )


def _dead_lettered(aws: LocalStack, delivered: set[tuple[str, int]]) -> Counter[str]:
    """Batches in the dead-letter queue per import key, but for those delivered (fault QA 2:
    a run that delivered every record said NOT OK over such copies)."""
    counts: Counter[str] = Counter()
    while True:
        messages = aws.sqs.receive_message(
            QueueUrl=aws.dead_letter_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600
        ).get("Messages", [])
        if not messages:
            return counts
        for message in messages:
            try:
                envelope = read_envelope(message["Body"])
                batch = (envelope["source"]["key"], int(envelope["batch_number"]))
            except (ValueError, KeyError):
                counts["(not a batch)"] += 1
                continue
            if batch not in delivered:
                counts[batch[0]] += 1


def _ledger(aws: LocalStack) -> Ledger:
    return Ledger(aws.dynamodb, aws.table_name("ImportsTable"), aws.table_name("BatchesTable"))


def _copy_bucket_out(aws: LocalStack, folder: Path) -> Path:
    """Reports and rejects live in moto's bucket, gone after the run: keep a copy on disk."""
    imports = aws.prefixes.imports
    for page in aws.s3.get_paginator("list_objects_v2").paginate(Bucket=aws.bucket):
        for item in page.get("Contents", []):
            if item["Key"].startswith(imports):
                continue  # the uploaded exports themselves: the user has them
            target = folder / item["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            aws.s3.download_file(aws.bucket, item["Key"], str(target))
    return folder


def _read_report(aws: LocalStack, prefixes: Prefixes, key: str) -> dict[str, Any]:
    """The import's report; a stand-in saying so when the split stopped before writing one and
    nothing could fail its import (functions.log and the splitter failure queues hold why)."""
    report_key = keys.report_key(prefixes.reports, prefixes.imports, key)
    try:
        return orjson.loads(aws.s3.get_object(Bucket=aws.bucket, Key=report_key)["Body"].read())
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in {"NoSuchKey", "404"}:
            raise
    return {
        "bucket": aws.bucket,
        "key": key,
        "status": STATUS_FAILED,
        "error": "the split stopped before it wrote a report (see functions.log)",
        "records_read": 0,
        "messages_queued": 0,
        "batches_queued": 0,
        "rejected": 0,
        "rejected_by_reason": {},
    }


def _queue_arn(aws: LocalStack, url: str) -> str:
    return aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
