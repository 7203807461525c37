"""A library's log line in a run's functions.log: one JSON object, and for a failure, where it
failed and the exception's type (never its message, which may quote a record's values)."""

from __future__ import annotations

import logging
import sys

import orjson

from segment_importer_local.runner import JsonLineFormatter

EMAIL = "user@example.com"  # a record's value that the exception's message quotes


def _failing_lookup(value: str) -> None:
    {}[value]


def test_a_failure_keeps_its_traceback_and_type_but_not_its_message() -> None:
    try:
        _failing_lookup(EMAIL)
    except KeyError:
        record = logging.LogRecord("local", logging.ERROR, __file__, 1, "invocation failed", (), None)
        record.exc_info = sys.exc_info()
    line = orjson.loads(JsonLineFormatter().format(record))
    assert line["message"] == "invocation failed"
    assert line["exception"] == "KeyError"
    assert "_failing_lookup" in line["traceback"]
    assert EMAIL not in orjson.dumps(line).decode()


def test_a_line_without_a_failure_is_level_logger_and_message() -> None:
    record = logging.LogRecord("segment", logging.WARNING, __file__, 1, "Unknown error", (), None)
    assert orjson.loads(JsonLineFormatter().format(record)) == {
        "level": "WARNING",
        "logger": "segment",
        "message": "Unknown error",
    }
