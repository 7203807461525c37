"""A Segment HTTP API /batch body run as it is: its batch-level `context` and `integrations`
reach Segment in every message, merged as Segment merges them (the message's keys win)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from tests.cli.conftest import no_traceback

BODY = {
    "batch": [
        {
            "type": "identify",
            "userId": "u1",
            "traits": {"name": "Jake"},
            "timestamp": "2012-12-02T00:30:12.984Z",
        },
        {
            "type": "track",
            "userId": "u1",
            "event": "Song Played",
            "timestamp": "2012-12-02T00:30:08.276Z",
            "context": {"ip": "1.2.3.4"},
        },
        {
            "type": "track",
            "userId": "u2",
            "event": "Song Played",
            "timestamp": "2012-12-02T00:30:12.984Z",
            "integrations": {"Mixpanel": True},
        },
    ],
    "context": {"device": {"type": "phone", "name": "Apple iPhone 6"}},
    "integrations": {"All": False, "Amplitude": True},
}


def test_run_of_a_batch_body_sends_its_shared_context_and_integrations(cli, tmp_path: Path) -> None:
    (tmp_path / "batch-body.json").write_bytes(orjson.dumps(BODY))
    done = cli("run", "batch-body.json", "--no-progress")
    no_traceback(done)
    assert done.code == 0, done.both
    run_dir = Path((tmp_path / "out" / "LATEST").read_text().strip())
    lines = [json.loads(line) for line in (run_dir / "received.ndjson").open()]
    received = {message["type"] + message["userId"]: message for message in lines}
    assert len(received) == 3
    for message in received.values():
        assert message["context"]["device"] == {"type": "phone", "name": "Apple iPhone 6"}
    assert received["tracku1"]["context"]["ip"] == "1.2.3.4"
    assert received["identifyu1"]["integrations"] == {"All": False, "Amplitude": True}
    assert received["tracku2"]["integrations"] == {"All": False, "Amplitude": True, "Mixpanel": True}
