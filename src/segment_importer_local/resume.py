"""Resuming a local run that was stopped (Ctrl-C, a killed terminal).

moto's state dies with the process, so a run keeps two files of its own in its folder as it goes:
- `run.json`: what to run again (the files, job file, host, parameter overrides; never the
  write key: a resumed run sending to Segment takes `--write-key` again);
- `delivered.ndjson`: one line per batch the sender finished (`{"key": ..., "batch": n,
  "messages": m}`), appended and flushed as each one is done.

`run --resume RUN_DIR` splits the same files again (the batches and their numbers are the same:
the split is deterministic), and the batches `delivered.ndjson` lists are taken off the queue
without being sent, counted in the new ledger as delivered, so the import completes; the rest
are sent. A batch posted in the instant before the stop, but not yet recorded, is sent again:
its messageIds are the same, so Segment deduplicates it.

Skipping by batch number is right only if the batches are the same: `run.json` also keeps a
fingerprint of every input (an export's size and modification time; a job file's SHA-256, since
a job file changes the mapping without changing its size), and a resume that would import
other files, other options or a changed file is refused, naming what changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from segment_importer.batch.envelope import read_envelope
from segment_importer.import_ref import ImportRef
from segment_importer.settings import Prefixes
from segment_importer.track.completion import publish_final_report
from segment_importer.track.ledger import Ledger
from segment_importer_local.inputs import InputError, find_inputs
from segment_importer_local.stack import LocalFunction

RUN_FILE = "run.json"
DELIVERED_FILE = "delivered.ndjson"


class ResumeError(ValueError):
    """The folder is not a run that can be resumed."""


@dataclass
class Delivered:
    """Batches known delivered, by (import key, batch number); and what this run skipped."""

    batches: dict[tuple[str, int], int] = field(default_factory=dict)
    skipped_batches: int = 0
    skipped_messages: int = 0

    @classmethod
    def read(cls, run_dir: Path) -> Delivered:
        path = run_dir / DELIVERED_FILE
        delivered = cls()
        if path.is_file():
            for line in path.read_bytes().splitlines():
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # the last line of a run killed while writing it
                delivered.batches[(entry["key"], int(entry["batch"]))] = int(entry["messages"])
        return delivered


# The run folders this process saved, newest last. The runner names the folder; the Ctrl-C
# hint must name this run's, not out/LATEST, which a run started meanwhile in another terminal
# has moved on.
_SAVED_HERE: list[Path] = []


def save_run(run_dir: Path, options: dict[str, Any]) -> None:
    document = {**options, "fingerprints": fingerprints(options["files"], options.get("config"))}
    (run_dir / RUN_FILE).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    _SAVED_HERE.append(run_dir.resolve())


def run_dir_saved_here() -> Path | None:
    """The folder of the run this process started last (None before it saved one)."""
    return _SAVED_HERE[-1] if _SAVED_HERE else None


def fingerprints(files: list[str], config: str | None) -> dict[str, dict[str, Any]]:
    """Per input file (the job file too): what tells a changed file from the one that was split."""
    found = {str(item.path.resolve()): item.is_job_file for item in find_inputs([Path(f) for f in files])}
    if config:
        found[str(Path(config).resolve())] = True
    return {path: _fingerprint(Path(path), by_content=is_job) for path, is_job in found.items()}


def _fingerprint(path: Path, *, by_content: bool) -> dict[str, Any]:
    if by_content:  # small, and an edit may keep the size and (a copy) the time
        return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    # An export's content too: another export of the same size copied with its time (cp -p,
    # rsync -t) would otherwise resume, and records at positions already sent would be skipped
    # (QA). BLAKE2b reads about 1 GB/s here: a second per gigabyte, once per run.
    stat = path.stat()
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "blake2b").hexdigest()
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "blake2b": digest}


def changed_inputs(saved: dict[str, Any]) -> list[str]:
    """What differs between the stopped run's inputs and the same paths now."""
    before = saved.get("fingerprints")
    if before is None:  # a run saved before fingerprints were kept
        return []
    try:
        now = fingerprints(saved["files"], saved.get("config"))
    except (InputError, OSError) as error:
        return [f"an input is gone ({error})"]
    added = sorted(set(now) - set(before))
    gone = sorted(set(before) - set(now))
    edited = sorted(path for path in set(now) & set(before) if now[path] != before[path])
    return [
        f"{what} since the stop: {_some(paths)}"
        for what, paths in (("files added", added), ("files gone", gone), ("files changed", edited))
        if paths
    ]


def _some(paths: list[str]) -> str:
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def load_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise ResumeError(f"{run_dir} is not a local run's folder (no {RUN_FILE})")
    return orjson.loads(path.read_bytes())


class DeliveredLog:
    """Appends each finished batch to the run's delivered.ndjson (carrying over a resumed run's)."""

    def __init__(self, run_dir: Path, carried: Delivered) -> None:
        self._file: IO[bytes] = (run_dir / DELIVERED_FILE).open("ab")
        for (key, number), messages in carried.batches.items():
            self._append(key, number, messages)

    def batch_done(self, body: str) -> None:
        envelope = read_envelope(body)
        self._append(envelope["source"]["key"], envelope["batch_number"], envelope["message_count"])

    def close(self) -> None:
        self._file.close()

    def _append(self, key: str, number: int, messages: int) -> None:
        self._file.write(orjson.dumps({"key": key, "batch": number, "messages": messages}) + b"\n")
        self._file.flush()


def skipping_delivered(
    sender: LocalFunction, delivered: Delivered, ledger: Ledger, s3: Any, prefixes: Prefixes
) -> LocalFunction:
    """The sender, minus the batches a stopped run delivered: those are counted, not sent."""
    if not delivered.batches:
        return sender

    def handler(event: dict[str, Any], context: Any) -> Any:
        to_send = [record for record in event["Records"] if not _skip(record["body"])]
        if not to_send:
            return {"batchItemFailures": []}
        return sender.handler({**event, "Records": to_send}, context)

    def _skip(body: str) -> bool:
        envelope = read_envelope(body)
        source = envelope["source"]
        messages = delivered.batches.get((source["key"], envelope["batch_number"]))
        if messages is None:
            return False
        ref = ImportRef(source["bucket"], source["key"], source["etag"])
        delivered.skipped_batches += 1
        delivered.skipped_messages += messages
        if ledger.record_delivered(ref, envelope["batch_number"], messages, 0) and ledger.complete_if_done(
            ref
        ):
            publish_final_report(s3, ledger, ref, prefixes)
        return True

    return LocalFunction(
        sender.logical_id, handler, sender.timeout_seconds, sender.memory_mb, sender.environment
    )


def on_both(first: Callable[[str], None], second: Callable[[str], None]) -> Callable[[str], None]:
    def both(body: str) -> None:
        first(body)
        second(body)

    return both
