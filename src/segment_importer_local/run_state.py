"""Whether a local run is running, finished, or stopped: `<run>/state.json`, for `status`.

The ledger snapshot alone cannot tell a run that is splitting from one that was stopped while it
split: both hold SPLITTING or SENDING items. The runner writes `running` with its process id as
it starts, then `finished` or `stopped` (Ctrl-C, SIGTERM, SIGHUP, an error) as it ends. A run
killed outright (SIGKILL, a power cut) cannot write anything: `running` with a process id that
no longer exists is read as stopped too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

STATE_FILE = "state.json"
FUNCTIONS_LOG = "functions.log"  # in the run's folder: the functions' JSON log lines (runner.py)
RUNNING, FINISHED, STOPPED = "running", "finished", "stopped"


def write_state(run_dir: Path, state: str, **details: Any) -> None:
    document = {"state": state, "pid": os.getpid(), **details}
    partial = run_dir / f"{STATE_FILE}.tmp"
    partial.write_bytes(orjson.dumps(document))
    os.replace(partial, run_dir / STATE_FILE)  # a reader never sees half a file


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The run's state, `running` turned `stopped` when its process is gone; None for a run
    written before runs kept one."""
    try:
        document: dict[str, Any] = orjson.loads((run_dir / STATE_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if document.get("state") == RUNNING and not _alive(int(document.get("pid", 0))):
        return {**document, "state": STOPPED, "reason": "killed (its process is gone)"}
    return document


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process of that id: it exists
        return True
    return True
