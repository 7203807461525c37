"""An import's report as one self-contained HTML page: inline CSS and SVG, no script and no
external asset (its Content-Security-Policy forbids fetching anything), so it opens offline
and can be mailed.

Two sources, one page: a preview document (`segment-importer preview --html`: events over
time, top events, call types, reject reasons, filters, field coverage, sample messages),
and an import's final report (written beside its JSON report under `reports/` when the
import completes: the same counts, reject reasons and filters, with the delivery figures).
Every text from the data (event names, field names, messages) is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

import orjson

from segment_importer.settings import Prefixes
from segment_importer.track.report import derived_key

PAGE_SUFFIX = ".report.html"
TOP_EVENTS = 15
TOP_FIELDS = 40
_BAR_ROW = 22
_LABEL_WIDTH = 230
_CHART_WIDTH = 720
_MONTH_CHART_HEIGHT = 180
_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:980px;
color:#1b1f24;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #d0d7de}
.sub{color:#57606a}.figures{display:flex;flex-wrap:wrap;gap:.8em;margin:1.2em 0}
.figure{border:1px solid #d0d7de;border-radius:6px;padding:.5em .9em;min-width:7em}
.figure b{display:block;font-size:1.35em}.figure span{color:#57606a;font-size:.85em}
.bar{fill:#0969da}.bar.bad{fill:#cf222e}.bar.muted{fill:#8c959f}svg text{font-size:12px;fill:#1b1f24}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eaeef2;padding:.25em .5em;
text-align:left;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.7em;overflow-x:auto;font-size:12px}
.none{color:#57606a;font-style:italic}
"""
_FILTERED = "Filtered, by rule (valid, not sent)"
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def preview_page(document: dict[str, Any]) -> str:
    """The page of a preview document (see segment_importer_local.preview)."""
    names = ", ".join(entry["file"] for entry in document.get("files", []))
    figures = [
        ("records", document["records"]),
        ("valid", document["valid"]),
        ("rejected", document["rejected"]),
        ("filtered", document["filtered"]),
        ("would send", document["would_send"]),
        *_user_figures(document.get("distinct_users") or {}),
    ]
    by_reason = {reason: entry["count"] for reason, entry in document["by_reason"].items()}
    sections = [
        _time_range(document),
        _section("Events over time (messages per month)", _month_chart(document.get("by_month") or {})),
        _section(f"Top events (of {len(document.get('by_event') or {}):,})", _top_events(document)),
        _section("Call types", _bars("by_type", document.get("by_type") or {})),
        _section("Reject reasons", _bars("by_reason", by_reason, tone="bad")),
        _section(_FILTERED, _bars("filtered_by", document["filtered_by"], "muted")),
        _section("Property coverage", _coverage(document, "properties")),
        _section("Trait coverage", _coverage(document, "traits")),
        _section("Sample messages, as they would be sent", _samples(document.get("samples") or [])),
    ]
    return _page("Import preview", f"Nothing was sent. Files: {names}", figures, sections)


def import_page(report: dict[str, Any]) -> str:
    """The page of an import's final report (track/completion.py's document)."""
    figures = [
        ("records read", report.get("records_read")),
        ("queued", report.get("messages_queued")),
        ("rejected", report.get("rejected")),
        ("filtered", report.get("filtered")),
        ("delivered", report.get("messages_delivered")),
        ("refused by Segment", report.get("messages_refused")),
        ("failed (dead-lettered)", report.get("messages_failed")),
    ]
    sections = [
        _section("Reject reasons", _bars("by_reason", report.get("rejected_by_reason") or {}, tone="bad")),
        _section(_FILTERED, _bars("filtered_by", report.get("filtered_by") or {}, "muted")),
        _section("Delivery", _delivery_table(report)),
    ]
    subtitle = f"{report.get('status', '')}: s3://{report.get('bucket', '')}/{report.get('key', '')}"
    return _page("Import report", subtitle, figures, sections)


def page_key(prefixes: Prefixes, key: str) -> str:
    """`imports/a/b.csv` -> `reports/a/b.csv.report.html`, beside `b.csv.report.json`."""
    return derived_key(prefixes.reports, key, prefixes.imports, PAGE_SUFFIX)


def publish_report_page(s3: Any, bucket: str, prefixes: Prefixes, report: dict[str, Any]) -> str:
    """Write the import's page beside its JSON report; returns the page's key."""
    key = page_key(prefixes, report["key"])
    body = import_page(report).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/html; charset=utf-8")
    return key


# --- building blocks ----------------------------------------------------------------------------


def _page(title: str, subtitle: str, figures: list[tuple[str, Any]], sections: list[str]) -> str:
    cards = "".join(
        f'<div class="figure"><b>{_number(value)}</b><span>{escape(label)}</span></div>'
        for label, value in figures
        if value is not None
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'  # or browsers fetch /favicon.ico beside the page
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>{escape(title)}</h1><p class="sub">{escape(subtitle)}</p>'
        f'<div class="figures">{cards}</div>{"".join(sections)}</body></html>\n'
    )


def _section(title: str, body: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{body}</section>"


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def _user_figures(distinct: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    for name in ("userId", "anonymousId"):
        found = distinct.get(name)
        if found:
            approximate = "" if found["exact"] else f" (about, ±{found['relative_standard_error']:.1%})"
            yield (f"distinct {name}{approximate}", found["count"])


def _time_range(document: dict[str, Any]) -> str:
    first, last = document.get("first_timestamp"), document.get("last_timestamp")
    if not first:
        return '<p class="none">No message carries a timestamp.</p>'
    untimed = document.get("without_timestamp") or 0
    extra = f"; {untimed:,} messages without a timestamp" if untimed else ""
    return f'<p class="sub">Event times from {escape(first)} to {escape(last)} (UTC){escape(extra)}.</p>'


def _bars(name: str, counts: dict[str, int], tone: str = "") -> str:
    """A horizontal bar chart: one `rect.bar` per entry, largest first."""
    if not counts:
        return '<p class="none">None.</p>'
    items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    top = max(count for _, count in items) or 1
    room = _CHART_WIDTH - _LABEL_WIDTH - 90
    rows = []
    for index, (label, count) in enumerate(items):
        y = index * _BAR_ROW
        width = max(1, round(room * count / top))
        shown = label if len(label) <= 34 else label[:33] + "…"
        rows.append(
            f'<text x="{_LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">{escape(shown)}</text>'
            f'<rect class="bar {tone}" x="{_LABEL_WIDTH}" y="{y + 3}" width="{width}" '
            f'height="{_BAR_ROW - 6}">'
            f"<title>{escape(label)}: {count:,}</title></rect>"
            f'<text x="{_LABEL_WIDTH + width + 6}" y="{y + 15}">{count:,}</text>'
        )
    height = len(items) * _BAR_ROW
    return (
        f'<svg class="chart" data-chart="{name}" role="img" width="{_CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_CHART_WIDTH} {height}">{"".join(rows)}</svg>'
    )


def _month_chart(by_month: dict[str, int]) -> str:
    """Vertical bars, one per month that has messages, in time order."""
    if not by_month:
        return '<p class="none">No timestamps.</p>'
    months = sorted(by_month)
    step = max(4, min(40, (_CHART_WIDTH - 60) // len(months)))
    width, top = max(_CHART_WIDTH, 60 + step * len(months)), max(by_month.values()) or 1
    label_every = -(-64 // step)  # a label per 64 px at most: "2023-03" is about 50 px wide
    parts = [f'<text x="0" y="12">{top:,}</text>']
    for index, month in enumerate(months):
        count = by_month[month]
        height = max(1, round((_MONTH_CHART_HEIGHT - 20) * count / top))
        x = 50 + index * step
        parts.append(
            f'<rect class="bar" x="{x}" y="{_MONTH_CHART_HEIGHT - height}" width="{max(2, step - 2)}" '
            f'height="{height}"><title>{escape(month)}: {count:,}</title></rect>'
        )
        if index % label_every == 0:
            parts.append(f'<text x="{x}" y="{_MONTH_CHART_HEIGHT + 16}">{escape(month)}</text>')
    total_height = _MONTH_CHART_HEIGHT + 24
    return (
        f'<svg class="chart" data-chart="by_month" role="img" width="{width}" height="{total_height}" '
        f'viewBox="0 0 {width} {total_height}">{"".join(parts)}</svg>'
    )


def _top_events(document: dict[str, Any]) -> str:
    events = document.get("by_event") or {}
    top = dict(sorted(events.items(), key=lambda item: (-item[1], item[0]))[:TOP_EVENTS])
    return _bars("by_event", top)


def _coverage(document: dict[str, Any], kind: str) -> str:
    coverage = (document.get("coverage") or {}).get(kind) or {}
    fields = coverage.get("fields") or {}
    if not fields:
        return '<p class="none">None.</p>'
    rows = "".join(
        f'<tr><td>{escape(name)}</td><td class="n">{entry["share"]:.1%}</td>'
        f'<td class="n">{entry["messages"]:,}</td><td>{escape(", ".join(entry["types"]))}</td></tr>'
        for name, entry in list(fields.items())[:TOP_FIELDS]
    )
    more = (
        f'<p class="sub">{len(fields) - TOP_FIELDS:,} more in the JSON.</p>'
        if len(fields) > TOP_FIELDS
        else ""
    )
    return (
        f'<p class="sub">Share of the {coverage["messages"]:,} messages that carry {escape(kind)}.</p>'
        f"<table><tr><th>name</th><th>share</th><th>messages</th><th>types</th></tr>{rows}</table>{more}"
    )


def _samples(samples: list[dict[str, Any]]) -> str:
    if not samples:
        return '<p class="none">None.</p>'
    return "".join(
        f'<pre class="sample">{escape(orjson.dumps(message, option=orjson.OPT_INDENT_2).decode())}</pre>'
        for message in samples
    )


def _delivery_table(report: dict[str, Any]) -> str:
    names = (
        "batches_queued", "batches_delivered", "messages_delivered", "messages_refused", "batches_failed",
        "messages_failed", "first_error", "last_error", "started_at", "split_finished_at", "finished_at",
    )  # fmt: skip
    rows = "".join(
        f'<tr><td>{escape(name)}</td><td class="n">{_number(report[name])}</td></tr>'
        for name in names
        if report.get(name) is not None
    )
    return f"<table>{rows}</table>"
