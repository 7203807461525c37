"""Sender Lambda: SQS records (one Segment batch each) -> segment_importer.deliver.sender."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from segment_importer.deliver.deferral import BatchDeferral
from segment_importer.deliver.rate_limit import EventRateLimit
from segment_importer.deliver.sender import SenderServices, send_records
from segment_importer.deliver.target_resolver import TargetResolver
from segment_importer.deliver.write_keys import WriteKeySource, service_for
from segment_importer.log_safety import pin_library_loggers
from segment_importer.metrics import NAMESPACE
from segment_importer.settings import SenderSettings
from segment_importer.track.import_events import ImportEvents, ImportEventsSettings
from segment_importer.track.ledger import Ledger

logger = Logger()
metrics = Metrics(namespace=NAMESPACE)
# Off unless the stack's Tracing parameter is true (POWERTOOLS_TRACE_DISABLED, set by the template).
tracer = Tracer()
copy_config_to_registered_loggers(source_logger=logger, include={"segment_importer"})
pin_library_loggers()  # their DEBUG lines hold records and the write key


@cache
def _client(service: str) -> Any:
    return boto3.client(service)


@cache
def _write_keys(parameter: str) -> WriteKeySource:
    return WriteKeySource(parameter, _client(service_for(parameter)))


def _rate_limit(settings: SenderSettings) -> EventRateLimit | None:
    if settings.max_events_per_second <= 0:
        return None
    return EventRateLimit(_client("dynamodb"), settings.rate_limit_table, settings.max_events_per_second)


@logger.inject_lambda_context(log_event=False)  # never the whole event: it holds records
# Responses and errors stay out of traces: an error can quote a record.
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = SenderSettings.from_env()
    # The stack's own target, and each one a batch's job names (checked against the stack's
    # policy), with one cached key source per parameter name.
    targets = TargetResolver(
        settings.targets,
        lambda name: _write_keys(name).get(),
        timeout_seconds=settings.request_timeout_seconds,
        gzip=settings.gzip,
        max_attempts=settings.max_attempts,
        accepted_answers=settings.accepted_answers,
    )
    services = SenderServices(
        poster=targets.poster(None),
        poster_for=targets.poster,
        s3=_client("s3"),
        prefixes=settings.prefixes,
        ledger=Ledger.for_tables(_client("dynamodb"), settings.ledger_tables),
        max_receive_count=settings.max_receive_count,
        metrics=metrics,
        events=ImportEvents(_client("events"), ImportEventsSettings.from_env(), metrics),
        post_concurrency=settings.post_concurrency,
        rate_limit=_rate_limit(settings),
        deferral=BatchDeferral(_client("sqs"), settings.work_queue_url) if settings.work_queue_url else None,
    )
    return send_records(
        SQSEvent(event).records,
        services,
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
    )
