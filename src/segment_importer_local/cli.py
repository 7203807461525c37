"""The `segment-importer` command: run an import through the local stack, follow deployed imports,
read their rejects, redrive dead-lettered batches, and check job files.

Results go to stdout; progress, warnings and errors to stderr. Exit codes: 0 every record sent,
3 finished with rejects, 1 failed (or nothing sent), 2 the command line was wrong, 130 interrupted
(Ctrl-C); stopped by SIGTERM 143, by SIGHUP 129 (a stopped run is saved: `run --resume` goes on).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from types import FrameType

from segment_importer import __version__
from segment_importer_local.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    STOP_REQUESTED,
    CliError,
    Stopped,
)
from segment_importer_local.preview import add_preview_parser

_EXAMPLES = """examples:
  segment-importer run examples/                       # import the samples, send to the embedded endpoint
  segment-importer run signups.csv --config job.json   # map the columns with a job file
  segment-importer run exports/ --write-key KEY        # send to Segment (US); EU: --host https://events.eu1.segmentapis.com
  segment-importer run events.ndjson --dry-run         # validate, and say what would be sent
  segment-importer status --watch                      # follow the latest local run (or --stack NAME)
  segment-importer rejects signups.csv                 # the rejected records of one import
  segment-importer check-job job.json                  # every problem of a job file
"""


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    _log_to_terminal()
    _stop_on_signals()
    try:
        return int(arguments.command(arguments) or 0)
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt as stop:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one while we say so ends us
        cause = f" by {stop.name}" if isinstance(stop, Stopped) else ""
        note = getattr(arguments, "interrupted_note", lambda: "stopped")()
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone; the folder has the state
            print(f"\ninterrupted{cause}: {note}", file=sys.stderr)
        return stop.code if isinstance(stop, Stopped) else EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly; flushing at exit would raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as error:
        # A file or folder the system refused that no check above foresaw: one line, no traceback.
        where = f": {error.filename}" if error.filename else ""
        print(f"error: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_FAILED


def _stop_on_signals() -> None:
    """SIGTERM (kill, CI cancelling a job) and SIGHUP (the terminal closed) stop a run as
    Ctrl-C does: cleanly, its state saved, the summary of the stop printed."""

    def stop(number: int, _frame: FrameType | None) -> None:
        STOP_REQUESTED.set()
        raise Stopped(number, signal.Signals(number).name)

    def interrupt(number: int, frame: FrameType | None) -> None:
        STOP_REQUESTED.set()  # before Python's KeyboardInterrupt, as for the others
        signal.default_int_handler(number, frame)

    for number in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(number) is signal.SIG_DFL:  # nohup's SIG_IGN for SIGHUP is kept
            signal.signal(number, stop)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # a background job's SIG_IGN is kept
        signal.signal(signal.SIGINT, interrupt)


def _log_to_terminal() -> None:
    """Only the CLI's own warnings reach the terminal; the libraries' log lines and warnings
    (segment's `Unknown error`, Powertools' UserWarning) go to a run's functions.log."""
    logging.captureWarnings(True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.addFilter(logging.Filter("segment_importer_local.cli"))
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    from segment_importer_local import retry_lines

    retry_lines.install()  # the sender's retries, one line each: a failing host is never silent


def _parser() -> argparse.ArgumentParser:
    from segment_importer_local import cli_inspect, cli_run

    parser = argparse.ArgumentParser(
        prog="segment-importer",
        description=__doc__,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    cli_run.add_run_command(commands)
    add_preview_parser(commands)
    cli_inspect.add_inspect_commands(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
