"""The `segment-importer` command: run an import through the local stack, and check job files."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from segment_importer.job import JobOptionsError, parse_job_document


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(arguments.command(arguments) or 0)


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
    run.set_defaults(command=_run)
    check = commands.add_parser("check-job", help="validate a job file and print the options it sets")
    check.add_argument("job_file", type=Path)
    check.set_defaults(command=_check_job)
    return parser


def _run(arguments: argparse.Namespace) -> int:
    from segment_importer.local.runner import RunOptions, run_import  # moto loads only for `run`

    console = Console(stderr=True)
    if arguments.config:
        _check_job(argparse.Namespace(job_file=arguments.config, quiet=True))
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
        )
    )
    _print_result(result, console, dry_run=arguments.dry_run)
    if arguments.report:
        arguments.report.write_bytes(
            orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        )
        console.print(f"Report written to {arguments.report}")
    return 0 if result.ok else 1


def _check_job(arguments: argparse.Namespace) -> int:
    try:
        document = parse_job_document(arguments.job_file.read_bytes(), str(arguments.job_file))
    except (OSError, JobOptionsError) as error:
        raise SystemExit(f"error: {error}") from None
    if not getattr(arguments, "quiet", False):
        print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    return 0


def _print_result(result: object, console: Console, *, dry_run: bool) -> None:
    from segment_importer.local.runner import RunResult

    assert isinstance(result, RunResult)
    table = Table(title="Dry run: nothing sent" if dry_run else f"Import to {result.destination}")
    for column in (
        "file",
        "format",
        "status",
        "read",
        "queued",
        "batches",
        "rejected",
        "delivered",
        "dead-lettered",
    ):
        table.add_column(column, justify="left" if column in ("file", "format", "status") else "right")
    for outcome in result.files:
        report = outcome.report
        table.add_row(
            Path(outcome.file).name,
            f"{report.get('format', '')}{'+gzip' if report.get('compression') == 'gzip' else ''}",
            report["status"] if outcome.complete or dry_run else f"[red]{report['status']} (incomplete)",
            str(report["records_read"]),
            str(report["messages_queued"]),
            str(report["batches_queued"]),
            str(report["rejected"]),
            "-" if dry_run else str(outcome.messages_delivered),
            "-" if dry_run else str(outcome.batches_dead_lettered),
        )
    console.print(table)
    for outcome in result.files:
        report = outcome.report
        if report.get("error"):
            console.print(f"[red]{Path(outcome.file).name}: {report['error']}")
        if report["rejected"]:
            reasons = ", ".join(
                f"{reason} {count}" for reason, count in sorted(report["rejected_by_reason"].items())
            )
            where = Path(result.bucket_copy or "") / report["rejects_key"]
            console.print(f"{Path(outcome.file).name}: rejected {reasons} (see {where})")
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
