"""The `segment-importer` command: run an import through the local stack, and check job files."""

from __future__ import annotations

import argparse
import glob
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from segment_importer.job import JobOptionsError, parse_job_document

if TYPE_CHECKING:  # moto loads only for `run`: the runner is imported there
    from segment_importer_local.runner import RunResult


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(arguments.command(arguments) or 0)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segment-importer", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="import export files end to end on this machine (moto and an embedded Segment endpoint)",
    )
    run.add_argument("files", nargs="+", type=Path, metavar="FILE", help="export files, or folders of them")
    run.add_argument("--config", type=Path, help="job file (the job.json format)")
    run.add_argument(
        "--write-key", help="send to Segment with this write key instead of the embedded endpoint"
    )
    run.add_argument("--host", help="Segment host for --write-key (default: the template's SegmentHost)")
    run.add_argument("--dry-run", action="store_true", help="validate and report; send nothing")
    run.add_argument("--report", type=Path, help="also write the run's report as JSON here")
    run.add_argument(
        "--out", type=Path, default=Path("out"), help="folder for what the embedded endpoint receives"
    )
    run.add_argument("--template", type=Path, help="template.yaml to read (default: found from here)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter for this run, e.g. ParallelSplitBytes=1048576 (repeatable)",
    )
    run.set_defaults(command=_run)
    status = commands.add_parser("status", help="where imports stand: progress, counts, rates, errors")
    status.add_argument("prefix", nargs="?", default="", metavar="KEY-PREFIX", help="only keys starting so")
    _add_source_arguments(status)
    status.add_argument("--watch", action="store_true", help="refresh until every import has finished")
    status.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (--watch)")
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    status.set_defaults(command=_status)
    rejects = commands.add_parser("rejects", help="print or download the rejects of one import")
    rejects.add_argument("key", metavar="KEY", help="the import's key, e.g. imports/2019/events.csv")
    _add_source_arguments(rejects)
    rejects.add_argument("--bucket", help="the import bucket (default: the stack's)")
    rejects.add_argument("--output", type=Path, help="write to this file instead of printing")
    rejects.set_defaults(command=_rejects)
    redrive = commands.add_parser("redrive", help="move dead-lettered batches back to the work queue")
    redrive.add_argument("--stack", required=True, help="the deployed stack's name")
    redrive.add_argument("--key", help="only this import's batches (its key under imports/)")
    redrive.set_defaults(command=_redrive)
    check = commands.add_parser("check-job", help="validate a job file and print the options it sets")
    check.add_argument("job_file", type=Path)
    check.set_defaults(command=_check_job)
    return parser


def _run(arguments: argparse.Namespace) -> int:
    from segment_importer_local.runner import RunOptions, run_import  # moto loads only for `run`

    console = Console(stderr=True)
    if arguments.config:
        _check_job(argparse.Namespace(job_file=arguments.config, quiet=True))
    overrides = _parameter_overrides(arguments.parameter, arguments.template)
    result = run_import(
        RunOptions(
            files=arguments.files,
            job_config=arguments.config,
            write_key=arguments.write_key,
            host=arguments.host,
            dry_run=arguments.dry_run,
            out_dir=arguments.out,
            template_path=arguments.template,
            show_progress=not arguments.no_progress,
            parameter_overrides=overrides,
        )
    )
    _print_result(result, console, dry_run=arguments.dry_run)
    if arguments.report:
        arguments.report.write_bytes(
            orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        )
        console.print(f"Report written to {arguments.report}")
    return 0 if result.ok else 1


def _parameter_overrides(pairs: list[str], template_path: Path | None) -> dict[str, str]:
    """`NAME=VALUE` pairs, each naming a parameter of the template."""
    from segment_importer_local.template_config import StackTemplate

    known = StackTemplate.load(template_path).parameter_defaults()
    overrides = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or name not in known:
            raise SystemExit(
                f"error: --parameter {pair!r}: expected NAME=VALUE with NAME one of {', '.join(known)}"
            )
        overrides[name] = value
    return overrides


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", help="a deployed stack's name")
    where.add_argument("--table", help="a deployed imports table's name")
    where.add_argument(
        "--local", type=Path, metavar="RUN_DIR", help="a local run's folder (default: the latest)"
    )
    parser.add_argument("--out", type=Path, default=Path("out"), help="where local runs are (default: out)")


def _status(arguments: argparse.Namespace) -> int:
    from segment_importer_local import status as status_module
    from segment_importer_local.status_view import status_table, summary_lines

    read = _imports_reader(arguments)
    console = Console()
    if arguments.watch and not arguments.json:
        from rich.live import Live

        with Live(console=console, refresh_per_second=4) as live:
            while True:
                statuses = [status_module.describe(item) for item in read()]
                live.update(status_table(statuses))
                if status_module.all_final(statuses):
                    break
                time.sleep(arguments.interval)
    else:
        statuses = [status_module.describe(item) for item in read()]
        if arguments.json:
            print(orjson.dumps(statuses, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
            return 0
        console.print(status_table(statuses))
    for line in summary_lines(statuses):
        console.print(line)
    return 0


def _imports_reader(arguments: argparse.Namespace) -> Callable[[], list[dict[str, Any]]]:
    from segment_importer_local import status as status_module

    if arguments.stack or arguments.table:
        import boto3

        table = arguments.table or status_module.table_of_stack(
            boto3.client("cloudformation"), arguments.stack
        )
        return status_module.ledger_reader(boto3.client("dynamodb"), table, arguments.prefix)
    run_dir = status_module.local_run_dir(arguments.out, arguments.local)
    return status_module.snapshot_reader(run_dir, arguments.prefix)


def _rejects_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return sorted(key for key in keys if key.endswith(".ndjson"))


def _rejects(arguments: argparse.Namespace) -> int:
    from segment_importer.settings import Prefixes
    from segment_importer.track.report import derived_key
    from segment_importer_local.status import local_run_dir

    prefixes = Prefixes()
    # Every part's rejects (`.rejects.ndjson`, `.rejects.partNNNN.ndjson`, and per byte range
    # `.rejects.spanNNNN.partNNNN.ndjson`), in key order: the file's order.
    rejects_prefix = derived_key(prefixes.rejects, arguments.key, prefixes.imports, ".rejects.")
    if arguments.stack or arguments.table or arguments.bucket:
        import boto3

        bucket = arguments.bucket or _stack_bucket(boto3.client("cloudformation"), arguments.stack)
        s3 = boto3.client("s3")
        keys = _rejects_keys(s3, bucket, rejects_prefix)
        if not keys:
            raise SystemExit(f"error: no rejects at s3://{bucket}/{rejects_prefix}*")
        body = b"".join(s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys)
    else:
        folder = local_run_dir(arguments.out, arguments.local) / "bucket"
        # `*` after the prefix, not `*.ndjson`: the first part's file is `.rejects.ndjson`.
        found = folder.glob(glob.escape(rejects_prefix) + "*")
        paths = sorted(path for path in found if path.name.endswith(".ndjson"))
        if not paths:
            raise SystemExit(
                f"error: no rejects for {arguments.key} in that run ({folder / rejects_prefix}*)"
            )
        body = b"".join(path.read_bytes() for path in paths)
    if arguments.output:
        arguments.output.write_bytes(body)
        lines = body.count(b"\n")
        print(f"{lines} rejected records written to {arguments.output}")
    else:
        sys.stdout.write(body.decode("utf-8", "replace"))
    return 0


def _redrive(arguments: argparse.Namespace) -> int:
    import boto3

    from segment_importer.track.ledger import Ledger
    from segment_importer.track.redrive import redrive

    cloudformation = boto3.client("cloudformation")

    def physical(logical_id: str) -> str:
        detail = cloudformation.describe_stack_resource(
            StackName=arguments.stack, LogicalResourceId=logical_id
        )
        return detail["StackResourceDetail"]["PhysicalResourceId"]

    ledger = Ledger(boto3.client("dynamodb"), physical("ImportsTable"), physical("BatchesTable"))
    result = redrive(
        boto3.client("sqs"),
        physical("DeadLetterQueue"),
        physical("WorkQueue"),
        key=arguments.key,
        ledger=ledger,
    )
    print(
        f"moved {result.moved} batches back to the work queue ({len(result.imports)} imports reopened); "
        f"{result.kept} left in the dead-letter queue"
    )
    return 0


def _stack_bucket(cloudformation: Any, stack_name: str | None) -> str:
    if not stack_name:
        raise SystemExit("error: give --bucket or --stack")
    resource = cloudformation.describe_stack_resource(StackName=stack_name, LogicalResourceId="ImportBucket")
    return resource["StackResourceDetail"]["PhysicalResourceId"]


def _check_job(arguments: argparse.Namespace) -> int:
    try:
        document = parse_job_document(arguments.job_file.read_bytes(), str(arguments.job_file))
    except (OSError, JobOptionsError) as error:
        raise SystemExit(f"error: {error}") from None
    if not getattr(arguments, "quiet", False):
        print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    return 0


def _print_result(result: RunResult, console: Console, *, dry_run: bool) -> None:
    if not dry_run and all(outcome.ledger for outcome in result.files):
        _print_ledger_summary(result, console)
    else:
        _print_split_table(result, console, dry_run=dry_run)
    _print_details(result, console)


def _print_ledger_summary(result: RunResult, console: Console) -> None:
    """The same table `segment-importer status` shows, from the run's final ledger."""
    from segment_importer_local.status import describe
    from segment_importer_local.status_view import status_table

    statuses = [describe(outcome.ledger) for outcome in result.files if outcome.ledger]
    table = status_table(statuses)
    table.title = f"Imports to {result.destination}"
    console.print(table)


def _print_split_table(result: RunResult, console: Console, *, dry_run: bool) -> None:
    table = Table(title="Dry run: nothing sent" if dry_run else f"Import to {result.destination}")
    table.add_column("file", overflow="fold", ratio=2)
    table.add_column("format")
    table.add_column("status", overflow="fold", ratio=1)
    for column in ("read", "rejected", "delivered / queued", "dead-lettered"):
        table.add_column(column, justify="right")
    for outcome in result.files:
        report = outcome.report
        status = (outcome.ledger or {}).get("status", report["status"])
        table.add_row(
            Path(outcome.file).name,
            f"{report.get('format', '')}{'+gzip' if report.get('compression') == 'gzip' else ''}",
            status if outcome.complete or dry_run else f"[red]{status} (incomplete)",
            f"{report['records_read']:,}",
            f"{report['rejected']:,}",
            f"- / {report['messages_queued']:,}"
            if dry_run
            else f"{outcome.messages_delivered:,} / {report['messages_queued']:,}",
            "-" if dry_run else f"{outcome.batches_dead_lettered:,}",
        )
    console.print(table)


def _print_details(result: RunResult, console: Console) -> None:
    for outcome in result.files:
        report = outcome.report
        if report.get("error"):
            console.print(f"[red]{Path(outcome.file).name}: {report['error']}")
        if not outcome.read_to_its_end:
            console.print(
                f"[red]{Path(outcome.file).name}: not read to its end (file_unreadable in the "
                "rejects says where and why); the records after that point were not imported"
            )
        if report["rejected"]:
            reasons = ", ".join(
                f"{reason} {count}" for reason, count in sorted(report["rejected_by_reason"].items())
            )
            where = Path(result.bucket_copy or "") / report["rejects_key"]
            console.print(f"{Path(outcome.file).name}: rejected {reasons} (see {where})")
        for warning in report.get("warnings", []):  # tolerated, and how: worth a look
            console.print(f"[yellow]{Path(outcome.file).name}: warning: {escape(warning)}")
    if result.endpoint_stats is not None:
        stats = result.endpoint_stats
        console.print(
            f"Embedded Segment endpoint accepted {stats['messages_accepted']} messages in "
            f"{stats['batches_accepted']} batches ({stats['duplicates']} duplicates, "
            f"dropped {sum(stats['dropped'].values())}); received events written to {result.received_path}"
        )
    console.print(f"Reports and rejects copied to {result.bucket_copy}")
    console.print("[green]OK: every valid record was accepted." if result.ok else "[red]NOT OK: see above.")


if __name__ == "__main__":
    sys.exit(main())
