"""`make local-invoke`: the splitter and the sender through `sam local invoke`, on events/.

On a moto server holding the stack's resources (from template.yaml) and the embedded Segment
endpoint, all on 127.0.0.1:
1. the sample export is uploaded where events/s3-put.json says, and the splitter container
   gets that event;
2. the sender container drains the work queue the way the SQS event source would (one
   `sam local invoke` per batch of the template's BatchSize);
3. the sender container also gets events/sqs-batch.json as it is.
Exit 0 only if every message the splitter queued reached the endpoint and the ledger says the
import is complete, and the sample batch was delivered in full.

Usage: python scripts/local_invoke.py [--sample examples/spreadsheet.csv]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import unquote_plus

from segment_importer.track.ledger import COMPLETE, COMPLETE_WITH_ERRORS, Ledger
from segment_importer_local.event_source import SqsPoller
from segment_importer_local.sam_local import SamCli, SamInvokeError, local_aws, remote_function
from segment_importer_local.template_config import StackTemplate

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


def run(sample: Path) -> int:
    template = StackTemplate.load(ROOT / "template.yaml")
    sam = SamCli.for_build(ROOT, EVENTS / "env.json")
    s3_event = json.loads((EVENTS / "s3-put.json").read_text(encoding="utf-8"))
    target = s3_event["Records"][0]["s3"]
    with local_aws(template) as aws:
        stack = aws.stack
        if target["bucket"]["name"] != stack.bucket:
            raise SamInvokeError(
                f"events/s3-put.json names bucket {target['bucket']['name']}, not {stack.bucket}"
            )
        stack.s3.upload_file(str(sample), stack.bucket, unquote_plus(target["object"]["key"]))
        split = sam.invoke_file("SplitterFunction", EVENTS / "s3-put.json")
        print(f"splitter: {json.dumps(split)}")
        sender = remote_function(stack, "SenderFunction", sam.invoke)
        arn = stack.resolver.attributes["WorkQueue.Arn"]
        poller = SqsPoller(
            stack.sqs, stack.work_queue_url, arn, sender, stack.sqs_batch_size("SenderFunction")
        )
        drained = poller.drain()
        print(f"sender on the work queue: {drained}")
        (item,) = Ledger(
            stack.dynamodb, stack.table_name("ImportsTable"), stack.table_name("BatchesTable")
        ).list_imports()
        received_from_split = aws.endpoint.stats()["messages_accepted"]
        sample_batch = sam.invoke_file("SenderFunction", EVENTS / "sqs-batch.json")
        print(f"sender on events/sqs-batch.json: {json.dumps(sample_batch)}")
        stats = aws.endpoint.stats()
    for invocation in sam.invocations:
        print(f"  sam local invoke {invocation.function}: {invocation.seconds:.1f} s")
    print(
        f"ledger: {item['status']}, {item['messages_delivered']} of {item['messages_queued']} delivered, "
        f"{item['rejected']} rows rejected; "
        f"endpoint: {received_from_split} messages from the split, {stats['messages_accepted']} in all"
    )
    complete = (
        item["status"] in (COMPLETE, COMPLETE_WITH_ERRORS)  # the sample has rows the splitter rejects
        and item["batches_failed"] == item["messages_refused"] == 0
        and item["messages_delivered"] == item["messages_queued"] == received_from_split > 0
        and drained.handler_errors == 0
        and not sample_batch.get("batchItemFailures")
    )
    print("OK" if complete else "NOT OK: see above")
    return 0 if complete else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=Path, default=ROOT / "examples" / "spreadsheet.csv")
    arguments = parser.parse_args(argv)
    try:
        return run(arguments.sample)
    except SamInvokeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
