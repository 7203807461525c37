"""Splitter Lambda: an S3 ObjectCreated event -> segment_importer.splitter, per object."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.typing import LambdaContext

from segment_importer.ledger import Ledger
from segment_importer.metrics import NAMESPACE
from segment_importer.settings import SplitterSettings
from segment_importer.splitter import SplitterServices, split_import

logger = Logger()
metrics = Metrics(namespace=NAMESPACE)
copy_config_to_registered_loggers(source_logger=logger, include={"segment_importer"})


@cache
def _client(service: str) -> Any:
    return boto3.client(service)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = SplitterSettings.from_env()
    tables = settings.ledger_tables
    services = SplitterServices(
        s3=_client("s3"),
        sqs=_client("sqs"),
        ledger=Ledger(_client("dynamodb"), tables.imports, tables.batches) if tables else None,
        metrics=metrics,
    )
    reports = [
        split_import(
            services,
            record.s3.bucket.name,
            record.s3.get_object.key,
            settings,
            request_id=context.aws_request_id,
        )
        for record in S3Event(event).records
    ]
    return {
        "imports": [{"key": r.key, "status": r.status, "messages_queued": r.messages_queued} for r in reports]
    }
