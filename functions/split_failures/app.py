"""Split failures Lambda: the splitter failure queue -> segment_importer.split.failures.

A splitter run killed on its last attempt (timeout, out of memory, the runtime exiting)
never marks its import FAILED; its task arrives here (Lambda's invocation record of the S3
event, or a continuation task redriven by SQS) and the import is failed in the ledger.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.data_classes import SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from segment_importer.log_safety import pin_library_loggers
from segment_importer.metrics import NAMESPACE
from segment_importer.settings import SplitFailureSettings
from segment_importer.split.failures import FailureServices, fail_stopped_splits
from segment_importer.track.import_events import ImportEvents, ImportEventsSettings
from segment_importer.track.ledger import Ledger

logger = Logger()
metrics = Metrics(namespace=NAMESPACE)
# Off unless the stack's Tracing parameter is true (POWERTOOLS_TRACE_DISABLED, set by the template).
tracer = Tracer()
copy_config_to_registered_loggers(source_logger=logger, include={"segment_importer"})
pin_library_loggers()  # botocore's DEBUG lines would hold the messages


@cache
def _client(service: str) -> Any:
    return boto3.client(service)


@logger.inject_lambda_context(log_event=False)  # never the whole event: an error message may quote a record
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = SplitFailureSettings.from_env()
    ledger = Ledger.for_tables(_client("dynamodb"), settings.ledger_tables)
    if ledger is None:
        raise RuntimeError("IMPORTS_TABLE is not set: the split failures function needs the ledger")
    services = FailureServices(
        s3=_client("s3"),
        ledger=ledger,
        metrics=metrics,
        events=ImportEvents(_client("events"), ImportEventsSettings.from_env(), metrics),
    )
    return fail_stopped_splits(SQSEvent(event).records, services, settings)
