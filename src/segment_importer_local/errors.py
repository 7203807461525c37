"""The CLI's one-line errors and exit codes (a module of their own: `python -m ...cli` runs
cli.py as `__main__`, so a class defined there would be a second class in the subcommands)."""

from __future__ import annotations

import threading

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REJECTS = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command stopped by SIGPIPE (128 + 13)


class CliError(Exception):
    """A one-line error for the user; `code` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def usage_error(message: str) -> CliError:
    return CliError(message, EXIT_USAGE)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop as Ctrl-C does (a KeyboardInterrupt, so every `finally` and
    cleanup runs the same way), and exit 128 + the signal's number, as a shell reports it."""

    def __init__(self, signal_number: int, name: str) -> None:
        super().__init__(name)
        self.code = 128 + signal_number
        self.name = name


# Set by the CLI's signal handlers the moment a stop is asked for (Ctrl-C, SIGTERM, SIGHUP):
# a local run's post threads then stop waiting to retry (runner._waits_end_at_a_stop).
STOP_REQUESTED = threading.Event()
