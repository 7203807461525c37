"""Source profiles: the shapes real exports come in, rewritten into Segment's spec shape.

One module per vendor exports a `Profile(name, matches, to_spec)`. `PROFILES` is ordered:
detection takes the first profile whose `matches` accepts a record (Segment, matching every
record, comes last), and a job file's `source` is one of their names or "auto". Adding a
vendor (say Heap) is one module and one line here.
"""

from __future__ import annotations

from typing import Any

from segment_importer.mapping.profiles.amplitude import AMPLITUDE
from segment_importer.mapping.profiles.common import Profile, SpecRecord
from segment_importer.mapping.profiles.ga4 import GA4
from segment_importer.mapping.profiles.heap import HEAP
from segment_importer.mapping.profiles.mixpanel import MIXPANEL
from segment_importer.mapping.profiles.posthog import POSTHOG
from segment_importer.mapping.profiles.segment import SEGMENT, SNAKE_CASE_ALIASES
from segment_importer.mapping.profiles.snowplow import SNOWPLOW
from segment_importer.mapping.profiles.spellings import canonical_field

__all__ = [
    "AUTO",
    "FALLBACK",
    "PROFILES",
    "SNAKE_CASE_ALIASES",
    "Profile",
    "SpecRecord",
    "canonical_field",
    "detect_profile",
    "profile_named",
    "profile_names",
]

AUTO = "auto"  # a job's `source` that detects the profile per record

# Detection order: the first match wins; Segment, the fallback, matches every record and
# comes last. PostHog before Mixpanel: both have `event` + `properties`, PostHog's SDKs write
# `$lib` (Mixpanel's `mp_lib`). Amplitude needs `event_type` without `event`, GA4
# `event_name` + `event_timestamp`: neither meets the others. Snowplow (`event_id` with
# `domain_userid` or `collector_tstamp`) before Heap (`event_id`, `session_id`, `time`).
PROFILES: tuple[Profile, ...] = (POSTHOG, MIXPANEL, AMPLITUDE, GA4, SNOWPLOW, HEAP, SEGMENT)
FALLBACK = PROFILES[-1]


def detect_profile(record: dict[str, Any]) -> Profile:
    """The profile a record's shape belongs to (checked per record: cheap key tests)."""
    if "type" in record and "event_id" not in record and PROFILES[-1] is FALLBACK:
        # Most records of most files: a Segment call. No vendor's shape has a `type` key of its
        # own (Heap's tables have one, with an `event_id`): one look-up instead of every matcher.
        return FALLBACK
    for profile in PROFILES:
        if profile.matches(record):
            return profile
    return FALLBACK


def profile_names() -> tuple[str, ...]:
    """The names a job file's `source` may give (besides "auto"): the fallback's first (most
    files are Segment's shape), then the others in the registry's order."""
    return (FALLBACK.name, *(profile.name for profile in PROFILES if profile is not FALLBACK))


def profile_named(name: str) -> Profile:
    """The profile called `name`; KeyError for a name no profile has."""
    for profile in PROFILES:
        if profile.name == name:
            return profile
    raise KeyError(name)
