"""The embedded Segment endpoint in a process of its own (so it does not share the GIL).

Protocol: prints one JSON line `{"url": ...}` once serving; on any line on stdin (or its
end) stops and prints `{"stats": ..., "cpu_seconds": ..., "max_rss_mb": ...}` with its own
CPU time (all its threads) and peak memory.
"""

from __future__ import annotations

import json
import logging
import resource
import sys

from bench.common import peak_rss_mb
from segment_importer_local.segment_endpoint import SegmentEndpoint


def main() -> int:
    logging.disable(logging.CRITICAL)
    write_key = sys.argv[1]
    endpoint = SegmentEndpoint(write_key, keep_messages=False).start()  # as the CLI's run keeps it
    print(json.dumps({"url": endpoint.url}), flush=True)
    sys.stdin.readline()
    endpoint.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "stats": endpoint.stats(),
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "max_rss_mb": peak_rss_mb(),
            },
            default=str,
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
