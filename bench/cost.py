"""Benchmark 5: a cost model per million events, from the figures measured in this run.

Measured inputs: the splitter's CPU seconds per event (benchmark 1, NDJSON), the batches
it makes and their sizes (benchmark 1's batch-fill pass), the sender's CPU seconds per
event (benchmark 2) and, when the end-to-end benchmark ran, the DynamoDB calls per batch.
Configuration comes from template.yaml (MemorySize, SenderBatchSize, QueueMaxMessageBytes).

Modelled, and stated as such: Lambda gives a function CPU in proportion to its memory (one
full vCPU at 1,769 MB, and the splitter and sender are single-threaded, so more does not
help them); the splitter waits on S3 reads and SQS calls it does not overlap with work, and
the sender waits on Segment; those waits are the ASSUMPTIONS below. Prices are list prices
for us-east-1 as known to the author; they are not fetched. Check them before relying on
the dollar figures.
"""

from __future__ import annotations

import math
from typing import Any

PRICES = {
    "as_of": "list prices as known to the author (us-east-1, mid-2025); check before relying",
    "lambda_gb_second_x86": 0.0000166667,
    "lambda_gb_second_arm": 0.0000133334,
    "lambda_per_million_requests": 0.20,
    "sqs_per_million_requests": 0.40,  # standard queue, beyond the free tier; per 64 KB chunk
    "dynamodb_per_million_write_units": 0.625,  # on-demand (after the Nov 2024 price cut)
    "dynamodb_per_million_read_units": 0.125,
    "s3_per_thousand_get": 0.0004,
    "s3_per_thousand_put": 0.005,
    "internet_egress_per_gb": 0.09,  # data transfer out, first 10 TB/month
}
ASSUMPTIONS = {
    "full_vcpu_memory_mb": 1769,  # AWS: a function gets one vCPU's worth of CPU at 1,769 MB
    "s3_read_mb_per_second": 80.0,  # one GetObject stream read sequentially by the splitter
    "sqs_send_batch_seconds": 0.030,  # one SendMessageBatch round trip from Lambda
    "segment_post_seconds": 0.200,  # one ~470 KB POST /v1/batch, upload and answer
    "dynamodb_write_units_per_transaction": 4,  # 2 items per TransactWriteItems x 2 (transactional)
    "gzip_ratio": None,  # filled in from the measured batch bodies
}
SQS_CHUNK = 64 * 1024
EVENTS = 1_000_000


def template_settings() -> dict[str, Any]:
    from segment_importer_local.template_config import StackTemplate

    template = StackTemplate.load()
    parameters = template.parameter_defaults()
    return {
        "splitter_memory_mb": int(template.function_property("SplitterFunction", "MemorySize")),
        "sender_memory_mb": int(template.function_property("SenderFunction", "MemorySize")),
        "splitter_timeout_s": int(template.function_property("SplitterFunction", "Timeout")),
        "sender_batch_size": int(parameters.get("SenderBatchSize", 5)),
        "queue_max_message_bytes": int(parameters.get("QueueMaxMessageBytes", 1_048_576)),
        "architecture": (template.function_property("SplitterFunction", "Architectures") or ["x86_64"])[0],
        "segment_gzip": str(parameters.get("SegmentGzip", "false")).lower() == "true",
    }


def gb_second_price(architecture: str) -> float:
    """Lambda's price per GB-second for the template's architecture (arm64 is about 20% less)."""
    return PRICES["lambda_gb_second_arm" if architecture == "arm64" else "lambda_gb_second_x86"]


def vcpu_share(memory_mb: int) -> float:
    return min(1.0, memory_mb / ASSUMPTIONS["full_vcpu_memory_mb"])


def model(
    splitter: dict[str, Any], sender: dict[str, Any], end_to_end: dict[str, Any] | None
) -> dict[str, Any]:
    settings = template_settings()
    fill = splitter["batches"]
    per_event_split_cpu = 1 / splitter["cases"]["ndjson"]["events_per_cpu_second"]
    # The sender's CPU as deployed: gzipped bodies when the template's SegmentGzip is on.
    send_method = (
        "batches+gzip" if settings["segment_gzip"] and "batches+gzip" in sender["methods"] else "batches"
    )
    per_event_send_cpu = sender["methods"][send_method]["sender_cpu_per_1k_events_ms"] / 1e6
    batches = math.ceil(EVENTS / fill["messages_per_full_batch"])  # one file of a million events
    body_bytes = fill["mean_queue_body_bytes"]
    input_bytes = EVENTS * splitter["input_bytes"]["ndjson"] / splitter["events"]
    wire_bytes = batches * fill["mean_wire_bytes_full_batches"]
    gzip_ratio = fill.get("gzip_ratio") or 1.0
    egress = {  # by SegmentGzip
        False: wire_bytes / 1e9 * PRICES["internet_egress_per_gb"],
        True: wire_bytes / gzip_ratio / 1e9 * PRICES["internet_egress_per_gb"],
    }

    # SQS: SendMessageBatch packs bodies up to the queue's message size per call; each call,
    # each receive (the event source mapping's, SenderBatchSize bodies) and each delete batch
    # is billed per started 64 KB of payload (at least one request).
    per_send_call = max(1, settings["queue_max_message_bytes"] // int(body_bytes))
    send_calls = batches / per_send_call
    send_requests = send_calls * math.ceil(per_send_call * body_bytes / SQS_CHUNK)
    invocations = batches / settings["sender_batch_size"]
    receive_requests = invocations * math.ceil(settings["sender_batch_size"] * body_bytes / SQS_CHUNK)
    delete_requests = invocations
    sqs_requests = send_requests + receive_requests + delete_requests

    def splitter_seconds(memory_mb: int) -> float:
        return (
            EVENTS * per_event_split_cpu / vcpu_share(memory_mb)
            + input_bytes / (ASSUMPTIONS["s3_read_mb_per_second"] * 1e6)
            + send_calls * ASSUMPTIONS["sqs_send_batch_seconds"]
        )

    def sender_seconds(memory_mb: int) -> float:
        return (
            EVENTS * per_event_send_cpu / vcpu_share(memory_mb)
            + batches * ASSUMPTIONS["segment_post_seconds"]
        )

    split_s = splitter_seconds(settings["splitter_memory_mb"])
    send_s = sender_seconds(settings["sender_memory_mb"])
    gb_seconds = {
        "splitter": split_s * settings["splitter_memory_mb"] / 1024,
        "sender": send_s * settings["sender_memory_mb"] / 1024,
    }
    ledger_transactions = ledger_reads = 0.0
    if end_to_end and end_to_end.get("batches_queued"):
        calls = end_to_end.get("aws_calls", {})
        per_batch = 1 / end_to_end["batches_queued"]
        ledger_transactions = batches * calls.get("dynamodb.TransactWriteItems", 0) * per_batch
        ledger_reads = batches * calls.get("dynamodb.GetItem", 0) * per_batch
    gb_second = gb_second_price(settings["architecture"])
    dollars = {
        "lambda_compute": (gb_seconds["splitter"] + gb_seconds["sender"]) * gb_second,
        "lambda_requests": (1 + invocations) * PRICES["lambda_per_million_requests"] / 1e6,
        "sqs": sqs_requests * PRICES["sqs_per_million_requests"] / 1e6,
        "dynamodb_ledger": (
            ledger_transactions
            * ASSUMPTIONS["dynamodb_write_units_per_transaction"]
            * PRICES["dynamodb_per_million_write_units"]
            + ledger_reads * PRICES["dynamodb_per_million_read_units"]
        )
        / 1e6,
        "s3_requests": 2 * PRICES["s3_per_thousand_get"] / 1000 + 2 * PRICES["s3_per_thousand_put"] / 1000,
        "egress_to_segment": egress[settings["segment_gzip"]],
    }
    total = sum(dollars.values())
    minimum_requests = EVENTS / min(
        fill["limits"]["max_messages"], fill["limits"]["max_bytes"] / fill["mean_message_wire_bytes"]
    )
    memory_options = {
        str(memory): {
            "seconds_per_million": splitter_seconds(memory),
            "gb_seconds_per_million": splitter_seconds(memory) * memory / 1024,
            "dollars_per_million": splitter_seconds(memory) * memory / 1024 * gb_second,
            "events_in_one_invocation": EVENTS * settings["splitter_timeout_s"] / splitter_seconds(memory),
        }
        for memory in (512, 1024, 1769, 3008)
    }
    sender_options = {
        str(memory): {
            "seconds_per_million": sender_seconds(memory),
            "dollars_per_million": sender_seconds(memory) * memory / 1024 * gb_second,
        }
        for memory in (256, 512, 1024, 1769)
    }
    return {
        "prices": PRICES,
        "assumptions": {**ASSUMPTIONS, "gzip_ratio": gzip_ratio},
        "template": settings,
        "per_million_events": {
            "segment_requests": batches,
            "segment_requests_minimum": minimum_requests,
            "batch_fill": minimum_requests / batches,
            "sqs_requests_billed": sqs_requests,
            "sqs_breakdown": {"send": send_requests, "receive": receive_requests, "delete": delete_requests},
            "sender_invocations": invocations,
            "splitter_cpu_seconds": EVENTS * per_event_split_cpu,
            "sender_cpu_seconds": EVENTS * per_event_send_cpu,
            "splitter_seconds": split_s,
            "sender_seconds": send_s,
            "lambda_gb_seconds": gb_seconds,
            "ledger_transactions": ledger_transactions,
            "wire_gb": wire_bytes / 1e9,
            "dollars": dollars,
            "dollars_total": total,
            "segment_gzip": settings["segment_gzip"],
            "egress_plain_json": egress[False],
            "egress_gzip": egress[True],
        },
        "splitter_memory_options": memory_options,
        "sender_memory_options": sender_options,
    }
