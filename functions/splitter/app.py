"""Splitter Lambda: an S3 ObjectCreated event -> segment_importer.splitter, per object."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.typing import LambdaContext

from segment_importer.settings import SplitterSettings
from segment_importer.splitter import split_import

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"segment_importer"})


@cache
def _clients() -> tuple[Any, Any]:
    return boto3.client("s3"), boto3.client("sqs")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = SplitterSettings.from_env()
    s3, sqs = _clients()
    reports = [
        split_import(s3, sqs, record.s3.bucket.name, record.s3.get_object.key, settings)
        for record in S3Event(event).records
    ]
    return {
        "imports": [{"key": r.key, "status": r.status, "messages_queued": r.messages_queued} for r in reports]
    }
