"""`status`, `rejects`, `redrive` and `check-job`: read what runs and stacks left behind.

Against a deployed stack these need AWS credentials and a region; a missing one is a one-line
error naming what is missing, never a botocore traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Console

from segment_importer.deliver.targets import TargetPolicy
from segment_importer.job import JobOptionsError, parse_job_document
from segment_importer.track.ledger import FINAL_STATUSES
from segment_importer_local.errors import CliError, usage_error
from segment_importer_local.resume import resume_command

if TYPE_CHECKING:
    from segment_importer_local.inputs import InputFile

STOPPED_STATUS = "STOPPED"  # an import a stopped local run left unfinished (not a ledger status)


def add_inspect_commands(commands: Any) -> None:
    _add_status(commands)
    _add_rejects(commands)
    redrive = commands.add_parser(
        "redrive",
        help="move dead-lettered batches back to the work queue",
        description="Move a deployed stack's dead-lettered batches back to its work queue, and reopen "
        "their imports in the ledger. Example: segment-importer redrive --stack segment-importer",
    )
    redrive.add_argument("--stack", required=True, help="the deployed stack's name")
    redrive.add_argument("--key", help="only this import's batches (its key under imports/)")
    redrive.add_argument("--force", action="store_true", help="also batches past Segment's dedupe window")
    _add_region_argument(redrive)
    redrive.set_defaults(command=_redrive)
    check = commands.add_parser(
        "check-job",
        help="validate a job file and print the options it sets",
        description="Check a job file (the job.json format) and report every problem in it; print the "
        "options it sets when it has none. Example: segment-importer check-job imports/2019/job.json",
    )
    check.add_argument("job_file", type=Path)
    check.add_argument(
        "--template", type=Path, help="template.yaml whose JobKeyParameterPath and JobSegmentHosts apply"
    )
    check.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a stack parameter as deployed, e.g. JobKeyParameterPath=/team-a/segment/ (repeatable)",
    )
    check.set_defaults(command=_check_job)


def _add_status(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help="where imports stand: progress, counts, rates, errors",
        description="Where imports stand: progress, counts, rate, ETA and errors, from the latest local "
        "run (default), a local run's folder, or a deployed stack's ledger. Examples: "
        "segment-importer status --watch; segment-importer status --stack segment-importer imports/2019/",
    )
    status.add_argument("prefix", nargs="?", default="", metavar="KEY-PREFIX", help="only keys starting so")
    _add_source_arguments(status)
    status.add_argument("--watch", action="store_true", help="refresh until every import has finished")
    status.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (--watch)")
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    status.set_defaults(command=_status)


def _add_rejects(commands: Any) -> None:
    rejects = commands.add_parser(
        "rejects",
        help="print or download the rejects of one import",
        description="Print (or --output) the records one import rejected, and the messages Segment "
        "refused (HTTP 400). KEY is the import's key, or the name given to `run`. Examples: "
        "segment-importer rejects signups.csv; segment-importer rejects imports/2019/events.csv --stack NAME",
    )
    rejects.add_argument("key", metavar="KEY", help="the import's key (imports/2019/events.csv) or file name")
    _add_source_arguments(rejects)
    rejects.add_argument("--bucket", help="the import bucket (default: the stack's)")
    rejects.add_argument("--output", type=Path, help="write to this file instead of printing")
    rejects.set_defaults(command=_rejects)


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", help="a deployed stack's name")
    where.add_argument("--table", help="a deployed imports table's name")
    where.add_argument(
        "--local", type=Path, metavar="RUN_DIR", help="a local run's folder (default: the latest)"
    )
    parser.add_argument("--out", type=Path, default=Path("out"), help="where local runs are (default: out)")
    _add_region_argument(parser)


def _add_region_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--region",
        help="the deployed stack's AWS region (default: AWS_REGION, then AWS_DEFAULT_REGION, then the "
        "profile's region)",
    )


def aws_client(service: str, arguments: argparse.Namespace) -> Any:
    """A client in the region the user set: --region, else AWS_REGION (which botocore itself
    does not read for a client's region), else AWS_DEFAULT_REGION, else the profile's."""
    import boto3

    region = (
        getattr(arguments, "region", None)
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or None  # botocore then takes the profile's region (AWS_PROFILE, ~/.aws/config)
    )
    return boto3.Session(region_name=region).client(service)


@contextmanager
def aws_errors() -> Iterator[None]:
    """botocore's exceptions as one line naming what is missing."""
    from botocore import exceptions

    try:
        yield
    except exceptions.NoRegionError:
        raise CliError(
            "no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region)"
        ) from None
    except (exceptions.NoCredentialsError, exceptions.PartialCredentialsError):
        raise CliError(
            "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    except exceptions.EndpointConnectionError as error:
        raise CliError(f"cannot reach AWS: {error}") from None
    except exceptions.ClientError as error:
        detail = error.response.get("Error", {})
        raise CliError(
            f"AWS answered {detail.get('Code', 'an error')}: {detail.get('Message', '')}"
        ) from None
    except exceptions.BotoCoreError as error:
        raise CliError(f"AWS: {error}") from None


def _status(arguments: argparse.Namespace) -> int:
    from segment_importer_local.status_view import status_table, summary_lines

    read = _imports_reader(arguments)
    run_dir = _local_run(arguments)
    console = Console()
    with aws_errors():
        if arguments.watch and not arguments.json:
            statuses = _watch(read, console, arguments.interval, run_dir)
        else:
            statuses = _described(read(), run_dir)
            if arguments.json:
                print(orjson.dumps(statuses, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
                return 0
            console.print(status_table(statuses, width=console.width))
    for line in summary_lines(statuses):
        console.print(line, markup=False)
    if run_dir and (stop := _stopped(run_dir)):
        console.print(
            f"This run did not finish ({stop.get('reason', 'stopped')}): the counts are as at the stop. "
            f"Resume it with: {resume_command(run_dir)}",
            style="yellow",
            markup=False,
        )
    return 0


def _local_run(arguments: argparse.Namespace) -> Path | None:
    """The local run `status` reads (None for a deployed stack's ledger)."""
    from segment_importer_local import status as status_module

    if arguments.stack or arguments.table:
        return None
    return status_module.local_run_dir(arguments.out, arguments.local)


def _stopped(run_dir: Path) -> dict[str, Any] | None:
    from segment_importer_local.run_state import STOPPED, read_state

    state = read_state(run_dir)
    return state if state and state.get("state") == STOPPED else None


def _described(items: list[dict[str, Any]], run_dir: Path | None) -> list[dict[str, Any]]:
    """Each import's status; those a stopped local run left unfinished say STOPPED, not the
    SPLITTING or SENDING the ledger held when it stopped (nothing moves them on any more)."""
    from segment_importer_local import status as status_module

    statuses = [status_module.describe(item) for item in items]
    if run_dir is None or not _stopped(run_dir):
        return statuses
    return [
        status
        if status["status"] in FINAL_STATUSES
        else {**status, "status": STOPPED_STATUS, "ledger_status": status["status"], "eta_seconds": None}
        for status in statuses
    ]


def _watch(
    read: Callable[[], list[dict[str, Any]]], console: Console, interval: float, run_dir: Path | None
) -> list[dict[str, Any]]:
    from rich.live import Live

    from segment_importer_local import status as status_module
    from segment_importer_local.status_view import status_table

    with Live(console=console, refresh_per_second=4) as live:
        while True:
            statuses = _described(read(), run_dir)
            live.update(status_table(statuses, width=console.width))
            if status_module.all_final(statuses) or (run_dir and _stopped(run_dir)):
                return statuses
            time.sleep(interval)


def _imports_reader(arguments: argparse.Namespace) -> Callable[[], list[dict[str, Any]]]:
    from segment_importer_local import status as status_module

    if arguments.stack or arguments.table:
        with aws_errors():
            table = arguments.table or status_module.table_of_stack(
                aws_client("cloudformation", arguments), arguments.stack
            )
            return status_module.ledger_reader(aws_client("dynamodb", arguments), table, arguments.prefix)
    try:
        run_dir = status_module.local_run_dir(arguments.out, arguments.local)
    except FileNotFoundError as error:
        raise CliError(str(error)) from None
    try:
        status_module.read_snapshot(run_dir)
    except FileNotFoundError as error:
        if run_dir.is_dir() and _stopped(run_dir):  # stopped while its stack was being made
            return list  # nothing in its ledger yet; `status` says it stopped and how to resume
        raise CliError(str(error)) from None
    return status_module.snapshot_reader(run_dir, arguments.prefix)


def _rejects(arguments: argparse.Namespace) -> int:
    from segment_importer_local import rejects_lookup

    if arguments.stack or arguments.table or arguments.bucket:
        with aws_errors():
            found = rejects_lookup.deployed(arguments)
    else:
        found = rejects_lookup.local(arguments)
    if arguments.output:
        try:
            arguments.output.write_bytes(found.body)
        except OSError as error:
            raise usage_error(
                f"--output {arguments.output}: cannot write it ({error.strerror or error})"
            ) from None
        print(f"{found.lines} rejected records written to {arguments.output}", file=sys.stderr)
    else:
        sys.stdout.write(found.body.decode("utf-8", "replace"))
    for member, lines in found.members:  # an archive: whose rejects are whose
        print(f"{lines} rejects for {member}", file=sys.stderr)
    if not found.lines:
        print(f"0 rejects for {found.key}", file=sys.stderr)
    return 0


def _redrive(arguments: argparse.Namespace) -> int:
    from segment_importer.settings import Prefixes
    from segment_importer.track.completion import complete_and_report
    from segment_importer.track.ledger import Ledger
    from segment_importer.track.redrive import redrive
    from segment_importer_local.template_config import StackTemplate

    environment = StackTemplate.load().function_environment("SenderFunction")
    prefixes = Prefixes.from_env({name: str(value) for name, value in environment.items()})
    with aws_errors():
        cloudformation = aws_client("cloudformation", arguments)

        def physical(logical_id: str) -> str:
            detail = cloudformation.describe_stack_resource(
                StackName=arguments.stack, LogicalResourceId=logical_id
            )
            return detail["StackResourceDetail"]["PhysicalResourceId"]

        ledger = Ledger(aws_client("dynamodb", arguments), physical("ImportsTable"), physical("BatchesTable"))
        s3 = aws_client("s3", arguments)
        result = redrive(
            aws_client("sqs", arguments),
            physical("DeadLetterQueue"),
            physical("WorkQueue"),
            key=arguments.key,
            ledger=ledger,
            force=arguments.force,
            complete=lambda ref: complete_and_report(s3, ledger, ref, prefixes),
        )
    print(redrive_summary(result))
    return 1 if result.too_old else 0


def redrive_summary(result: Any) -> str:
    """What a redrive did, and the dedupe-window warning when it matters."""
    from segment_importer.track.redrive import SEGMENT_DEDUPE_WINDOW_SECONDS

    window_hours = SEGMENT_DEDUPE_WINDOW_SECONDS // 3600
    lines = [
        f"moved {result.moved} batches back to the work queue ({len(result.imports)} imports reopened); "
        f"{result.kept + result.too_old} left in the dead-letter queue"
    ]
    if result.too_old:
        lines.append(
            f"refused {result.too_old} batches first queued more than {window_hours - 1} h ago: Segment may "
            f"have accepted them with the answer lost, and it dedupes messageIds for only about "
            f"{window_hours} h, so redriving them now can create duplicates. Use --force to redrive anyway."
        )
    if result.forced:
        lines.append(
            f"warning: {result.forced} batches were older than Segment's {window_hours} h dedupe window "
            "(--force): any of them Segment had already accepted is now duplicated."
        )
    return "\n".join(lines)


def _check_job(arguments: argparse.Namespace) -> int:
    from segment_importer.mapping.shaping import redacted
    from segment_importer_local.cli_run import parameter_overrides
    from segment_importer_local.job_targets import template_policy
    from segment_importer_local.template_config import StackTemplate

    template = StackTemplate.load(arguments.template)
    overrides = parameter_overrides(arguments.parameter, template)
    policy = template_policy(template, overrides)
    hash_path = {**template.parameter_defaults(), **overrides}["HashKeyParameterPath"]
    document = checked_job_document(arguments.job_file, policy, hash_path)
    # A literal hash key is a secret: shown as the reports and the preview show it.
    print(orjson.dumps(redacted(document), option=orjson.OPT_INDENT_2).decode())
    return 0


def checked_job_document(
    path: Path, policy: TargetPolicy | None = None, hash_path: str | None = None
) -> dict[str, Any]:
    """The job file's document, or a usage error listing every problem in it (with `policy`,
    also a workspace the stack would not allow; with `hash_path`, a hash.keyParameter outside
    the stack's HashKeyParameterPath)."""
    from segment_importer_local.job_lint import job_file_problems
    from segment_importer_local.job_targets import hash_path_problems, policy_problems

    try:
        text = path.read_bytes()
    except OSError as error:
        raise usage_error(f"cannot read the job file: {error}") from None
    try:
        document = parse_job_document(text, str(path))
        problems = policy_problems(document, policy, str(path)) if policy else []
        if hash_path is not None:
            problems += hash_path_problems(document, hash_path, str(path))
    except JobOptionsError as error:
        problems = error.problems
    problems = [*problems, *job_file_problems(text, str(path))]
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise usage_error(f"{len(problems)} problem(s) in the job file:\n{listed}")
    return document


def check_job_files(
    configs: list[Path], inputs: list[InputFile], policy: TargetPolicy | None = None
) -> list[Path]:
    """--config and every job.json among the inputs, before anything runs; returns their paths."""
    paths = [*configs, *(item.path for item in inputs if item.is_job_file)]
    for path in paths:
        checked_job_document(path, policy)
    return paths


def stack_bucket(cloudformation: Any, stack_name: str | None) -> str:
    if not stack_name:
        raise usage_error("give --bucket or --stack")
    resource = cloudformation.describe_stack_resource(StackName=stack_name, LogicalResourceId="ImportBucket")
    return resource["StackResourceDetail"]["PhysicalResourceId"]
