"""The local run's ledger, kept on disk while it runs and after, for `segment-importer status`.

moto's tables live in the running process only; the runner writes their import items to
`<run>/ledger.json` as it goes (at most once a second) and at the end, and records the run
in `<out>/LATEST`, so `status` can read the local state from another terminal, during the
run or after it.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from segment_importer.track.ledger import Ledger

LEDGER_FILE = "ledger.json"
LATEST_FILE = "LATEST"


class LedgerSnapshots:
    def __init__(self, ledger: Ledger, run_dir: Path) -> None:
        self._ledger = ledger
        self._path = run_dir / LEDGER_FILE
        self._last = 0.0
        self._writing = threading.Lock()  # the splitter's thread and the sender's both write

    def write(self, *, at_most_every: float = 0.0) -> list[dict[str, Any]]:
        """Write the ledger's imports now (unless written less than `at_most_every` s ago)."""
        with self._writing:
            now = time.monotonic()
            if at_most_every and now - self._last < at_most_every:
                return []
            self._last = now
            items = self._ledger.list_imports()
            partial = self._path.with_suffix(".tmp")
            partial.write_bytes(orjson.dumps({"written_at": time.time(), "imports": items}))
            os.replace(partial, self._path)  # readers never see a half-written file
            return items


def point_to_latest(out_dir: Path, run_dir: Path) -> None:
    """`status` and `rejects` read the latest run: this one, from its first moment (a run
    stopped while its stack was still being made is one to resume too)."""
    (out_dir / LATEST_FILE).write_text(str(run_dir.resolve()), encoding="utf-8")


def latest_run_dir(out_dir: Path) -> Path | None:
    pointer = out_dir / LATEST_FILE
    if not pointer.is_file():
        return None
    return Path(pointer.read_text(encoding="utf-8").strip())


def read_snapshot(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / LEDGER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no ledger snapshot in {run_dir}")
    return orjson.loads(path.read_bytes())["imports"]
