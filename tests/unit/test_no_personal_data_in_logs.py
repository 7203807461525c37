"""No record content and never the write key in any log output, on any path, at any level.

Records carry a marker (`PII-MARKER-7f3a`) in every place personal data goes: user ids,
emails, names, traits, property values and keys, broken lines, oversized lines, timestamps
and call types that fail to parse. They go through every path of the real handlers, the
failing ones included: `run_import` (moto, the splitter and sender handlers, the embedded
Segment endpoint with faults: a 400 that isolates a refused message, 5xx, 429, connection
resets), a wrong write key (at the pre-flight and at the sender), SQS bodies that are
not batches, and splitter failure queue messages (Lambda's records of runs whose exceptions
quote a record, and messages that are no record) through the split failures handler.

All log output is captured, with everything at DEBUG: every record any logger creates
(`logging.Logger.handle` is tapped, so propagation and handlers do not matter, and the
record's arguments, extras and exception chain are searched, not only its formatted
message), the root handler's output, the process's stdout and stderr, and the functions' JSON
log (`<run_dir>/functions.log`). The `LogLevel` parameter is DEBUG and the `segment` library
logger is forced to DEBUG before the handlers load, so the sender handler's pin has to hold.

Each scenario runs in a process of its own (`python -m tests.unit.test_no_personal_data_in_logs
SCENARIO DIR`): root logging at DEBUG must not leak into the rest of the suite, and
Powertools keeps its handler (and the stdout it was created with) for the life of a process.
Left out of the main check: the AWS SDK's loggers (botocore, boto3, s3transfer), asserted on
by `test_aws_sdk_debug_logging_inside_the_handlers`; and the stand-ins for AWS and Segment
that only exist on this machine (moto, the `responses` library moto intercepts HTTP with,
and the embedded Segment endpoint, which logs its request lines and so its own throwaway
key). Handler exceptions the local harness logs (as Lambda would) are in the check.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = "PII-MARKER-7f3a"
WRITE_KEY = "wk7f3aSECRETdo3not9log"  # the pipeline's embedded endpoint makes its own: captured
WRONG_KEY = "wk7f3aWRONGkey4never5log"
SDK_LOGGERS = ("botocore", "boto3", "s3transfer")
STAND_IN_LOGGERS = ("moto", "responses", "segment_importer_local.segment_endpoint")
SCENARIOS = (
    "pipeline",
    "pin_removed",
    "wrong_key_sender",
    "wrong_key_preflight",
    "malformed_bodies",
    "split_failure_records",
)


def needles(*keys: str) -> dict[str, str]:
    """What must never appear: the marker, and each key raw and as Basic auth sends it."""
    found = {"marker": MARKER}
    for key in keys:
        found[f"key {key[:6]}..."] = key
        found[f"basic auth of {key[:6]}..."] = base64.b64encode(f"{key}:".encode()).decode()
    return found


# ---- inputs -------------------------------------------------------------------------------


def event(n: int, **fields: Any) -> dict[str, Any]:
    base = {
        "type": "track",
        "userId": f"{MARKER}-user-{n}",
        "anonymousId": f"{MARKER}-anon-{n}",
        "event": "Order Completed",
        "timestamp": "2021-03-04T05:06:07Z",
        "properties": {"email": f"{MARKER}@example.com", "name": f"{MARKER} Jane Doe", MARKER: n},
        "context": {"ip": "192.0.2.1", "traits": {"email": f"{MARKER}@example.org"}},
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def write_inputs(folder: Path, *, everything: bool = True) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    valid = folder / "valid.ndjson"
    valid.write_text("".join(json.dumps(event(n)) + "\n" for n in range(1, 5)))
    if not everything:
        return [valid]
    lines = [
        json.dumps(event(10, userId=None, anonymousId=None)),  # missing_user
        json.dumps(event(11, event=None)),  # missing_event
        json.dumps(event(12, type="group")),  # missing_group_id
        json.dumps(event(13, type="alias")),  # missing_previous_id
        json.dumps(event(14, timestamp=None)),  # missing_timestamp
        json.dumps(event(15, timestamp=f"{MARKER} yesterday")),  # invalid_timestamp
        json.dumps(event(16, type=f"{MARKER}-type")),  # unknown_type
        json.dumps(event(17, properties=f"{MARKER} not an object")),  # invalid_field
        json.dumps(f"{MARKER} a JSON string"),  # not_an_object
        '{"userId": "' + MARKER + '", "broken": ',  # invalid_json
        '{"userId": "' + MARKER + '\udcff"}',  # invalid_utf8 (written with surrogateescape)
        json.dumps(event(18, properties={"blob": MARKER * 3000})),  # message_too_large (>32 KB)
        '{"userId": "' + MARKER + "x" * (1 << 20) + '"}',  # record_too_large (>1 MiB)
    ]
    rejects = folder / "rejects.ndjson"
    rejects.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    rows = folder / "rows.csv"
    rows.write_bytes(
        b"userId,event,timestamp,traits.email\n"
        + f"{MARKER}-csv,Signed Up,2021-03-04T05:06:07Z,{MARKER}@example.net\n".encode()
        + f"{MARKER}-short-row,Signed Up\n".encode()  # csv_field_count
        + f"{MARKER}-bad\xff,Signed Up,2021-03-04T05:06:07Z,x\n".encode("utf-8", "surrogateescape")
    )
    # A header that cannot work (an empty name between named ones) fails the file: the error
    # names positions only. (A repeated name is imported as `name_2`, warned in the report.)
    (folder / "header.csv").write_text(f"{MARKER},,{MARKER}x\n1,2,3\n")
    broken_array = folder / "broken-array.json"
    broken_array.write_text("[" + json.dumps(event(30)) + ', {"userId": "' + MARKER + '", "x": [1, }')
    whole = gzip.compress("".join(json.dumps(event(n)) + "\n" for n in range(40, 60)).encode(), mtime=0)
    (folder / "truncated.ndjson.gz").write_bytes(whole[: len(whole) * 2 // 3])
    deep_element = '{"userId": "' + MARKER + '", "p": ' + "[" * 5000 + "]" * 5000 + "}"
    (folder / "deep.json").write_text("[" + json.dumps(event(70)) + ", " + deep_element + "]")
    return sorted(folder.iterdir())


# ---- the child process: capture everything -----------------------------------------------


class Tap:
    """Records every log record any logger handles, with all it carries, as JSON lines."""

    def __init__(self, path: Path) -> None:
        self._out = path.open("w", encoding="utf-8")
        self.in_handler = False
        self._original = logging.Logger.handle

    def install(self) -> None:
        tap = self

        def handle(logger: logging.Logger, record: logging.LogRecord) -> None:
            tap.write(record)
            tap._original(logger, record)

        logging.Logger.handle = handle  # type: ignore[method-assign]

    def write(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: search the raw parts instead
            message = ""
        parts = [message, repr(record.__dict__)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(record.exc_info[1])))
        text = "\n".join(parts)
        line = {"logger": record.name, "level": record.levelname, "in_handler": self.in_handler, "text": text}
        self._out.write(json.dumps(line) + "\n")
        self._out.flush()


def _configure_logging(out: Path) -> Tap:
    tap = Tap(out / "records.ndjson")
    tap.install()
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    # The SDK's DEBUG output is huge and is checked through the tap (its own test).
    handler.addFilter(lambda record: not record.name.startswith(SDK_LOGGERS + STAND_IN_LOGGERS))
    root.addHandler(handler)
    logging.captureWarnings(True)
    for name in ("segment", "urllib3", "botocore", "boto3", "s3transfer", "segment_importer"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    return tap


@contextmanager
def _marking_handler_time(tap: Tap) -> Iterator[None]:
    """Flags the records made while a function handler runs (not the local harness)."""
    from segment_importer_local import event_source

    original = event_source.invoke

    def invoke(function: Any, event: dict[str, Any], *args: Any) -> Any:
        tap.in_handler = True
        try:
            return original(function, event, *args)
        finally:
            tap.in_handler = False

    event_source.invoke = invoke  # type: ignore[assignment]  # the SQS poller's and the S3 events' (AsyncInvoker)
    try:
        yield
    finally:
        event_source.invoke = original


def _capture_embedded_key(keys: list[str]) -> None:
    """The pipeline's embedded endpoint makes a fresh key per run: note it, to search for it."""
    from segment_importer_local import runner

    class Recording(runner.SegmentEndpoint):  # type: ignore[name-defined,misc]
        def __init__(self, write_key: str, *args: Any, **kwargs: Any) -> None:
            keys.append(write_key)
            super().__init__(write_key, *args, **kwargs)

    runner.SegmentEndpoint = Recording  # type: ignore[attr-defined]


def _library_control(endpoint_class: Any) -> None:
    """The capture's own control, outside any handler: the library's `request.post`, unpinned,
    logs the whole body (records and the key) at DEBUG. The sender no longer calls it, so this
    shows that the tap would see such a leak if the sender's path made one."""
    from segment.analytics import request as library_request

    with endpoint_class(WRITE_KEY) as endpoint:
        library_request.post(WRITE_KEY, host=endpoint.url, batch=[event(99)])


def child(scenario: str, out: Path) -> None:
    tap = _configure_logging(out)
    if scenario == "pin_removed":  # the control: the handler's pin has no effect
        logging.getLogger("segment").setLevel = lambda level: None  # type: ignore[method-assign]

    from segment_importer_local.runner import RunOptions, run_import
    from segment_importer_local.segment_endpoint import Fault, FaultPlan, SegmentEndpoint

    keys: list[str] = []
    summary: dict[str, Any] = {"scenario": scenario}
    # ParallelSplitBytes: the 1 MiB rejects file is split in byte ranges, so their paths log too.
    overrides = {
        "LogLevel": "DEBUG",
        "BatchMaxMessages": "1",
        "MaxReceiveCount": "2",
        "ParallelSplitBytes": "262144",
    }
    with _marking_handler_time(tap):
        if scenario in ("pipeline", "pin_removed"):
            _capture_embedded_key(keys)
            faults = FaultPlan.script([400, 500, Fault.rate_limit(retry_after=1), Fault.reset(), 503])
            files = write_inputs(out / "in", everything=scenario == "pipeline")
            result = run_import(
                RunOptions(files, out_dir=out / "out", faults=faults, show_progress=False,
                           parameter_overrides=overrides)
            )  # fmt: skip
            summary.update(_outcome(result))
            if scenario == "pin_removed":
                _library_control(SegmentEndpoint)
                keys.append(WRITE_KEY)
        elif scenario.startswith("wrong_key"):
            with SegmentEndpoint(WRITE_KEY) as endpoint:
                if scenario == "wrong_key_preflight":
                    overrides = {**overrides, "PreflightHost": endpoint.url}
                result = run_import(
                    RunOptions(write_inputs(out / "in", everything=False), write_key=WRONG_KEY,
                               host=endpoint.url, out_dir=out / "out", show_progress=False,
                               parameter_overrides=overrides)
                )  # fmt: skip
                summary.update(_outcome(result), accepted=endpoint.stats()["messages_accepted"])
            keys += [WRITE_KEY, WRONG_KEY]
        elif scenario == "malformed_bodies":
            summary.update(_malformed_bodies(out))
            keys += [WRITE_KEY]
        elif scenario == "split_failure_records":
            summary.update(_split_failure_records())
            keys += [WRITE_KEY]
    summary["keys"] = keys
    summary["levels"] = {
        name: logging.getLevelName(logging.getLogger(name).getEffectiveLevel())
        for name in (
            "segment-importer-splitter",
            "segment-importer-sender",
            "segment_importer.deliver.sender",
            "segment",
        )
    }
    (out / "summary.json").write_text(json.dumps(summary))


def _outcome(result: Any) -> dict[str, Any]:
    return {
        "run_dir": result.run_dir,
        "reports": {Path(o.file).name: o.report for o in result.files},
        "refused": sum(o.messages_refused for o in result.files),
        "dead_lettered": sum(o.batches_dead_lettered for o in result.files),
        "endpoint_stats": result.endpoint_stats,
        "sender_invocations": result.sender_invocations,
    }


def _malformed_bodies(out: Path) -> dict[str, Any]:
    """SQS bodies that are not batches, straight into the sender handler."""
    from moto import mock_aws

    from segment_importer_local.event_source import invoke
    from segment_importer_local.stack import LocalStack, environment
    from segment_importer_local.template_config import StackTemplate

    bodies = [
        f"{MARKER} not JSON at all {{",
        json.dumps({"batch": [{"userId": MARKER, "traits": {"email": f"{MARKER}@x.io"}}], "source": MARKER}),
        json.dumps({"batch": MARKER, "source": {"bucket": "b", "key": "imports/x", "etag": "e"}}),
        json.dumps([{"userId": MARKER}]),
    ]
    fake_aws = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    with environment(fake_aws), mock_aws():
        aws = LocalStack(StackTemplate.load(ROOT / "template.yaml"), {"LogLevel": "DEBUG"}).create(WRITE_KEY)
        sender = aws.function("SenderFunction")
        queue_arn = "arn:aws:sqs:us-east-1:123456789012:q"
        records = [
            {"messageId": f"m{n}", "receiptHandle": "r", "body": body, "eventSource": "aws:sqs",
             "eventSourceARN": queue_arn, "attributes": {"ApproximateReceiveCount": "1"}}
            for n, body in enumerate(bodies)
        ]  # fmt: skip
        with environment(sender.environment):
            response = invoke(sender, {"Records": records})
    return {"response": response}


def _split_failure_records() -> dict[str, Any]:
    """The splitter failure queue, straight into the split failures handler: Lambda's records of
    a split whose runs raised exceptions quoting a record (its message and stack trace hold
    the marker), and messages that are no record at all."""
    from moto import mock_aws

    from segment_importer.import_ref import ImportRef
    from segment_importer.track.ledger import Ledger
    from segment_importer_local.event_source import invocation_record, invoke, s3_put_event
    from segment_importer_local.stack import LocalStack, environment
    from segment_importer_local.template_config import StackTemplate

    fake_aws = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    with environment(fake_aws), mock_aws():
        aws = LocalStack(StackTemplate.load(ROOT / "template.yaml"), {"LogLevel": "DEBUG"}).create(WRITE_KEY)
        splitter, failures = aws.function("SplitterFunction"), aws.function("SplitFailuresFunction")
        ledger = Ledger(aws.dynamodb, aws.table_name("ImportsTable"), aws.table_name("BatchesTable"))
        ledger.start_split(ImportRef(aws.bucket, "imports/killed.ndjson", "e1"), 10, "req-1")
        try:
            raise ValueError(f"cannot read {{'userId': '{MARKER}', 'email': '{MARKER}@x.io'}}")
        except ValueError as error:
            failed = error
        record = invocation_record(
            splitter, "req-1", s3_put_event(aws.bucket, "imports/killed.ndjson", 10, "e1"), 3, failed
        )
        unknown = invocation_record(
            splitter, "req-2", s3_put_event(aws.bucket, "imports/gone.ndjson", 10, "e2"), 3, failed
        )
        bodies = [
            json.dumps(record),
            json.dumps(record),  # again: the import is failed already
            json.dumps(unknown),  # no such import
            f"{MARKER} not JSON at all {{",
            json.dumps({"v": 1, "checkpoint": {"bucket": MARKER, "surprise": MARKER}}),
            json.dumps({"requestContext": {"requestId": MARKER}, "requestPayload": {"Records": [MARKER]}}),
        ]
        queue_arn = aws.queue_arn("SplitterFailureQueue")
        records = [
            {"messageId": f"m{n}", "receiptHandle": "r", "body": body, "eventSource": "aws:sqs",
             "eventSourceARN": queue_arn, "attributes": {"ApproximateReceiveCount": "1"}}
            for n, body in enumerate(bodies)
        ]  # fmt: skip
        with environment(failures.environment):
            response = invoke(failures, {"Records": records})
        item = ledger.get(ImportRef(aws.bucket, "imports/killed.ndjson", "e1")) or {}
    return {"response": response, "status": item.get("status"), "last_error": item.get("last_error")}


# ---- the tests ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every scenario, each in its own process, run side by side."""

    folders = {scenario: tmp_path_factory.mktemp(scenario) for scenario in SCENARIOS}  # not thread-safe

    def run(scenario: str) -> dict[str, Any]:
        out = folders[scenario]
        env = {**os.environ, "PYTHONWARNINGS": "always"}
        completed = subprocess.run(
            [sys.executable, "-m", "tests.unit.test_no_personal_data_in_logs", scenario, str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=240, check=False, env=env,
        )  # fmt: skip
        assert completed.returncode == 0, f"{scenario}:\n{completed.stderr[-4000:]}"
        summary = json.loads((out / "summary.json").read_text())
        records = [json.loads(line) for line in (out / "records.ndjson").read_text().splitlines()]
        functions_log = Path(summary["run_dir"], "functions.log").read_text() if "run_dir" in summary else ""
        return {
            **summary,
            "records": records,
            "stdout": completed.stdout,
            "stderr": completed.stderr,
            "functions_log": functions_log,
        }

    with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
        return dict(zip(SCENARIOS, pool.map(run, SCENARIOS), strict=True))


def leaks(run: dict[str, Any]) -> list[str]:
    """Where a needle shows up outside the SDK and the stand-ins: '<needle> in <place>: <context>'."""
    places = [("stdout", run["stdout"]), ("stderr", run["stderr"])]
    for number, line in enumerate(run["functions_log"].splitlines(), 1):
        if line.startswith('{"level"') and json.loads(line).get("name", "").startswith(STAND_IN_LOGGERS):
            continue  # the embedded endpoint's request lines, routed through Powertools
        places.append((f"functions.log line {number}", line))
    for record in run["records"]:
        if not record["logger"].startswith(SDK_LOGGERS + STAND_IN_LOGGERS):
            places.append((f"{record['level']} record of {record['logger']}", record["text"]))
    return find(needles(*run["keys"]), places)


def sdk_leaks(run: dict[str, Any]) -> list[str]:
    """The same, in what the AWS SDK logged while a handler ran."""
    places = [
        (f"{record['level']} record of {record['logger']}", record["text"])
        for record in run["records"]
        if record["logger"].startswith(SDK_LOGGERS) and record["in_handler"]
    ]
    return find(needles(*run["keys"]), places)


def find(what: dict[str, str], places: list[tuple[str, str]]) -> list[str]:
    found = []
    for label, needle in what.items():
        for place, text in places:
            at = text.find(needle)
            if at >= 0:
                found.append(f"{label} in {place}: ...{text[max(0, at - 120) : at + 60]!r}...")
    return found


# pin_removed is the control run: test_the_segment_logger_pin_is_what_keeps_bodies_out.
@pytest.mark.parametrize("scenario", [scenario for scenario in SCENARIOS if scenario != "pin_removed"])
def test_no_marker_and_no_write_key_in_any_log_output(runs: dict[str, dict[str, Any]], scenario: str) -> None:
    found = leaks(runs[scenario])
    assert not found, "\n".join(found[:20])


def test_the_scenarios_reached_every_path(runs: dict[str, dict[str, Any]]) -> None:
    """Without this, a test that finds nothing might have run nothing."""
    pipeline = runs["pipeline"]
    reasons: dict[str, int] = {}
    for report in pipeline["reports"].values():
        for reason, count in (report.get("rejected_by_reason") or {}).items():
            reasons[reason] = reasons.get(reason, 0) + count
    assert set(reasons) >= {
        "missing_user", "missing_event", "missing_group_id", "missing_previous_id", "missing_timestamp",
        "invalid_timestamp", "unknown_type", "invalid_field", "not_an_object", "invalid_json",
        "invalid_utf8", "message_too_large", "record_too_large", "csv_field_count", "file_unreadable",
    }, reasons  # fmt: skip
    assert pipeline["reports"]["header.csv"]["status"] == "FAILED"
    faults = pipeline["endpoint_stats"]["faults"]
    assert {"status", "rate_limit", "reset"} <= set(faults), faults
    assert pipeline["refused"] >= 1, "no message was refused with a 400"
    assert pipeline["endpoint_stats"]["messages_accepted"] > 0
    # The functions' own log lines were captured (Powertools JSON, with the structured extras).
    logged = {
        json.loads(line)["message"]
        for line in pipeline["functions_log"].splitlines()
        if line.startswith('{"level"')
    }
    assert {"import split", "batch delivered", "import finished"} <= logged, logged
    assert any(r["logger"] == "segment_importer.deliver.sender" for r in pipeline["records"])
    assert any(r["level"] == "DEBUG" and r["in_handler"] for r in pipeline["records"])
    # The wrong key: dead-lettered at the sender, or stopped by the pre-flight.
    assert runs["wrong_key_sender"]["dead_lettered"] >= 1
    assert runs["wrong_key_sender"]["accepted"] == 0
    preflight_reports = runs["wrong_key_preflight"]["reports"].values()
    assert [report["status"] for report in preflight_reports] == ["FAILED"]
    assert "does not know this write key" in next(iter(preflight_reports))["error"]
    assert runs["malformed_bodies"]["response"]["batchItemFailures"] == [
        {"itemIdentifier": f"m{n}"} for n in range(4)
    ]
    split_failures = runs["split_failure_records"]
    assert split_failures["status"] == "FAILED"
    assert split_failures["last_error"].startswith("the splitter run failed: ValueError after 3 attempts")
    assert split_failures["response"]["batchItemFailures"] == [
        {"itemIdentifier": f"m{n}"} for n in (2, 3, 4, 5)
    ]
    failures_logged = {
        json.loads(line)["message"]
        for line in split_failures["stdout"].splitlines()
        if line.startswith('{"level"')
    }
    assert {"stopped split: import FAILED", "split failure message not readable"} <= failures_logged
    assert runs["pipeline"]["keys"], "the embedded endpoint's key was not captured"


def test_the_segment_logger_pin_holds_and_the_sender_logs_no_body_without_it(
    runs: dict[str, dict[str, Any]],
) -> None:
    """The `segment` logger was forced to DEBUG before the sender handler loaded. With the pin,
    the library logs nothing at DEBUG. The control run disables the pin: the library's
    `request.post` logged whole bodies (records and the write key) there, but the sender now
    posts the stored bytes itself (deliver/wire.py), which logs no body at any level, so even
    the control run's `segment*` loggers hold neither a record's data nor the key."""
    pinned = [r for r in runs["pipeline"]["records"] if r["logger"] == "segment" and r["level"] == "DEBUG"]
    assert pinned == []
    assert runs["pipeline"]["levels"] == {
        "segment-importer-splitter": "DEBUG",  # LogLevel=DEBUG reached the functions' loggers
        "segment-importer-sender": "DEBUG",
        "segment_importer.deliver.sender": "DEBUG",
        "segment": "WARNING",  # forced to DEBUG first: the sender handler's pin won
    }
    control = runs["pin_removed"]
    assert control["levels"]["segment"] == "DEBUG"
    assert control["keys"], "the embedded endpoint's key was not captured"
    assert control["endpoint_stats"]["messages_accepted"] > 0  # bodies were posted, and not logged
    library = [r for r in control["records"] if _is_library_control(r)]
    assert library, "the library's own request.post logged no body: the capture would not see a leak"
    assert MARKER in library[0]["text"]
    assert WRITE_KEY in library[0]["text"]
    leaks = [
        r["logger"]
        for r in control["records"]  # the library's and the functions' own loggers (the AWS SDK's
        # are the subject of test_aws_sdk_debug_logging_inside_the_handlers)
        if r["logger"].startswith("segment")
        and not _is_library_control(r)
        and (MARKER in r["text"] or any(key in r["text"] for key in control["keys"]))
    ]
    assert leaks == []


def _is_library_control(record: dict[str, Any]) -> bool:
    return not record["in_handler"] and record["logger"] == "segment" and "making request" in record["text"]


def test_aws_sdk_debug_logging_inside_the_handlers(runs: dict[str, dict[str, Any]]) -> None:
    scenarios = ("pipeline", "wrong_key_sender", "split_failure_records")
    found = [leak for scenario in scenarios for leak in sdk_leaks(runs[scenario])]
    assert not found, "\n".join(found[:10])


def test_an_error_answer_that_echoes_the_request_stays_out_of_the_failure_reason() -> None:
    """The reason a batch failed is logged and kept in the ledger: Segment's error code only,
    never text a proxy or stand-in host echoes back (here: the whole batch, and the key)."""
    from segment.analytics.request import APIError

    from segment_importer.deliver.segment_client import BatchPoster, DeliveryFailed, SegmentTarget

    def echo(write_key: str, **request: Any) -> None:
        raise APIError(403, f"{write_key} {request['batch']}", f"echo of {request['batch']}")

    poster = BatchPoster(SegmentTarget(WRITE_KEY, "https://segment.invalid"), post=echo, sleep=lambda _: None)
    with pytest.raises(DeliveryFailed) as caught:
        poster.deliver([event(1)], deadline=time.monotonic() + 30)
    assert str(caught.value) == "Segment answered HTTP 403 (unrecognised error code)"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


if __name__ == "__main__":  # the child: python -m tests.unit.test_no_personal_data_in_logs SCENARIO DIR
    child(sys.argv[1], Path(sys.argv[2]))
