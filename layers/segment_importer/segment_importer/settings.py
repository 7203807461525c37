"""Settings the functions read from their environment (set by template.yaml).

Read when a handler runs, never at import time, so tests and the local runner can set them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from segment_importer.batch.packing import BatchLimits
from segment_importer.deliver.targets import TargetPolicy
from segment_importer.deliver.wire import ACCEPTED_ANSWERS, SEGMENT_ANSWERS
from segment_importer.job import JobOptions, parse_job_document


@dataclass(frozen=True, slots=True)
class Prefixes:
    imports: str = "imports/"
    reports: str = "reports/"
    rejects: str = "rejects/"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Prefixes:
        return cls(
            imports=env.get("IMPORTS_PREFIX", cls.imports),
            reports=env.get("REPORTS_PREFIX", cls.reports),
            rejects=env.get("REJECTS_PREFIX", cls.rejects),
        )


@dataclass(frozen=True, slots=True)
class LedgerTables:
    imports: str
    batches: str
    retention_days: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LedgerTables | None:
        """The ledger's tables, or None where no ledger is configured."""
        if not env.get("IMPORTS_TABLE"):
            return None
        return cls(
            imports=env["IMPORTS_TABLE"],
            batches=env["BATCHES_TABLE"],
            retention_days=int(env.get("LEDGER_RETENTION_DAYS") or 0),
        )


@dataclass(frozen=True, slots=True)
class SplitterSettings:
    queue_url: str
    limits: BatchLimits = field(default_factory=BatchLimits)
    default_job: JobOptions = field(default_factory=JobOptions)
    prefixes: Prefixes = field(default_factory=Prefixes)
    dry_run: bool = False
    ledger_tables: LedgerTables | None = None
    continuation_queue_url: str = ""  # empty: a file must fit in one invocation
    records_per_part: int = 0  # 0: parts end only when the invocation's time runs low
    span_bytes: int = 0  # a larger plain NDJSON/CSV file is split in byte ranges of this size; 0: never
    reserve_seconds: float = 60.0  # a part hands over when less than this is left
    # Runs Lambda gives an S3 event (1 + its async retries) and a continuation message (its
    # queue's maxReceiveCount): a part that fails on its last run marks the import FAILED.
    event_attempts: int = 3
    continuation_attempts: int = 3
    preflight_host: str = ""  # Segment's settings CDN; empty: no write-key pre-flight
    write_key_parameter: str = ""
    hash_key_path: str = ""  # SSM path a job's `hash.keyParameter` must be under; empty: none allowed
    targets: TargetPolicy = field(default_factory=TargetPolicy)  # what a job may name as its workspace

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SplitterSettings:
        defaults = parse_job_document(env.get("DEFAULT_JOB_OPTIONS", "{}"), "DefaultJobOptions parameter")
        return cls(
            queue_url=env["WORK_QUEUE_URL"],
            limits=BatchLimits(
                max_bytes=int(env.get("BATCH_MAX_BYTES", BatchLimits.max_bytes)),
                max_messages=int(env.get("BATCH_MAX_MESSAGES", BatchLimits.max_messages)),
                max_queue_bytes=int(env.get("QUEUE_MAX_MESSAGE_BYTES", BatchLimits.max_queue_bytes)),
            ),
            default_job=JobOptions().merged_with(defaults),
            prefixes=Prefixes.from_env(env),
            dry_run=env.get("DRY_RUN", "false").lower() == "true",
            ledger_tables=LedgerTables.from_env(env),
            continuation_queue_url=env.get("CONTINUATION_QUEUE_URL", ""),
            records_per_part=int(env.get("SPLIT_RECORDS_PER_PART") or 0),
            span_bytes=int(env.get("PARALLEL_SPLIT_BYTES") or 0),
            reserve_seconds=float(env.get("SPLIT_RESERVE_SECONDS") or 60.0),
            event_attempts=1 + int(env.get("SPLIT_ASYNC_RETRIES") or 2),
            continuation_attempts=int(env.get("CONTINUATION_MAX_RECEIVE_COUNT") or 3),
            preflight_host=env.get("PREFLIGHT_HOST", ""),
            write_key_parameter=env.get("WRITE_KEY_PARAMETER", ""),
            hash_key_path=env.get("HASH_KEY_PARAMETER_PATH", ""),
            targets=TargetPolicy.from_env(env),
        )


@dataclass(frozen=True, slots=True)
class SenderSettings:
    write_key_parameter: str
    segment_host: str = "https://api.segment.io"
    request_timeout_seconds: float = 15.0
    gzip: bool = False
    max_attempts: int = (
        0  # tries of one request per receive; 0: until the batch's time is spent (the template sets 8)
    )
    accepted_answers: str = SEGMENT_ANSWERS  # which 2xx count as delivered (wire.ACCEPTED_ANSWERS)
    prefixes: Prefixes = field(default_factory=Prefixes)
    max_receive_count: int | None = None
    ledger_tables: LedgerTables | None = None
    targets: TargetPolicy = field(default_factory=TargetPolicy)  # the stack's own and what a job may name
    post_concurrency: int = 1  # batches of one invocation posted at once
    max_events_per_second: float = 0.0  # across every sender; 0: no limit of ours
    rate_limit_table: str = ""  # where the shared event rate is kept
    work_queue_url: str = ""  # where a batch refused a slot under the rate goes back, delayed

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SenderSettings:
        return cls(
            write_key_parameter=env["WRITE_KEY_PARAMETER"],
            segment_host=env.get("SEGMENT_HOST", cls.segment_host),
            request_timeout_seconds=float(env.get("SEGMENT_TIMEOUT_SECONDS", cls.request_timeout_seconds)),
            gzip=env.get("SEGMENT_GZIP", "false").lower() == "true",
            max_attempts=int(env.get("SEGMENT_MAX_ATTEMPTS") or 0),
            accepted_answers=_accepted_answers(env.get("SEGMENT_ACCEPTED_ANSWERS") or SEGMENT_ANSWERS),
            prefixes=Prefixes.from_env(env),
            max_receive_count=int(env["MAX_RECEIVE_COUNT"]) if env.get("MAX_RECEIVE_COUNT") else None,
            ledger_tables=LedgerTables.from_env(env),
            targets=TargetPolicy.from_env(env),
            post_concurrency=int(env.get("SENDER_POST_CONCURRENCY") or 1),
            max_events_per_second=float(env.get("MAX_EVENTS_PER_SECOND") or 0),
            rate_limit_table=env.get("RATE_LIMIT_TABLE", ""),
            work_queue_url=env.get("WORK_QUEUE_URL", ""),
        )


@dataclass(frozen=True, slots=True)
class SplitFailureSettings:
    """The split failures function's: the ledger, where reports go, and how many runs the
    splitter gets (what a stopped split's error says)."""

    prefixes: Prefixes = field(default_factory=Prefixes)
    ledger_tables: LedgerTables | None = None
    event_attempts: int = 3  # 1 + SplitterAsyncRetries, when an invocation record omits its count
    continuation_attempts: int = 3  # ContinuationMaxReceiveCount

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SplitFailureSettings:
        return cls(
            prefixes=Prefixes.from_env(env),
            ledger_tables=LedgerTables.from_env(env),
            event_attempts=1 + int(env.get("SPLIT_ASYNC_RETRIES") or 2),
            continuation_attempts=int(env.get("CONTINUATION_MAX_RECEIVE_COUNT") or 3),
        )


def _accepted_answers(value: str) -> str:
    """SegmentAcceptedAnswers, refused when misspelt (`any_2xx` silently meant `segment`)."""
    if value not in ACCEPTED_ANSWERS:
        raise ValueError(f"SEGMENT_ACCEPTED_ANSWERS must be one of {list(ACCEPTED_ANSWERS)}, not {value!r}")
    return value
