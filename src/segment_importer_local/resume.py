"""Resuming a local run that was stopped (Ctrl-C, a killed terminal).

moto's state dies with the process, so a run keeps two files of its own in its folder as it goes:
- `run.json`: what to run again (the files, job file, host, parameter overrides; never the
  write key: a resumed run sending to Segment takes `--write-key` again, and `run.json` keeps
  a salted SHA-256 of it, so a resume with another key, which would send the rest to another
  workspace, is refused);
- `delivered.ndjson`: one line per batch the sender finished (`{"key": ..., "batch": n,
  "messages": m, "refused": r}`: r of its m messages Segment refused with a 400), appended and
  flushed as each one is done.

`run --resume RUN_DIR` splits the same files again (the batches and their numbers are the same:
the split is deterministic), and the batches `delivered.ndjson` lists are taken off the queue
without being sent, counted in the new ledger as the stopped run left them (delivered, and
refused: a refusal is not turned into a delivery), so the import completes with the same
verdict it would have had; the messages Segment refused are copied from the stopped run's
`bucket/` so `rejects` lists them. The rest are sent; a batch that was not delivered (its
retries spent, dead-lettered) is not in the list and is sent again. A batch posted in the
instant before the stop, but not yet recorded, is sent again: its messageIds are the same, so
Segment deduplicates it.

Skipping by batch number is right only if the batches are the same: `run.json` also keeps a
fingerprint of every input (an export's size and modification time; a job file's SHA-256, since
a job file changes the mapping without changing its size), and a resume that would import
other files, other options or a changed file is refused, naming what changed.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from segment_importer.batch.envelope import read_envelope
from segment_importer.deliver.sender import DEFERRED_MESSAGE, DELIVERED_MESSAGE
from segment_importer.deliver.sender import logger as sender_logger
from segment_importer.import_ref import ImportRef
from segment_importer.settings import Prefixes
from segment_importer.track import keys
from segment_importer.track.completion import publish_final_report
from segment_importer.track.ledger import Ledger
from segment_importer_local.inputs import InputError, find_inputs
from segment_importer_local.stack import LocalFunction

RUN_FILE = "run.json"
DELIVERED_FILE = "delivered.ndjson"
BUCKET_COPY = "bucket"  # the run's copy of the local bucket's reports and rejects (runner.py)


class ResumeError(ValueError):
    """The folder is not a run that can be resumed."""


@dataclass
class Delivered:
    """Batches known delivered, by (import key, batch number); and what this run skipped."""

    batches: dict[tuple[str, int], int] = field(default_factory=dict)
    refused: dict[tuple[str, int], int] = field(default_factory=dict)  # of those, refused by Segment
    run_dir: Path | None = None  # the run they were read from (its bucket copy has the refused)
    skipped_batches: int = 0
    skipped_messages: int = 0

    @classmethod
    def read(cls, run_dir: Path) -> Delivered:
        path = run_dir / DELIVERED_FILE
        delivered = cls(run_dir=run_dir)
        if path.is_file():
            for line in path.read_bytes().splitlines():
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # the last line of a run killed while writing it
                batch = (entry["key"], int(entry["batch"]))
                delivered.batches[batch] = int(entry["messages"])
                if refused := int(entry.get("refused", 0)):
                    delivered.refused[batch] = refused
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


def key_digest(write_key: str, salt: str | None = None) -> dict[str, str]:
    """A write key's salted SHA-256, as run.json keeps it (the salt is the run's own, so the
    digest of one key differs from run to run and says nothing across runs)."""
    salt = salt or secrets.token_hex(16)
    return {"salt": salt, "sha256": hashlib.sha256(f"{salt}:{write_key}".encode()).hexdigest()}


def key_fingerprint(digest: dict[str, str]) -> str:
    """What a message may show of a key: the first characters of its salted digest."""
    return digest["sha256"][:12]


def resume_command(run_dir: Path) -> str:
    """`run --resume` for that run, with --write-key when it sent to Segment (never the key)."""
    try:
        with_key = bool(load_run(run_dir).get("write_key_given"))
    except (ResumeError, OSError, ValueError):
        with_key = False
    key = ' --write-key "$SEGMENT_WRITE_KEY"' if with_key else ""
    return f"segment-importer run --resume {run_dir}{key}"


class DeliveredLog(logging.Handler):
    """Appends each finished batch to the run's delivered.ndjson (carrying over a resumed run's),
    with how many of its messages Segment refused: read from the sender's own "batch delivered"
    log line, which comes just before the poller hands the batch over as done."""

    def __init__(self, run_dir: Path, carried: Delivered) -> None:
        super().__init__(level=logging.INFO)
        self._file: IO[bytes] = (run_dir / DELIVERED_FILE).open("ab")
        self._deferred: set[tuple[str, int]] = set()  # put back on the queue, delayed, not sent yet
        # Answered by Segment, its invocation not finished yet: (messages, of them refused)
        self._answered: dict[tuple[str, int], tuple[int, int]] = {}
        # (import key, batch number) Segment answered, this run or the one it resumes
        self.batches: set[tuple[str, int]] = set()
        for batch, messages in carried.batches.items():
            self._append(*batch, messages, carried.refused.get(batch, 0))
        sender_logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg in (DELIVERED_MESSAGE, DEFERRED_MESSAGE):
            batch = (str(getattr(record, "key", "")), int(getattr(record, "batch_number", 0)))
            if record.msg == DEFERRED_MESSAGE:
                self._deferred.add(batch)
            else:
                self._deferred.discard(batch)
                refused = int(getattr(record, "refused", 0))
                self._answered[batch] = (int(getattr(record, "delivered", 0)) + refused, refused)
                self.batches.add(batch)  # Segment answered it, even if its sender then died

    def deferred(self, body: str) -> bool:
        """Was this batch, which the sender reported done, only put back on the queue, delayed
        (MaxEventsPerSecond)? Its copy comes back: it is not delivered, and not counted so."""
        envelope = read_envelope(body)
        return (envelope["source"]["key"], int(envelope["batch_number"])) in self._deferred

    def batch_done(self, body: str) -> None:
        envelope = read_envelope(body)
        batch = (envelope["source"]["key"], int(envelope["batch_number"]))
        if batch in self._deferred:  # QA: recorded delivered, a resume skipped it: lost, and OK
            return
        _, refused = self._answered.pop(batch, (0, 0))
        self._append(*batch, envelope["message_count"], refused)

    def close(self) -> None:
        """At the end, and at a stop: a batch Segment answered whose invocation had not
        finished (the others in it were still posting, or its sender died after the post)
        is delivered too. Listed, a resume does not send it again; not listed, it was sent
        twice, and the stop's count, `status` and the endpoint disagreed (QA3 Q2)."""
        sender_logger.removeHandler(self)
        for batch, (messages, refused) in self._answered.items():
            self._append(*batch, messages, refused)
        self._answered.clear()
        self._file.close()
        super().close()

    def _append(self, key: str, number: int, messages: int, refused: int) -> None:
        self.batches.add((key, number))
        entry = {"key": key, "batch": number, "messages": messages, "refused": refused}
        self._file.write(orjson.dumps(entry) + b"\n")
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
        batch = (source["key"], int(envelope["batch_number"]))
        messages = delivered.batches.get(batch)
        if messages is None:
            return False
        ref = ImportRef(source["bucket"], source["key"], source["etag"])
        delivered.skipped_batches += 1
        delivered.skipped_messages += messages
        refused = delivered.refused.get(batch, 0)
        if refused:
            _carry_refused(s3, source["bucket"], keys.refused_key(prefixes, *batch), delivered.run_dir)
        if ledger.record_delivered(ref, batch[1], messages, refused) and ledger.complete_if_done(ref):
            publish_final_report(s3, ledger, ref, prefixes)
        return True

    return LocalFunction(
        sender.logical_id, handler, sender.timeout_seconds, sender.memory_mb, sender.environment
    )


def _carry_refused(s3: Any, bucket: str, key: str, run_dir: Path | None) -> None:
    """The stopped run's file of a batch's refused messages, into this run's bucket."""
    copy = run_dir / BUCKET_COPY / key if run_dir else None
    if copy is not None and copy.is_file():
        s3.upload_file(str(copy), bucket, key)


def on_both(first: Callable[[str], None], second: Callable[[str], None]) -> Callable[[str], None]:
    def both(body: str) -> None:
        first(body)
        second(body)

    return both
