"""Splitter Lambda: S3 ObjectCreated events; continued splits and byte-range surveys from SQS."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from segment_importer.deliver.preflight import WriteKeyPreflight
from segment_importer.deliver.write_keys import WriteKeySource, service_for
from segment_importer.log_safety import pin_library_loggers
from segment_importer.mapping.hash_keys import ssm_parameter_reader
from segment_importer.metrics import NAMESPACE
from segment_importer.settings import SplitterSettings
from segment_importer.split.continuation import PartBudget
from segment_importer.split.s3_events import notified_objects
from segment_importer.split.splitter import SplitterServices, continue_import, split_import
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
    """One per parameter name and process (Powertools caches each value for its max_age)."""
    return WriteKeySource(parameter, _client(service_for(parameter)))


@cache
def _preflight(settings_host: str, parameter: str) -> WriteKeyPreflight:
    """One per process, so each key (the stack's, or a job's) is checked once while the environment lives."""
    return WriteKeyPreflight(
        settings_host, _write_keys(parameter).get, key_of=lambda name: _write_keys(name).get()
    )


@logger.inject_lambda_context(log_event=False)  # never the whole event: it holds records
# Responses and errors stay out of traces: an error can quote a record.
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = SplitterSettings.from_env()
    services = SplitterServices(
        s3=_client("s3"),
        sqs=_client("sqs"),
        ledger=Ledger.for_tables(_client("dynamodb"), settings.ledger_tables),
        metrics=metrics,
        preflight=_preflight(settings.preflight_host, settings.write_key_parameter)
        if settings.preflight_host and settings.write_key_parameter
        else None,
        read_parameter=ssm_parameter_reader(_client("ssm"), settings.hash_key_path),
        events=ImportEvents(_client("events"), ImportEventsSettings.from_env(), metrics),
    )
    budget = PartBudget(
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
        reserve_seconds=settings.reserve_seconds,
        max_records=settings.records_per_part,
    )
    records = event.get("Records", [])
    if records and records[0].get("eventSource") == "aws:sqs":
        for record in SQSEvent(event).records:  # batch size 1: one task per invocation
            attempt = int(record.attributes.approximate_receive_count or 1)  # a redelivery redoes the part
            continue_import(services, record.body, settings, budget=budget, attempt=attempt)
        return {"batchItemFailures": []}
    reports = [
        split_import(
            services,
            notified.bucket,
            notified.key,  # decoded: S3 notifications URL-encode keys
            settings,
            request_id=context.aws_request_id,
            budget=budget,
        )
        for notified in notified_objects(event)
    ]
    return {"imports": [report.summary() for report in reports]}
