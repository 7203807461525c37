"""Mistakes in a job file that job.py's checks let through and a run then fails on record by
record: said by `check-job`, and by `run` before anything is sent (both go through
cli_inspect.checked_job_document), each with its key path and a suggestion.

- an unknown key close to a known one (`intergrations`): job.py names it unknown; this says
  which key was meant;
- a `timestampFormat` with a directive strptime does not know (`%Q`) or a stray `%`: every
  record's time would be rejected as invalid_timestamp;
- a column mapped to a Segment field in the wrong case (`userid`, `Timestamp`): the mapper
  treats the name as data, so every record lacks the field (missing_user, missing_timestamp);
- an `integrations` name in the wrong case (`all`, `mixpanel`): Segment's names are
  case-sensitive, so `{"all": false}` leaves `All` true and the history goes to every
  destination, while `mixpanel` names none.

The tables come from the layer (job.py's keys, the mapper's message keys): one source of truth.
"""

from __future__ import annotations

import difflib
import json
from datetime import datetime
from typing import Any

from segment_importer.job import _KEYS as JOB_KEYS  # job.py's table of the keys a job file may set
from segment_importer.mapping.mapper import _PLACED_KEYS  # the message keys the mapper places

_SEGMENT_FIELDS = sorted(set().union(*_PLACED_KEYS.values()))


def job_file_problems(text: str | bytes, origin: str) -> list[str]:
    """The mistakes above in a job file's text (nothing for text that is not a JSON object:
    job.py says what is wrong with that)."""
    try:
        document = json.loads(text or "{}")
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    problems = [
        *_unknown_keys(document),
        *_format_problems(document),
        *_column_problems(document),
        *_integration_problems(document),
    ]
    return [f"{origin}: {problem}" for problem in problems]


def _unknown_keys(document: dict[str, Any]) -> list[str]:
    problems = []
    for key in sorted(set(document) - set(JOB_KEYS)):
        close = difflib.get_close_matches(key, list(JOB_KEYS), n=1, cutoff=0.75)
        if not close:
            close = [known for known in JOB_KEYS if known.lower() == key.lower()]
        if close:
            problems.append(f"{key}: not a job key; did you mean {close[0]!r}?")
    return problems


def _format_problems(document: dict[str, Any]) -> list[str]:
    pattern = document.get("timestampFormat")
    if not isinstance(pattern, str):
        return []  # job.py says what a timestampFormat must be
    try:
        datetime.strptime("", pattern)
    except ValueError as error:
        if "does not match format" in str(error):
            return []  # the format is sound; the empty text just does not fit it
        return [
            f"timestampFormat: {error}: every record's time would be rejected; use strptime's "
            'directives, e.g. "%m/%d/%Y %H:%M" (https://docs.python.org/3/library/datetime.html'
            "#format-codes)"
        ]
    return []


# Segment's catalog names of destinations importers often name (case-sensitive, as Segment
# matches them); a name that differs from one only in case is a mistake, never another one.
_DESTINATION_NAMES = (
    "All", "Mixpanel", "Amplitude", "Actions Amplitude", "Google Analytics", "Braze", "Intercom",
    "HubSpot", "Salesforce", "Customer.io", "Iterable", "Kissmetrics", "Webhooks", "Slack",
    "Facebook Pixel", "FullStory", "Hotjar", "Optimizely", "Vero",
)  # fmt: skip


def _integration_problems(document: dict[str, Any]) -> list[str]:
    problems = []
    for where, name in _integration_names(document):
        known = next((known for known in _DESTINATION_NAMES if known.lower() == name.strip().lower()), None)
        if known is not None and known != name:
            every = " and All stays true: every destination gets the history" if known == "All" else ""
            problems.append(
                f"{where}: Segment's destination names are case-sensitive and exact, so {name!r} "
                f"is no destination{every}; did you mean {known!r}?"
            )
    return problems


def _integration_names(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(key path, destination name) of every name the job gives: in `integrations`, and in a
    `set` of `integrations` or of `integrations.<name>`."""
    names = []
    if isinstance(integrations := document.get("integrations"), dict):
        names += [(f"integrations.{name}", name) for name in integrations]
    shaping = document.get("set")
    if isinstance(shaping, dict):
        if isinstance(settings := shaping.get("integrations"), dict):
            names += [(f"set.integrations.{name}", name) for name in settings]
        names += [
            (f"set.{path}", path.split(".")[1])
            for path in shaping
            if isinstance(path, str) and path.startswith("integrations.")
        ]
    return names


def _shared_targets(columns: dict[str, Any]) -> list[str]:
    """Two columns mapped to one field, or one into the other's: a record with both keeps one
    value and loses the other."""
    by_target: dict[str, list[str]] = {}
    for column, target in columns.items():
        if isinstance(target, str) and target:
            by_target.setdefault(target, []).append(column)
    shared = [
        f"columns: {', '.join(map(repr, names))} are all mapped to {target!r}: a record with more "
        "than one of them would keep one value and lose the others; map each to its own field"
        for target, names in by_target.items()
        if len(names) > 1
    ]
    nested = [
        f"columns: {by_target[outer][0]!r} is mapped to {outer!r} and {by_target[inner][0]!r} into it "
        f"({inner!r}): one would replace the other; map them to fields side by side"
        for outer in by_target
        for inner in by_target
        if inner.startswith(f"{outer}.")
    ]
    # A bare name that is no Segment field is a property (a trait on identify and group): a
    # column mapped to `b` lands where one mapped to `properties.b` does (helper-45's find).
    landing = [
        f"columns: {by_target[bare][0]!r} is mapped to {bare!r}, which is {placed!r} as a "
        f"property or trait, where {by_target[placed][0]!r} is mapped: one would replace the "
        "other; map them to fields side by side"
        for bare in by_target
        if "." not in bare and bare not in _SEGMENT_FIELDS
        for placed in (f"properties.{bare}", f"traits.{bare}")
        if placed in by_target
    ]
    return shared + nested + landing


def _column_problems(document: dict[str, Any]) -> list[str]:
    columns = document.get("columns")
    if not isinstance(columns, dict):
        return []
    problems = _shared_targets(columns)
    for column, target in columns.items():
        if not isinstance(target, str) or not target:
            continue  # job.py says what a target must be
        head, dot, rest = target.partition(".")
        field = next((known for known in _SEGMENT_FIELDS if known.lower() == head.lower()), None)
        if field is not None and field != head:
            meant = field + dot + rest
            problems.append(
                f"columns.{column}: {target!r} is not a Segment field (they are case-sensitive): "
                f"did you mean {meant!r}?"
            )
    return problems
