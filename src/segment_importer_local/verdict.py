"""What a run's last line says, and its exit code: a verdict means what it says.

- 0 `OK`: every record read was sent (in a dry run: would be sent);
- 3 `DONE WITH REJECTS`: finished, everything valid was sent, some records were rejected
  (by validation, or refused by Segment);
- 1 `NOT OK`: something was not delivered, an import failed, a file was not read to its end,
  nothing was sent, or there was nothing to send (0 records);
- 2: the command line was wrong (argparse's own code, and every refused option).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from segment_importer_local.runner import FileOutcome, RunResult

from segment_importer.mapping.profiles.posthog import PERSON_DELETED_RULE
from segment_importer.mapping.profiles.snowplow import PAGE_PING_RULE
from segment_importer.track import reasons
from segment_importer.track.ledger import FAILED, REFUSED_STATUS_PREFIX
from segment_importer_local.errors import EXIT_FAILED, EXIT_OK, EXIT_REJECTS
from segment_importer_local.run_state import FUNCTIONS_LOG

# What to do about the most frequent reject reason (codes: segment_importer.track.reasons).
HINTS = {
    reasons.MISSING_USER: "no column maps to userId or anonymousId: map one in the job file, e.g. "
    '`"columns": {"email": "userId"}`',
    reasons.MISSING_TIMESTAMP: "no field holds an event time Segment can read: map a column to "
    'timestamp (`"columns": {"created": "timestamp"}`), give its format (`"timestampFormat": '
    '"%m/%d/%Y %H:%M"`), or set `"requireTimestamp": false`',
    reasons.INVALID_TIMESTAMP: "the event time is not ISO 8601 or epoch: give its format in the job "
    'file, e.g. `"timestampFormat": "%m/%d/%Y %H:%M"`',
    reasons.MISSING_EVENT: "track calls need an event name: map a column to event, or set "
    '`"event"` in the job file',
    reasons.UNKNOWN_TYPE: 'the type column holds something else: set `"type"` in the job file, or '
    "drop the column",
    reasons.CSV_FIELD_COUNT: "rows with more or fewer cells than the header: check the delimiter and quoting",
    reasons.INVALID_JSON: "lines that are not JSON: is this NDJSON (one object a line)? The rejects "
    "file names each line's cause",
    reasons.INVALID_UTF8: "the text is not UTF-8: give a CSV's encoding in the job file, e.g. "
    '`"encoding": "cp1252"` for Excel on Windows, `"latin-1"`, or `"utf-16"`',
    reasons.REJECTED_BY_SEGMENT: "Segment answered 400 for these messages (see the rejects' .refused/ files)",
}
# What a refusal's status says beyond Segment's own 400 (the sender halves on both).
_REFUSAL_MEANING = {
    413: "Payload Too Large: a proxy or gateway in front of Segment takes less than Segment's 500 KB",
}


@dataclass
class Verdict:
    code: int
    headline: str
    reasons: list[str] = field(default_factory=list)  # one line each, said before the headline


def of_run(result: RunResult, *, dry_run: bool) -> Verdict:
    files = result.files
    records = sum(int(f.report.get("records_read", 0)) for f in files)
    rejected = sum(int(f.report.get("rejected", 0)) for f in files) + sum(f.messages_refused for f in files)
    if dry_run:
        sent = sum(_queued(f) for f in files)
        batches = sum(int(f.report.get("batches_queued", 0)) for f in files)
        done = (
            f"would send {sent:,} of {records:,} records in {batches:,} batch{'es' if batches != 1 else ''}"
        )
    else:
        sent = sum(f.messages_delivered for f in files)
        done = f"sent {sent:,} of {records:,} records to {result.destination}"
    filtered = sum(int(f.report.get("filtered") or 0) for f in files)
    if filtered:  # neither sent nor rejected: left out by the job's filters, or by a profile
        done += f" ({_left_out(files, filtered)})"
    failed_files = sum(1 for f in files if _import_failed(f))
    if failed_files:  # "of N records" counts what was read: a file that failed adds what it read, if any
        done += f"; {failed_files:,} file{'s' if failed_files != 1 else ''} failed (said above)"
    reasons = [line for outcome in files for line in _failures(outcome, result.destination, dry_run)]
    reasons += _dropped_by_endpoint(result, dry_run)
    hint = top_reason_hint(files)
    if records == 0 and not reasons:
        return Verdict(EXIT_FAILED, "NOT OK: 0 records in the input (an empty file, or a header only)")
    mode = " (dry run, nothing sent)" if dry_run else ""
    if reasons or sent == 0:
        if rejected and hint:
            reasons.append(hint)
        return Verdict(EXIT_FAILED, f"NOT OK{mode}: {done}", reasons)
    if rejected:
        return Verdict(
            EXIT_REJECTS, f"DONE WITH REJECTS{mode}: {done}; {rejected:,} rejected", [hint] if hint else []
        )
    return Verdict(EXIT_OK, f"OK{mode}: {done}")


def top_reason_hint(files: list[FileOutcome]) -> str:
    counts: Counter[str] = Counter()
    for outcome in files:
        counts.update(outcome.report.get("rejected_by_reason", {}))
        counts[reasons.REJECTED_BY_SEGMENT] += outcome.messages_refused
    counts = Counter({reason: count for reason, count in counts.items() if count})
    if not counts:
        return ""
    reason, count = counts.most_common(1)[0]
    hint = HINTS.get(reason, "see the rejects file")
    if reason == reasons.REJECTED_BY_SEGMENT:
        hint = refusal_hint(files)
    return f"top reject reason {reason} ({count:,}): {hint}"


def refusal_hint(files: list[FileOutcome]) -> str:
    """What the host answered for the refused messages: the statuses the ledger counted (an
    import counted before they were kept says Segment's 400)."""
    statuses: Counter[int] = Counter()
    for outcome in files:
        for name, count in (outcome.ledger or {}).items():
            if name.startswith(REFUSED_STATUS_PREFIX) and name[len(REFUSED_STATUS_PREFIX) :].isdigit():
                statuses[int(name[len(REFUSED_STATUS_PREFIX) :])] += int(count)
    statuses = Counter({status: count for status, count in statuses.items() if count})
    if set(statuses) <= {400}:
        return HINTS["rejected_by_segment"]
    answered = ", ".join(
        f"HTTP {status}"
        + (f" ({_REFUSAL_MEANING[status]})" if status in _REFUSAL_MEANING else "")
        + (f" for {count:,}" if len(statuses) > 1 else "")
        for status, count in statuses.most_common()
    )
    return f"the host answered {answered} for these messages (see the rejects' .refused/ files)"


def _queued(outcome: FileOutcome) -> int:
    """Messages queued for one input: an archive's are its members' (its own report has none)."""
    ledger, members = outcome.ledger or {}, outcome.report.get("members") or []
    if ledger.get("messages_queued") is not None:
        return int(ledger["messages_queued"])
    if members:
        return sum(int(member.get("messages_queued") or 0) for member in members)
    return int(outcome.report.get("messages_queued", 0))


def _import_failed(outcome: FileOutcome) -> bool:
    """The file's import stopped for good: its report's error, or the ledger's FAILED."""
    return bool(outcome.report.get("error")) or (outcome.ledger or {}).get("status") == FAILED


def _dropped_by_endpoint(result: RunResult, dry_run: bool) -> list[str]:
    """Messages the embedded endpoint answered 200 and dropped, as Segment does with invalid
    ones: sent is not delivered, so the run is not OK (the importer let them through)."""
    stats = result.endpoint_stats
    dropped = stats.get("dropped", {}) if stats and not dry_run else {}
    if not sum(dropped.values()):
        return []
    causes = ", ".join(f"{reason} {count:,}" for reason, count in sorted(dropped.items()))
    return [
        f"the endpoint answered 200 but dropped {sum(dropped.values()):,} invalid messages ({causes}), "
        "as Segment would: they are lost; fix what made them (the job's set/drop/hash?) and import again"
    ]


def _failures(outcome: FileOutcome, destination: str, dry_run: bool) -> list[str]:
    """Why one file's import is not a success, one line per cause."""
    name, report, ledger = outcome.key, outcome.report, outcome.ledger or {}
    lines = []
    records, queued = int(report.get("records_read", 0)), _queued(outcome)
    # A report rewritten from the ledger (a split stopped for good) has the ledger's last_error.
    failed = ledger.get("status") == FAILED
    error = report.get("error") or ((ledger.get("last_error") or "failed") if failed else None)
    if records and not queued and not error:
        lines.append(f"{name}: every record was rejected ({records:,}): nothing to send from it")
    if error:
        lines.append(f"{name}: import failed: {error}")
    if not outcome.read_to_its_end:
        lines.append(f"{name}: not read to its end (file_unreadable in the rejects says where and why)")
    lines += [
        f"{member.get('key')}: {member.get('error') or member.get('last_error') or 'failed'}"
        for member in report.get("members") or []
        if member.get("status") == "FAILED"
    ]  # an archive's refused members (a nested archive, a name that leaves its folder)
    if dry_run or error:
        return lines
    undelivered = int(ledger.get("messages_queued", report.get("messages_queued", 0))) - (
        outcome.messages_delivered + outcome.messages_refused
    )
    if undelivered > 0 or outcome.batches_dead_lettered or outcome.batches_in_dead_letter_queue:
        error = ledger.get("last_error") or ledger.get("first_error") or "no answer recorded"
        lines.append(f"{name}: {undelivered:,} messages not delivered: {error} (host {destination})")
    return lines


# Rules a profile applies without the job asking (not the job's filters), in words.
_PROFILE_RULES = {
    PAGE_PING_RULE: "Snowplow page_ping (activity heartbeats: no Segment call)",
    PERSON_DELETED_RULE: "PostHog deleted persons (is_deleted: not imported back)",
}


def _left_out(files: list[FileOutcome], filtered: int) -> str:
    """`120 left out by the job's filters`; what a profile left out is named apart."""
    by_profile: dict[str, int] = {}
    for outcome in files:
        for rule, count in (outcome.report.get("filtered_by") or {}).items():
            if rule in _PROFILE_RULES:
                by_profile[rule] = by_profile.get(rule, 0) + int(count)
    by_job = filtered - sum(by_profile.values())
    if not by_profile:
        return f"{by_job:,} left out by the job's filters"
    parts = [f"{by_job:,} by the job's filters"] if by_job else []
    parts += [f"{count:,} {_PROFILE_RULES[rule]}" for rule, count in by_profile.items()]
    return "left out: " + "; ".join(parts)


def next_steps(result: RunResult, run_dir: Path, resume: str) -> list[str]:
    """What to do about a run that did not end OK: the commands, one per kind of trouble.

    A local run's queues die with it, so its dead-lettered or undelivered batches are not
    redriven: `resume` (the `run --resume` command) sends exactly what was not delivered and
    counts the rest as the stopped run left it. `redrive` is for a deployed stack's queue.
    """
    steps: list[str] = []
    rejected = [f for f in result.files if int(f.report.get("rejected", 0)) or f.messages_refused]
    for outcome in rejected[:3]:
        command = f"segment-importer rejects {outcome.key} --local {run_dir}"
        steps.append(f"  see what was rejected in {outcome.key}: {command}")
    if len(rejected) > 3:
        more = len(rejected) - 3
        steps.append(
            f"  ... and {more} more imports with rejects (segment-importer status --local {run_dir})"
        )
    if rejected:
        steps.append("  fix them (the job file, or the export), then import the fixed records as a new run")
    undelivered = [f for f in result.files if _undelivered(f)]
    if undelivered:
        steps.append(
            f"  send what was not delivered ({', '.join(f.key for f in undelivered[:3])}"
            f"{' ...' if len(undelivered) > 3 else ''}), once the host answers: {resume}"
        )
    failed = [f for f in result.files if _import_failed(f)]
    if failed:
        steps.append(
            f"  an import failed: the reason is above and in {run_dir / FUNCTIONS_LOG}; fix it and run again"
        )
    if not steps:
        return []
    return ["Next:", *steps]


def _undelivered(outcome: FileOutcome) -> bool:
    if outcome.report.get("error"):
        return False
    queued = int((outcome.ledger or {}).get("messages_queued", outcome.report.get("messages_queued", 0)))
    resolved = outcome.messages_delivered + outcome.messages_refused
    return queued > resolved or bool(outcome.batches_dead_lettered or outcome.batches_in_dead_letter_queue)
