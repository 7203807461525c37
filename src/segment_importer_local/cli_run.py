"""`segment-importer run`: check the command line and the destination, run, print the verdict.

Everything that can be known before the local stack starts is checked first and refused at
once: a host that is not a URL, a write key that is empty or missing for `--host`, parameter
overrides the template does not allow, job files with errors, inputs that do not exist. Then,
for a real destination, one connection to the host and the write-key pre-flight: a host nobody
answers on fails in seconds, naming the host and the error, with nothing queued.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Console

from segment_importer.job import JOB_FILE_NAME
from segment_importer_local import verdict as verdicts
from segment_importer_local.destination import (
    HostUnreachable,
    UnknownWriteKey,
    UsageError,
    check_reachable,
    check_write_key,
    parse_host,
    preflight_host,
)
from segment_importer_local.errors import CliError, usage_error
from segment_importer_local.inputs import InputError, InputFile, find_inputs
from segment_importer_local.progress import PLAIN_EVERY_SECONDS
from segment_importer_local.resume import (
    Delivered,
    ResumeError,
    changed_inputs,
    key_digest,
    key_fingerprint,
    load_run,
    resume_command,
    run_dir_saved_here,
)
from segment_importer_local.template_config import StackTemplate, TemplateError

if TYPE_CHECKING:
    from segment_importer_local.runner import RunResult

_RUN_EXAMPLES = """examples:
  segment-importer run examples/
  segment-importer run exports/ --config job.json --report report.json   # no job.json in exports/
  segment-importer run events.ndjson --write-key "$SEGMENT_WRITE_KEY"
  segment-importer run events.ndjson --write-key "$KEY" --host https://events.eu1.segmentapis.com
  segment-importer run events.ndjson --write-key "$KEY" --host https://proxy.example --preflight-host https://cdn.segment.com
  segment-importer run big.csv.gz --parameter ParallelSplitBytes=67108864
  segment-importer run --resume out/20261201T101500Z-1a2b   # after Ctrl-C: sends only what was not sent

Folders are searched recursively; each file keeps its path under imports/local/, and a job.json in
a folder governs the files below it, as the nearest job.json does in the bucket; a file given on
its own takes the job.json beside it or above it (up to the working directory). --config with a
folder holding a different job.json is refused.
Exit codes: 0 every record sent, 3 finished with rejects, 1 failed or nothing sent, 2 usage,
130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (stopped cleanly; --resume goes on).
"""


def add_run_command(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="import export files end to end on this machine (moto and an embedded Segment endpoint)",
        description="Import export files end to end on this machine: the splitter and sender run as in "
        "Lambda, against moto, and send to an embedded Segment-compatible endpoint (or, with "
        "--write-key, to Segment).",
        epilog=_RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("files", nargs="*", type=Path, metavar="FILE", help="export files, or folders of them")
    run.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="run a stopped run again: the batches it delivered are not sent again (out/<run>)",
    )
    run.add_argument(
        "--allow-other-destination",
        action="store_true",
        help="with --resume: send the rest with another --write-key or --host than the stopped run "
        "(another workspace: what was delivered before stays where it went)",
    )
    run.add_argument("--config", type=Path, help="job file (the job.json format) for every file")
    run.add_argument(
        "--write-key", help="send to Segment with this write key instead of the embedded endpoint"
    )
    run.add_argument("--host", help="Segment host for --write-key (default: the template's SegmentHost)")
    run.add_argument(
        "--write-key-for",
        action="append",
        default=[],
        metavar="NAME=KEY",
        help="the key of an SSM parameter a job file names as its writeKeyParameter, seeded into the "
        "local stack (repeatable; with the embedded endpoint a key is made up for any not given)",
    )
    run.add_argument(
        "--hash-key-for",
        action="append",
        default=[],
        metavar="NAME=KEY",
        help="the HMAC key of an SSM parameter a job file names as its hash.keyParameter, seeded "
        "into the local stack (repeatable; required for each such parameter)",
    )
    run.add_argument(
        "--preflight-host",
        help="settings host to check the write key at, when --host is not Segment's (e.g. https://cdn.segment.com)",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="validate and report what would be sent; send nothing"
    )
    run.add_argument("--report", type=Path, help="also write the run's report as JSON here")
    run.add_argument(
        "--out", type=Path, default=Path("out"), help="folder for the runs' output (default: out)"
    )
    run.add_argument("--template", type=Path, help="template.yaml to read (default: the one installed)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars or progress lines")
    run.add_argument(
        "--progress-every",
        type=float,
        default=PLAIN_EVERY_SECONDS,
        metavar="SECONDS",
        help="when stderr is not a terminal (a log file, CI): seconds between plain progress lines "
        f"(default: {PLAIN_EVERY_SECONDS:g})",
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="also echo the functions' JSON log lines to stderr (they are always in <run>/functions.log)",
    )
    run.add_argument(
        "--engine", choices=("local", "sam"), default="local", help="sam: the functions in SAM CLI containers"
    )
    run.add_argument(
        "--chaos",
        metavar="SPEC",
        help="inject faults into the local run and print lost/doubled, e.g. 'default' or "
        "'seed=3,status=0.1,sender_crash=0.1' (docs/chaos.md)",
    )
    run.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter for this run, e.g. ParallelSplitBytes=1048576 (repeatable)",
    )
    run.set_defaults(command=run_command)


def run_command(arguments: argparse.Namespace) -> int:
    from segment_importer_local.runner import RunOptions, run_import  # moto loads only for `run`

    resumed = _resume(arguments)
    template = _template(arguments.template)
    host, settings_host = _checked_destination(arguments, template)
    overrides = parameter_overrides(arguments.parameter, template)
    try:
        inputs = find_inputs(arguments.files)
    except InputError as error:
        raise usage_error(str(error)) from None
    job_keys = _job_write_keys(arguments, template, inputs, {**_host_override(host), **overrides})
    _refuse_two_job_files(arguments.config, inputs)
    for item in inputs:  # which job governs what, before anything is sent
        if item.is_job_file:
            print(
                f"Job file {item.path} governs the files under {item.relative[: -len(JOB_FILE_NAME)]}",
                file=sys.stderr,
            )
    if arguments.write_key:
        _check_destination(arguments.write_key, host, settings_host)
    _check_output_paths(arguments)  # last: it makes the --out folder, which a refused run must not
    arguments.interrupted_note = _interrupted_note
    chaos = _chaos_options(arguments)
    result = run_import(
        RunOptions(
            **chaos,
            files=arguments.files,
            job_config=arguments.config,
            write_key=arguments.write_key,
            job_write_keys=job_keys,
            host=host,
            preflight_host=arguments.preflight_host,
            dry_run=arguments.dry_run,
            out_dir=arguments.out,
            template_path=template.path,
            show_progress=not arguments.no_progress,
            progress_every=arguments.progress_every,
            verbose=arguments.verbose,
            parameter_overrides=overrides,
            resumed=resumed,
            engine=arguments.engine,
        )
    )
    if resumed is not None:
        print(
            f"Resumed {arguments.resume}: {result.resumed_batches_skipped:,} batches "
            f"({result.resumed_messages_skipped:,} messages) delivered before the stop were not sent again",
            file=sys.stderr,
        )
    code = _report(result, arguments)
    if chaos and not _print_chaos_figures(result):
        return verdicts.EXIT_FAILED
    return code


def _job_write_keys(
    arguments: argparse.Namespace, template: StackTemplate, inputs: list[Any], overrides: dict[str, str]
) -> dict[str, str]:
    """Check the job files (also against the stack's policy for a job's workspace); the key
    of each parameter they name, from --write-key-for or (embedded endpoint) made up."""
    from segment_importer_local.cli_inspect import check_job_files
    from segment_importer_local.job_targets import (
        job_hash_keys,
        job_write_keys,
        parse_write_keys_for,
        template_policy,
    )

    policy = template_policy(template, overrides)
    job_files = check_job_files([arguments.config] if arguments.config else [], inputs, policy)
    given = parse_write_keys_for(arguments.write_key_for)
    keys = job_write_keys(given, job_files, embedded=not arguments.write_key, policy=policy)
    hash_keys = parse_write_keys_for(arguments.hash_key_for, "--hash-key-for")
    hash_path = {**template.parameter_defaults(), **overrides}["HashKeyParameterPath"]
    return {**keys, **job_hash_keys(hash_keys, job_files, hash_path)}


def _host_override(host: str | None) -> dict[str, str]:
    return {"SegmentHost": host} if host else {}


def _refuse_two_job_files(config: Path | None, inputs: list[InputFile]) -> None:
    """--config with a job.json among the inputs: refused, not resolved silently either way.

    --config is the drop's root job file; a folder's job.json lands nearer the files below it
    and would govern them, as in the bucket, so --config would not be "for every file" as it
    says. The same file given both ways is no conflict.
    """
    if config is None:
        return
    others = [item for item in inputs if item.is_job_file and item.path.read_bytes() != config.read_bytes()]
    if others:
        named = ", ".join(str(item.path) for item in others)
        raise usage_error(
            f"--config {config} and the job file(s) in the folders given, {named}, would both apply: "
            "a folder's job.json governs the files below it, so --config would not. Leave out "
            "--config to use the folders' job files, or move them out to use --config for every file"
        )


def _chaos_options(arguments: argparse.Namespace) -> dict[str, Any]:
    """RunOptions for `--chaos SPEC`: the faults, and a redrive after delivery."""
    if not arguments.chaos:
        return {}
    from segment_importer_local.chaos import ChaosSpec, ChaosSpecError

    if arguments.write_key or arguments.dry_run or arguments.engine != "local":
        raise usage_error(
            "--chaos runs against the embedded endpoint: no --write-key, --dry-run or --engine sam"
        )
    try:
        spec = ChaosSpec.parse(arguments.chaos)
    except ChaosSpecError as error:
        raise usage_error(str(error)) from None
    return {"faults": spec.endpoint_faults(), "aws_faults": spec.aws_faults(), "redrive_dead_letters": True}


def _print_chaos_figures(result: RunResult) -> bool:
    """The faults injected, and lost/doubled against what the endpoint received; True if none."""
    from segment_importer_local.chaos import delivery_figures

    console = Console(highlight=False)
    stats = result.endpoint_stats or {}
    injected = {**stats.get("faults", {}), **result.aws_faults_injected}
    queued = sum(outcome.report.get("messages_queued", 0) for outcome in result.files)
    figures = delivery_figures(result.received_path or "", queued)
    faults = ", ".join(f"{kind} {count}" for kind, count in sorted(injected.items())) or "none"
    console.print(f"Chaos: faults injected: {faults}", markup=False)
    console.print(
        f"Chaos: Segment requests {stats.get('requests', 0)}; SQS redeliveries {result.redelivered_records}; "
        f"batches redriven {result.redriven_batches}; duplicates absorbed by messageId "
        f"{stats.get('duplicates', 0)}",
        markup=False,
    )
    held = figures["lost"] == 0 and figures["doubled"] == 0
    console.print(
        f"Chaos: lost = {figures['lost']}, doubled = {figures['doubled']}",
        style="green" if held else "red",
        markup=False,
    )
    return held


def _resume(arguments: argparse.Namespace) -> Delivered | None:
    """With --resume, the stopped run's options; the command line may repeat them, not change them."""
    if arguments.resume is None:
        if not arguments.files:
            raise usage_error("give the export files or folders to import (or --resume RUN_DIR)")
        return None
    try:
        saved = load_run(arguments.resume)
    except ResumeError as error:
        raise usage_error(str(error)) from None
    _refuse_other_destination(arguments, saved)
    changes = _resume_changes(arguments, saved) + changed_inputs(saved)
    if changes:
        raise usage_error(
            f"cannot resume {arguments.resume}: {'; '.join(changes)}. A resumed run skips the batches "
            "the stopped run delivered, by number: it must split the same files with the same options "
            "(start a new run instead)"
        )
    if saved["write_key_given"] and not arguments.write_key:
        raise usage_error(f"that run sent to {saved['host']} with a write key: give --write-key again")
    arguments.files = [Path(path) for path in saved["files"]]
    arguments.config = Path(saved["config"]) if saved["config"] else None
    arguments.host = saved["host"] if saved["write_key_given"] else None
    arguments.preflight_host = saved["preflight_host"]
    arguments.dry_run = saved["dry_run"]
    arguments.template = Path(saved["template"]) if saved["template"] else None
    arguments.parameter = [f"{name}={value}" for name, value in saved["parameters"].items()]
    return Delivered.read(arguments.resume)


def _refuse_other_destination(arguments: argparse.Namespace, saved: dict[str, Any]) -> None:
    """A resume sends the rest where the stopped run sent: another write key or host is another
    workspace, and half an import in each. Refused, naming both hosts and the keys' fingerprints
    (never a key), unless --allow-other-destination says it is meant."""
    host_before = saved["host"]
    host_now = arguments.host or host_before
    digest = saved.get("write_key_digest")
    key_differs = bool(
        digest and arguments.write_key and key_digest(arguments.write_key, digest["salt"]) != digest
    )
    host_differs = bool(arguments.host) and arguments.host != host_before
    if arguments.allow_other_destination:
        if key_differs or host_differs:
            print(
                f"warning: resuming to another destination (--allow-other-destination): the rest goes to "
                f"{host_now or 'the embedded endpoint'}; what was delivered stayed at {host_before}",
                file=sys.stderr,
            )
            saved["host"] = host_now
        return
    if not (key_differs or host_differs):
        return
    what = []
    if key_differs and digest:
        given = key_digest(arguments.write_key, digest["salt"])
        what.append(
            f"the write key differs (fingerprints: the stopped run's {key_fingerprint(digest)}, "
            f"this one's {key_fingerprint(given)})"
        )
    if host_differs:
        what.append(
            f"the host differs (the stopped run sent to {host_before}, this would send to {host_now})"
        )
    raise usage_error(
        f"cannot resume {arguments.resume}: {'; '.join(what)}. The stopped run sent to {host_before}; "
        "the rest would go to another workspace. Give the stopped run's key and host, or "
        "--allow-other-destination if that is meant"
    )


def _resume_changes(arguments: argparse.Namespace, saved: dict[str, Any]) -> list[str]:
    """Each option given with --resume that differs from the stopped run's."""
    changes = []
    if arguments.files and {str(p.resolve()) for p in arguments.files} != set(saved["files"]):
        changes.append(f"the files differ (the stopped run imported {', '.join(saved['files'])})")
    for option, given, before in (
        ("--config", arguments.config and str(arguments.config.resolve()), saved["config"]),
        ("--template", arguments.template and str(arguments.template.resolve()), saved["template"]),
        ("--preflight-host", arguments.preflight_host, saved["preflight_host"]),
    ):
        if given and given != before:
            changes.append(f"{option} {given} differs (the stopped run's: {before or 'none'})")
    if arguments.write_key and not saved["write_key_given"]:
        changes.append("--write-key: the stopped run sent to the embedded endpoint")
    if arguments.dry_run and not saved["dry_run"]:
        changes.append("--dry-run: the stopped run sent")
    for name, _, value in (pair.partition("=") for pair in arguments.parameter):
        before = saved["parameters"].get(name)
        if value != before:
            used = f"{name}={before}" if before is not None else "the template's default"
            changes.append(f"--parameter {name}={value} differs (the stopped run used {used})")
    return changes


def _template(path: Path | None) -> StackTemplate:
    try:
        return StackTemplate.load(path)
    except (OSError, TemplateError) as error:
        raise usage_error(f"cannot read the template: {error}") from None


def _checked_destination(arguments: argparse.Namespace, template: StackTemplate) -> tuple[str | None, str]:
    """The host to send to and the settings host to check the key at; refuses what is wrong."""
    if arguments.write_key is not None and not arguments.write_key.strip():
        raise usage_error("--write-key is empty: give the source's write key, or leave the option out")
    for option, value in (("--host", arguments.host), ("--preflight-host", arguments.preflight_host)):
        if value is not None and not arguments.write_key:
            raise usage_error(
                f"{option} needs --write-key (without it the run sends to the embedded endpoint)"
            )
    try:
        host = parse_host(arguments.host) if arguments.host else None
        explicit = (
            parse_host(arguments.preflight_host, "--preflight-host") if arguments.preflight_host else None
        )
    except UsageError as error:
        raise usage_error(str(error)) from None
    defaults = template.parameter_defaults()
    if arguments.write_key and host is None:
        host = defaults.get("SegmentHost")
    return host, preflight_host(host, explicit, defaults.get("PreflightHost", ""))


def _check_destination(write_key: str, host: str | None, settings_host: str) -> None:
    """A short connection (and TLS) check of the host, then the write-key pre-flight."""
    try:
        if host:
            check_reachable(host)
        key_check = check_write_key(write_key, settings_host, host)
    except (HostUnreachable, UnknownWriteKey) as error:
        raise CliError(f"{error}; nothing was queued") from None
    if not key_check.checked:
        print(f"warning: {key_check.detail}; a wrong key would lose every message silently", file=sys.stderr)


def parameter_overrides(pairs: list[str], template: StackTemplate) -> dict[str, str]:
    """`NAME=VALUE` pairs, each allowed by the template's own constraints for NAME."""
    overrides, problems = {}, []
    for pair in pairs:
        name, equals, value = pair.partition("=")
        problem = template.parameter_problem(name, value) if equals else "expected NAME=VALUE"
        if not problem and name == "DefaultJobOptions":  # the job format, as a drop's job.json
            problem = _job_document_problem(value)
        if problem:
            problems.append(f"--parameter {pair!r}: {problem}")
        overrides[name] = value
    if problems:
        raise usage_error("; ".join(problems))
    return overrides


def _job_document_problem(text: str) -> str | None:
    from segment_importer.job import JobOptionsError, parse_job_document

    try:
        parse_job_document(text, "DefaultJobOptions")
    except JobOptionsError as error:
        return str(error)
    return None


def _check_output_paths(arguments: argparse.Namespace) -> None:
    """Refuse, before anything is sent, output paths the run could not write at its end."""
    if arguments.out.exists() and not arguments.out.is_dir():
        raise usage_error(f"--out {arguments.out}: not a folder")
    try:  # made now, and written to, rather than failing with a traceback once the run starts
        arguments.out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=arguments.out).close()
    except OSError as error:
        raise usage_error(f"--out {arguments.out}: cannot write there ({error.strerror or error})") from None
    if arguments.report and not arguments.report.resolve().parent.is_dir():
        raise usage_error(f"--report {arguments.report}: its folder does not exist")
    if arguments.report and arguments.report.is_dir():
        raise usage_error(f"--report {arguments.report}: a folder; give a file name")


def _interrupted_note() -> str:
    # This run's folder, not out/LATEST: a run started meanwhile in another terminal moves LATEST.
    run_dir = run_dir_saved_here()
    if not run_dir:
        return "stopped; nothing was imported yet"
    delivered = Delivered.read(run_dir)
    done = f"{len(delivered.batches):,} batches ({sum(delivered.batches.values()):,} messages) were delivered"
    return (
        f"stopped; what was done so far is in {run_dir} (segment-importer status --local {run_dir}): "
        f"{done} before the stop. Resume it with: {resume_command(run_dir)} (within a day: the "
        "batches in flight at the stop are sent again with the same messageIds, which Segment "
        "dedupes for about 24 hours)"
    )


def _report(result: RunResult, arguments: argparse.Namespace) -> int:
    from segment_importer_local.run_summary import print_result

    console = Console(highlight=False)
    print_result(result, console, dry_run=arguments.dry_run)
    verdict = verdicts.of_run(result, dry_run=arguments.dry_run)
    for line in verdict.reasons:
        console.print(line, style="red" if verdict.code == verdicts.EXIT_FAILED else "yellow", markup=False)
    style = {verdicts.EXIT_OK: "green", verdicts.EXIT_REJECTS: "yellow"}.get(verdict.code, "red")
    console.print(verdict.headline, style=style, markup=False)
    if verdict.code != verdicts.EXIT_OK and result.run_dir and not arguments.dry_run:
        run_dir = Path(result.run_dir).resolve()  # the commands work from any folder
        for line in verdicts.next_steps(result, run_dir, resume_command(run_dir)):
            console.print(line, markup=False)
    if arguments.report:
        document = {**result.to_dict(), "verdict": verdict.headline, "exit_code": verdict.code}
        arguments.report.write_bytes(
            orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        )
        print(f"Report written to {arguments.report}", file=sys.stderr)
    return verdict.code
