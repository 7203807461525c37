"""Create the stack's resources in a moto server from template.yaml, and keep it serving.

For running `sam local invoke` by hand (docs/sam-local.md): moto listens on 127.0.0.1:5055 and
the embedded Segment endpoint on 127.0.0.1:5056, the ports events/env.json and the local base
image point the functions at. `--write-env-json` rewrites events/env.json from the template and
the created resources instead of serving.

Usage: python scripts/moto_stack.py [--upload FILE=KEY ...] [--write-env-json]
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from segment_importer_local.sam_local import MOTO_URL, SEGMENT_URL, env_json_text, local_aws
from segment_importer_local.template_config import StackTemplate

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--upload", action="append", default=[], metavar="FILE=KEY", help="put a file in the bucket"
    )
    parser.add_argument("--write-env-json", action="store_true", help="write events/env.json and exit")
    parser.add_argument("--received", type=Path, help="where the endpoint writes what it receives (NDJSON)")
    arguments = parser.parse_args(argv)
    with local_aws(StackTemplate.load(ROOT / "template.yaml"), arguments.received) as aws:
        if arguments.write_env_json:
            (ROOT / "events" / "env.json").write_text(env_json_text(aws.stack), encoding="utf-8")
            print("wrote events/env.json")
            return 0
        for upload in arguments.upload:
            path, key = upload.split("=", 1)
            aws.stack.s3.upload_file(path, aws.stack.bucket, key)
        print(f"moto {MOTO_URL}: bucket {aws.stack.bucket}, queues {sorted(aws.stack.queue_urls)}")
        print(f"Segment endpoint {SEGMENT_URL}; Ctrl-C stops both", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
