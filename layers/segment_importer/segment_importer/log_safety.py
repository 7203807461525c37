"""Keep personal data and the write key out of logs that libraries write.

At DEBUG, segment-analytics-python logs whole request bodies (records and the write key),
urllib3 logs request lines (the pre-flight URL holds the key), and botocore logs request
and response bodies (the SQS batches, the SSM answer holding the key). Their loggers stay at
WARNING whatever level the functions' own logs run at.
"""

from __future__ import annotations

import logging

NOISY_LOGGERS = ("segment", "urllib3", "botocore", "boto3", "s3transfer")


def pin_library_loggers(level: int = logging.WARNING) -> None:
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level)
