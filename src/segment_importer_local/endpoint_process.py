"""The embedded Segment endpoint in a process of its own, so that it does not compete with
the pipeline (splitter, moto, sender) for one interpreter's lock.

`EndpointProcess` starts `python -m segment_importer_local.endpoint_process` and offers the
part of `SegmentEndpoint`'s interface a run uses: `url`, `stats()`, and use as a context
manager. The child keeps only message ids and counts in memory (`keep_messages=False`):
the accepted messages go to `output_path`, as in the embedded endpoint. Fault plans stay
with the in-process endpoint (their scripts and random draws live in the caller).

Protocol on the child's stdin/stdout, one JSON line per answer: it reads the write key
from its first line and the other sources' keys (a JSON list) from its second, and prints
`{"url": ...}` once serving; `stats` prints the counters with the child's CPU seconds and
peak RSS; a `stop` line (or the end of stdin) stops it after printing them one last time.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from segment_importer_local.segment_endpoint import SegmentEndpoint


class EndpointProcess:
    def __init__(
        self, write_key: str, *, output_path: str | Path | None = None, other_write_keys: Collection[str] = ()
    ) -> None:
        self._write_key = write_key
        self._other_write_keys = list(other_write_keys)  # the sources of jobs that name their own key
        self._command = [sys.executable, "-m", "segment_importer_local.endpoint_process"]
        if output_path is not None:
            self._command.append(str(output_path))
        self._process: subprocess.Popen[str] | None = None
        self._final: dict[str, Any] | None = None
        self.url = ""

    def start(self) -> EndpointProcess:
        # Our own module under our own interpreter; the write key goes through stdin, not the
        # command line, which any user of the machine can read.
        self._process = subprocess.Popen(  # noqa: S603
            self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            self.url = self._ask(self._write_key + "\n" + json.dumps(self._other_write_keys))["url"]
        except BaseException:  # Ctrl-C while it starts: no exit will stop it, so stop it here
            self._process.kill()
            self._process.wait(timeout=30)
            self._process = None
            raise
        return self

    def stats(self) -> dict[str, Any]:
        """The endpoint's counters (as `SegmentEndpoint.stats`), plus `process_cpu_seconds`
        and `process_peak_rss_mb` of the child."""
        if self._final is not None:
            return self._final
        return self._ask("stats")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            self._process = process
            self._final = self._ask("stop")
        except (OSError, ValueError):
            process.kill()
        finally:
            self._process = None
            process.wait(timeout=30)

    def __enter__(self) -> EndpointProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _ask(self, command: str) -> dict[str, Any]:
        if self._process is None or self._process.stdin is None:
            raise RuntimeError("the endpoint process is not running")
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return self._answer()

    def _answer(self) -> dict[str, Any]:
        if self._process is None or self._process.stdout is None:
            raise RuntimeError("the endpoint process is not running")
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the endpoint process ended (exit code {self._process.poll()})")
        return json.loads(line)


def _peak_rss_mb() -> float:
    """VmHWM: this process's own peak (ru_maxrss may carry the parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _report(endpoint: SegmentEndpoint) -> str:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = {
        **endpoint.stats(),
        "process_cpu_seconds": usage.ru_utime + usage.ru_stime,
        "process_peak_rss_mb": _peak_rss_mb(),
    }
    return json.dumps(stats, default=str)


def main(argv: list[str]) -> int:
    logging.disable(logging.CRITICAL)  # request lines would hold nothing useful, and no records
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle: it stops us
    write_key_line, other_keys_line = sys.stdin.readline(), sys.stdin.readline()
    if not other_keys_line:  # the run stopped (Ctrl-C) before it told us what to serve
        return 0
    write_key, output_path = write_key_line.strip(), (argv[0] if argv else None)
    other_write_keys = json.loads(other_keys_line)
    endpoint = SegmentEndpoint(
        write_key, output_path=output_path, keep_messages=False, other_write_keys=other_write_keys
    ).start()
    try:
        print(json.dumps({"url": endpoint.url}), flush=True)
        for line in sys.stdin:
            if line.strip() != "stats":
                break
            print(_report(endpoint), flush=True)
        endpoint.stop()
        print(_report(endpoint), flush=True)
    except BrokenPipeError:  # the run stopped (Ctrl-C while it started us): no one to tell
        endpoint.stop()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # exit's flush, quietly
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
