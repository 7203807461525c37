"""An archive's status line: its members' totals and least advanced status (status.py)."""

from __future__ import annotations

from typing import Any

from segment_importer_local.status import with_archive_totals

ZIP = "imports/drop.zip"


def item(key: str, status: str, **counts: Any) -> dict[str, Any]:
    return {"key": key, "status": status, "started_at": "2026-01-01T00:00:00.000Z", **counts}


def archive(status: str = "COMPLETE", members: int = 2) -> dict[str, Any]:
    return item(ZIP, status, members=members, finished_at="2026-01-01T00:00:01.000Z")


def test_members_are_summed_into_the_archive_line_and_keep_their_own() -> None:
    first = item(f"{ZIP}!a.json.gz", "COMPLETE", messages_queued=3, messages_delivered=3)
    first["rejected_by_reason"] = {"x": 1}
    second = item(
        f"{ZIP}!b.json.gz", "COMPLETE_WITH_ERRORS", messages_queued=2, messages_delivered=2, rejected=1
    )
    second["rejected_by_reason"] = {"x": 2}
    members = [first, second]
    other = item("imports/drop.zip.bak", "SENDING", messages_queued=7)
    drop, *rest = with_archive_totals([archive(), *members, other])
    assert rest == [*members, other]
    assert drop["status"] == "COMPLETE_WITH_ERRORS"
    assert (drop["messages_queued"], drop["messages_delivered"], drop["rejected"]) == (5, 5, 1)
    assert drop["rejected_by_reason"] == {"x": 3}


def test_the_least_advanced_member_is_the_drops_status() -> None:
    for statuses, expected in [
        (("COMPLETE", "SENDING"), "SENDING"),
        (("SPLITTING", "FAILED"), "SPLITTING"),
        (("COMPLETE", "FAILED"), "FAILED"),
    ]:
        members = [item(f"{ZIP}!{i}", status) for i, status in enumerate(statuses)]
        (drop, *_) = with_archive_totals([archive(), *members])
        assert drop["status"] == expected, statuses


def test_members_not_yet_listed_keep_the_drop_open() -> None:
    (drop, _) = with_archive_totals([archive(members=2), item(f"{ZIP}!a", "COMPLETE", finished_at="x")])
    assert drop["status"] == "SENDING"
    assert drop["finished_at"] is None


def test_a_file_that_is_not_an_archive_is_left_as_it_is() -> None:
    plain = item("imports/a.ndjson", "SENDING", messages_queued=4)
    assert with_archive_totals([plain]) == [plain]
