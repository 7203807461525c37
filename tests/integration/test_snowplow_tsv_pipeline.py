"""Snowplow enriched TSV through the whole local pipeline (moto + the embedded Segment
endpoint): a gzipped headerless file with no extension arrives as Segment calls; split in
parts and in byte ranges, every part reads on as Snowplow TSV (the format is carried, never
re-detected from a line in the middle of the file)."""

from __future__ import annotations

import gzip
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest

from segment_importer.mapping.profiles.snowplow import PAGE_PING_RULE
from segment_importer.read.snowplow_tsv import FIELDS
from segment_importer.track import reasons
from segment_importer_local.runner import RunOptions, RunResult, run_import
from segment_importer_local.verdict import of_run

from .test_continuation import all_rejected_numbers

SDK_LINE = Path(__file__).resolve().parents[1] / "fixtures" / "vendors" / "snowplow" / "sdk" / "page-view.tsv"
NAMES = [name for name, _ in FIELDS]
BASE = dict(zip(NAMES, SDK_LINE.read_text().rstrip("\n").split("\t"), strict=True))


def event_id(number: int) -> str:
    return str(uuid.UUID(int=number))


def enriched_line(number: int, event: str = "struct") -> str:
    """A structured event (the SDK's test event made a struct one) whose se_value is its line."""
    fields = dict(BASE, event=event, event_id=event_id(number), contexts="", unstruct_event="")
    fields.update(se_category="video", se_action="play", se_label="intro", se_value=str(number))
    fields.update(user_id=f"user-{number % 50}", event_name="event", event_vendor="com.google.analytics")
    return "\t".join(fields[name] for name in NAMES)


def write_enriched(
    path: Path, count: int, *, gzip_it: bool = False, truncated: frozenset[int] = frozenset()
) -> tuple[set[int], dict[int, str]]:
    """Lines numbered from 1; every 97th a page_ping (left out, counted), every 211th and those
    in `truncated` cut to a few fields. Returns the valid line numbers and each reject's
    expected reason."""
    valid, rejected, lines = set(), {}, []
    for number in range(1, count + 1):
        if number % 211 == 0 or number in truncated:
            lines.append("\t".join(enriched_line(number).split("\t")[:5]))
            rejected[number] = reasons.SNOWPLOW_FIELD_COUNT
        elif number % 97 == 0:
            lines.append(enriched_line(number, event="page_ping"))
        else:
            lines.append(enriched_line(number))
            valid.add(number)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gzip_it else data)
    return valid, rejected


def received(result: RunResult) -> list[dict]:
    assert result.received_path
    return [orjson.loads(line) for line in Path(result.received_path).read_bytes().splitlines()]


def values(messages: list[dict]) -> Counter[int]:
    return Counter(int(message["properties"]["value"]) for message in messages)


def run(export: Path, out: Path, overrides: dict[str, str] | None = None) -> RunResult:
    options = RunOptions([export], out_dir=out, show_progress=False, parameter_overrides=overrides or {})
    return run_import(options)


def test_a_gzipped_headerless_enriched_file_with_no_extension_arrives_as_segment_calls(
    tmp_path: Path,
) -> None:
    export = tmp_path / "part-00000"  # as the enriched bucket holds it: no extension, gzip inside
    valid, rejected = write_enriched(export, 450, gzip_it=True)
    result = run(export, tmp_path / "out")

    messages = received(result)
    assert values(messages) == Counter(valid)
    report = result.files[0].report
    assert (report["format"], report["compression"]) == ("snowplow_tsv", "gzip")
    assert report["records_read"] == 450
    assert report["rejected_by_reason"] == dict(Counter(rejected.values()))
    pings = 450 // 97 - sum(1 for n in range(97, 451, 97) if n % 211 == 0)
    assert (report["filtered"], report["filtered_by"]) == (pings, {PAGE_PING_RULE: pings})
    assert len(valid) + len(rejected) + pings == 450  # every line accounted for
    # said as what they are, not as the job's filters (the job has none)
    headline = of_run(result, dry_run=False).headline
    assert f"left out: {pings} Snowplow page_ping (activity heartbeats" in headline
    assert "job's filters" not in headline
    assert sorted(all_rejected_numbers(result)) == sorted(rejected)

    first = next(message for message in messages if message["properties"]["value"] == 1)
    assert (first["type"], first["event"]) == ("track", "play")
    assert (first["userId"], first["anonymousId"]) == ("user-1", "bc2e92ec6c204a14")
    assert first["properties"] == {"category": "video", "label": "intro", "value": 1.0} | {
        "contexts_com_snowplowanalytics_snowplow_ua_parser_context_1": first["properties"][
            "contexts_com_snowplowanalytics_snowplow_ua_parser_context_1"
        ]
    }
    assert first["timestamp"] == "2013-11-26T00:03:57.886Z"  # derived_tstamp
    assert first["context"]["ip"] == "92.231.54.234"
    assert first["context"]["page"]["url"] == "http://www.snowplowanalytics.com"
    assert first["context"]["sourceLibrary"] == {"name": "cloudfront-1", "version": "js-2.1.0"}
    assert len({message["messageId"] for message in messages}) == len(valid)


@pytest.mark.parametrize("gzip_it", [False, True], ids=["plain", "gzip"])
def test_a_file_continued_in_parts_reads_on_as_snowplow_tsv(tmp_path: Path, gzip_it: bool) -> None:
    """Parts of 97 records: parts 2 and 3 start on a cut line, which detection would not take
    for an enriched event (it was read as CSV and the part refused)."""
    export = tmp_path / "events"
    valid, rejected = write_enriched(export, 400, gzip_it=gzip_it, truncated=frozenset({98, 195}))
    result = run(export, tmp_path / "out", {"SplitRecordsPerPart": "97", "BatchMaxMessages": "40"})

    got = values(received(result))
    assert got == Counter(valid), "a record was lost or queued twice across parts"
    ledger = result.files[0].ledger or {}
    assert ledger["split_part"] == 400 // 97
    assert ledger["records_read"] == 400
    assert ledger["rejected"] == len(rejected)
    assert len(valid) + len(rejected) + 400 // 97 == 400  # the page pings, left out
    assert sorted(all_rejected_numbers(result)) == sorted(rejected)
    assert result.files[0].report["format"] == "snowplow_tsv"


def test_a_file_split_in_byte_ranges_arrives_as_the_sequential_split_sends_it(tmp_path: Path) -> None:
    export = tmp_path / "events"
    valid, rejected = write_enriched(export, 300)
    assert export.stat().st_size > 10 * 8192
    spans = run(export, tmp_path / "spans", {"ParallelSplitBytes": "8192", "BatchMaxMessages": "40"})
    sequential = run(export, tmp_path / "seq", {"ParallelSplitBytes": "0", "BatchMaxMessages": "40"})

    in_spans = received(spans)
    assert values(in_spans) == Counter(valid)
    ids = Counter((m["messageId"], m["properties"]["value"]) for m in in_spans)
    assert ids == Counter((m["messageId"], m["properties"]["value"]) for m in received(sequential))
    assert sorted(all_rejected_numbers(spans)) == sorted(all_rejected_numbers(sequential)) == sorted(rejected)
    ledger = spans.files[0].ledger or {}
    assert ledger["split_mode"] == "spans"
    assert ledger["span_count"] == ledger["spans_done"] > 10
    assert ledger["records_read"] == 300
