"""A warehouse dumped to one folder, run as it is (QA vendor finding 17)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import write_csv

_TRACKS_COLUMNS = "id,received_at,uuid_ts,event,event_text,user_id,anonymous_id,context_ip,timestamp"
_ROW = "ajs-vp-1,2021-01-31 00:00:05.500,2021-01-31 00:05:00,video_played,Video Played,u-9,anon-1,8.8.8.8"


def test_a_per_event_tables_row_wins_over_the_tracks_row_of_the_same_call(cli, tmp_path: Path) -> None:
    """`tracks.csv` sorts before `video_played.csv`: its property-less row took the shared
    messageId, Segment dropped the per-event row as a duplicate, and video_id never arrived."""
    write_csv(tmp_path / "wh" / "tracks.csv", _TRACKS_COLUMNS, [f"{_ROW},2021-01-31 00:00:05.423"])
    write_csv(
        tmp_path / "wh" / "video_played.csv",
        f"{_TRACKS_COLUMNS},video_id,position_sec",
        [f"{_ROW},2021-01-31 00:00:05.423,v-77,42"],
    )

    done = cli("run", "wh", "--no-progress")

    assert done.code == 0, done.both
    run_dir = Path((tmp_path / "out" / "LATEST").read_text().strip())
    messages = [json.loads(line) for line in (run_dir / "received.ndjson").read_text().splitlines()]
    assert len(messages) == 1  # one event: the tracks row is the duplicate
    assert messages[0]["event"] == "Video Played"
    assert messages[0]["properties"] == {"video_id": "v-77", "position_sec": 42}
    assert "no event properties" in " ".join(done.both.split())  # the tracks file's report warns
