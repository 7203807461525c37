"""Real export shapes end to end (moto + the embedded Segment endpoint): what the report says
and what Segment receives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson

from segment_importer_local.runner import RunOptions, RunResult, run_import

VENDORS = Path(__file__).resolve().parents[1] / "fixtures" / "vendors"


def received(result: RunResult) -> list[dict]:
    return [orjson.loads(line) for line in Path(result.received_path or "").read_bytes().splitlines()]


def test_a_pretty_printed_capture_batch_arrives_whole(tmp_path: Path) -> None:
    # Read line by line it was a reject per line and the run said OK; now 5 events arrive.
    export = tmp_path / "capture-batch.json"
    shutil.copy(VENDORS / "posthog" / "capture-batch.json", export)
    result = run_import(RunOptions([export], out_dir=tmp_path / "out", show_progress=False))
    assert result.ok
    report = result.files[0].report
    assert (report["format"], report["messages_queued"], report["rejected"]) == ("json_array", 5, 0)
    messages = received(result)
    assert sorted(m["type"] for m in messages) == ["group", "identify", "page", "screen", "track"]
    assert {m["context"]["library"]["name"] for m in messages} == {"segment-importer"}


def test_a_reused_id_column_mapped_to_message_id_never_merges_events(tmp_path: Path) -> None:
    export = tmp_path / "orders.csv"
    export.write_text(
        "order_id,userId,event,timestamp,email,email\n"
        "o-1,u1,Order Placed,2021-03-04T05:06:07Z,a@example.com,b@example.com\n"
        "o-1,u1,Order Shipped,2021-03-05T05:06:07Z,a@example.com,\n"
        "o-1,u1,Order Delivered,2021-03-06T05:06:07Z,,\n"
        "o-1,u1,Order Placed,2021-03-04T05:06:07Z,a@example.com,b@example.com\n"  # the same event again
    )
    job = tmp_path / "job.json"
    # the repeated column is mapped by its position (#6), whatever its header says
    job.write_text(json.dumps({"columns": {"order_id": "messageId", "#6": "traits.work_email"}}))
    result = run_import(RunOptions([export], job_config=job, out_dir=tmp_path / "out", show_progress=False))
    assert result.ok
    report = result.files[0].report
    assert report["messages_queued"] == 4
    assert report["message_id_collisions"] == 2  # Shipped and Delivered reuse Placed's id
    assert any("2 records repeat an earlier record's event id" in warning for warning in report["warnings"])
    assert any("repeats column 'email' (columns 5 and 6)" in warning for warning in report["warnings"])
    messages = received(result)
    assert sorted(m["event"] for m in messages) == ["Order Delivered", "Order Placed", "Order Shipped"]
    placed = next(m for m in messages if m["event"] == "Order Placed")
    assert placed["properties"] == {"email": "a@example.com"}
    assert placed["context"]["traits"] == {"work_email": "b@example.com"}
    assert (result.endpoint_stats or {})["duplicates"] == 1  # the repeated row, deduped by Segment


def test_distinct_events_sharing_an_export_id_all_arrive(tmp_path: Path) -> None:
    # A client that stamps one id per batch (and a re-export of one event) in a Segment archive
    # and a PostHog export: the three distinct events arrived as one (Segment deduped the
    # others away) while the run said OK and counted no collision.
    segment = tmp_path / "archive.ndjson"
    segment.write_text(
        "\n".join(
            json.dumps({"type": "track", "messageId": "m-1", "userId": "u1", "event": event, "timestamp": ts})
            for event, ts in [
                ("Viewed", "2021-03-04T05:06:07Z"),
                ("Clicked", "2021-03-04T05:06:08Z"),
                ("Viewed", "2021-03-04T05:06:07Z"),  # the first event again: deduped, as it should be
                ("Bought", "2021-03-04T05:06:09Z"),
            ]
        )
        + "\n"
    )
    posthog = tmp_path / "posthog.ndjson"
    posthog.write_text(
        "\n".join(
            json.dumps(
                {"uuid": "0186", "event": event, "distinct_id": "d1", "timestamp": ts, "properties": {}}
            )
            for event, ts in [("$pageview", "2021-03-04T05:06:07Z"), ("signed_up", "2021-03-04T05:06:08Z")]
        )
        + "\n"
    )
    result = run_import(RunOptions([segment, posthog], out_dir=tmp_path / "out", show_progress=False))
    assert result.ok
    reports = {Path(f.report["key"]).name: f.report for f in result.files}
    assert reports["archive.ndjson"]["message_id_collisions"] == 2
    assert reports["posthog.ndjson"]["message_id_collisions"] == 1
    assert any("repeat an earlier record's event id" in w for w in reports["archive.ndjson"]["warnings"])
    kept = {m["messageId"]: (m["type"], m.get("event")) for m in received(result)}  # Segment's dedupe
    assert sorted(kept.values(), key=str) == sorted(
        [
            ("track", "Viewed"),
            ("track", "Clicked"),
            ("track", "Bought"),
            ("page", None),
            ("track", "signed_up"),
        ],
        key=str,
    )
    assert (result.endpoint_stats or {})["duplicates"] == 1  # only the true repeat


def test_a_mixpanel_utils_csv_and_the_raw_export_of_the_same_events_arrive_once(tmp_path: Path) -> None:
    # The CSV's events were sent as other messages (insert ids as properties, other ids):
    # importing both exports counted every event twice.
    exports = []
    for name in ("mixpanel-utils-events.csv", "raw-export.json"):
        shutil.copy(VENDORS / "mixpanel" / name, tmp_path / name)
        exports.append(tmp_path / name)
    result = run_import(RunOptions(exports, out_dir=tmp_path / "out", show_progress=False))
    assert result.ok
    assert [file.report["messages_queued"] for file in result.files] == [5, 5]
    # Every event with an `$insert_id` once; the `$create_alias` has none, so its id comes from
    # its record's content, which differs between a CSV row and a JSON line (as for any file).
    assert (result.endpoint_stats or {})["duplicates"] == 4
    assert len({message["messageId"] for message in received(result)}) == 6


def test_overlapping_posthog_exports_in_other_forms_arrive_once(tmp_path: Path) -> None:
    # The events API's CSV export, its JSON, and the same events keyed `uuid`, one row later.
    shutil.copy(VENDORS / "posthog" / "events-api-export.csv", tmp_path / "export.csv")
    shutil.copy(VENDORS / "posthog" / "events-api.ndjson", tmp_path / "api.ndjson")
    lines = (VENDORS / "posthog" / "events-api.ndjson").read_text().splitlines()
    keyed_uuid = [json.dumps({"uuid": json.loads(line).pop("id"), **json.loads(line)}) for line in lines]
    (tmp_path / "table.ndjson").write_text("\n" + "\n".join(keyed_uuid) + "\n")
    files = [tmp_path / name for name in ("export.csv", "api.ndjson", "table.ndjson")]
    result = run_import(RunOptions(files, out_dir=tmp_path / "out", show_progress=False))
    assert result.ok
    assert (result.endpoint_stats or {})["duplicates"] == 6
    assert len({message["messageId"] for message in received(result)}) == 3


def test_a_semicolon_spreadsheet_writes_decimals_with_a_comma(tmp_path: Path) -> None:
    # Excel in a German or French locale saves "CSV" with `;` between cells and `12,50` for
    # 12.5: prices arrived as the text "12,50" (a revenue of 0 in every destination).
    export = tmp_path / "orders.csv"
    export.write_text(
        "userId;event;timestamp;revenue;quantity;note;code\n"
        "u1;Order Completed;2021-03-04T05:06:07Z;12,50;2;mit Sahne, bitte;1.234,5\n"
        "u2;Order Completed;2021-03-04T05:06:08Z;-0,75;1;;007\n"
    )
    plain = tmp_path / "plain.csv"
    plain.write_text('userId,event,timestamp,revenue\nu3,Order Completed,2021-03-04T05:06:09Z,"12,50"\n')
    result = run_import(RunOptions([export, plain], out_dir=tmp_path / "out", show_progress=False))
    assert result.ok
    by_user = {m["userId"]: m["properties"] for m in received(result)}
    assert by_user["u1"] == {"revenue": 12.5, "quantity": 2, "note": "mit Sahne, bitte", "code": "1.234,5"}
    assert by_user["u2"] == {"revenue": -0.75, "quantity": 1, "code": "007"}
    assert by_user["u3"] == {"revenue": "12,50"}  # a comma-separated file: the cell is text


def test_an_id_repeated_with_other_properties_is_warned_of_as_merged(tmp_path: Path) -> None:
    """QA3 Q1: two archive lines with one messageId, event, user and time, other properties.
    They get one messageId (Segment's own dedupe merged them live too) and Segment keeps the
    first; the run used to say nothing of it."""
    line = {
        "type": "track",
        "messageId": "m-1",
        "userId": "u1",
        "event": "Bought",
        "timestamp": "2021-03-04T05:06:07Z",
    }
    export = tmp_path / "seg.ndjson"
    export.write_bytes(
        orjson.dumps({**line, "properties": {"sku": "A"}})
        + b"\n"
        + orjson.dumps({**line, "properties": {"sku": "B"}})
        + b"\n"
    )
    result = run_import(RunOptions([export], out_dir=tmp_path / "out", show_progress=False))
    report = result.files[0].report
    assert (report["message_id_merges"], report["message_id_collisions"]) == (1, 0)
    assert any("Segment keeps only the first" in warning for warning in report["warnings"])
    assert (result.endpoint_stats or {})["duplicates"] == 1
