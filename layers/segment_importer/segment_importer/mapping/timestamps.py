"""Event times: parse what real exports contain, emit timezone-aware UTC ISO 8601.

Accepted: ISO 8601 with any offset or `Z` (also with a space for `T`, as warehouse and
Amplitude exports write it), epoch seconds and epoch milliseconds (numbers or digit
strings). A time without an offset is read as UTC: exports are written in UTC far more
often than in the exporter's local zone, and guessing the local zone (as the Segment library
does for naive datetimes) would shift events by hours.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

# Epoch values at or above this are milliseconds (1e11 s is the year 5138).
_EPOCH_MILLIS_THRESHOLD = 100_000_000_000
# At or above this they are microseconds; some warehouse exports use them.
_EPOCH_MICROS_THRESHOLD = 100_000_000_000_000


_SPACED_OFFSET = re.compile(r" ([+-]\d{2}:?\d{2})$")
# Segment's own form, which most exports already use: ASCII digits only (`\d` would also
# match other scripts' digits). A string in this form that parses is its own normal form.
_SEGMENT_FORM = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_SEGMENT_FORM_LENGTH = 24
_fromisoformat = datetime.fromisoformat


class TimestampError(ValueError):
    """The value cannot be read as an event time."""


def parse_timestamp(value: Any) -> datetime:
    """Parse an event time into an aware UTC datetime, or raise TimestampError."""
    if isinstance(value, bool):
        raise TimestampError("a boolean is not a time")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError as error:  # an int too large for a float
            raise TimestampError("epoch value out of range") from error
        return _from_epoch(number)
    if isinstance(value, str):
        text = value.strip()
        if _looks_numeric(text):
            return _from_epoch(float(text))
        return _from_iso(text)
    raise TimestampError(f"unsupported time value of type {type(value).__name__}")


def parse_iso_timestamp(value: Any) -> datetime:
    """An ISO 8601 time only, never an epoch number (what a job writes itself), or TimestampError."""
    if not isinstance(value, str) or _looks_numeric(value.strip()):
        raise TimestampError("not an ISO 8601 time")
    return _from_iso(value.strip())


def parse_with_format(text: str, time_format: str) -> datetime:
    """A time in the job's `timestampFormat` (strptime syntax); without an offset, UTC."""
    try:
        moment = datetime.strptime(text.strip(), time_format)  # naive: made UTC below
    except ValueError as error:
        raise TimestampError(f"does not match timestampFormat {time_format!r}") from error
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_timestamp(moment: datetime) -> str:
    """Segment's preferred form: UTC with millisecond precision and a `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalize_timestamp(value: Any) -> str:
    """Parse then format: the one call the mapper needs.

    Fast path (the common case, and the same result): a string already in Segment's form
    (`2021-03-04T05:06:07.123Z`) that parses is returned as it is, skipping the timezone
    conversion and formatting. The hour is checked too, in case a later Python reads
    `24:00` as the next day's midnight.
    """
    if (
        type(value) is str
        and len(value) == _SEGMENT_FORM_LENGTH
        and _SEGMENT_FORM.fullmatch(value)
        and value[11:13] < "24"
    ):
        try:
            _fromisoformat(value)
        except ValueError:
            pass  # e.g. February 30th: the full path raises the proper error
        else:
            return value
    return format_timestamp(parse_timestamp(value))


def _looks_numeric(text: str) -> bool:
    # ASCII only: str.isdigit() is also true for "¹" or "٣", which float() refuses.
    body = text[1:] if text[:1] == "-" else text
    return body.isascii() and body.replace(".", "", 1).isdigit()


def _from_epoch(number: float) -> datetime:
    magnitude = abs(number)
    if magnitude >= _EPOCH_MICROS_THRESHOLD:
        number /= 1_000_000
    elif magnitude >= _EPOCH_MILLIS_THRESHOLD:
        number /= 1000
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise TimestampError("epoch value out of range") from error


def _from_iso(text: str, zone: tzinfo = UTC) -> datetime:
    if not text:
        raise TimestampError("empty time")
    try:
        moment = datetime.fromisoformat(_normalize_iso(text))
    except ValueError as error:
        raise TimestampError("not an ISO 8601 time") from error
    if moment.tzinfo is None:
        return moment.replace(tzinfo=zone).astimezone(UTC)
    return moment.astimezone(UTC)


# Event times outside this range are misread values (an Excel serial day number such as
# 44259.4 read as epoch seconds is 1970-01-01T12:17; a 0 is the epoch itself), not history.
DEFAULT_PLAUSIBLE_RANGE = ("1990-01-01T00:00:00+00:00", "2100-01-01T00:00:00+00:00")


class ImplausibleTimestampError(TimestampError):
    """A time that parses but lies outside the plausible range."""


class TimeReader:
    """Event times as a job reads them: its `timezone` for times without an offset, its
    `timestampFormat` (strptime) for dates that are not ISO 8601 or epoch numbers, and its
    `timestampRange` of plausible times (DEFAULT_PLAUSIBLE_RANGE unless the job widens it)."""

    __slots__ = ("_earliest", "_format", "_latest", "_plain", "_zone", "excel_day_numbers")

    def __init__(
        self, timezone: str = "UTC", timestamp_format: str | None = None, plausible: Any = None
    ) -> None:
        self._zone: tzinfo = UTC if timezone == "UTC" else ZoneInfo(timezone)
        self._format = timestamp_format
        earliest, latest = plausible or DEFAULT_PLAUSIBLE_RANGE
        self._earliest = format_timestamp(_from_iso(earliest))
        self._latest = format_timestamp(_from_iso(latest))
        # From here to _latest a time needs no second look (one comparison, the hot path).
        self._plain = max(self._earliest, _EXCEL_DAYS_AS_EPOCH_END)
        # Times taken that are Excel day numbers read as epoch seconds (1970-01-01): a range
        # widened to 1970 takes them; the caller warns of them.
        self.excel_day_numbers = 0

    def normalize(self, value: Any) -> str:
        """Segment's form of `value`, or TimestampError (ImplausibleTimestampError when it
        parses to a time outside the plausible range; an Excel day number is named as one)."""
        try:
            if self._zone is UTC and self._format is None:
                text = normalize_timestamp(value)
            else:
                text = format_timestamp(self._parse(value))
        except TimestampError as error:
            days = _excel_day_number_with_comma(value)
            if days is None:
                raise
            raise TimestampError(_excel_hint(days)) from error
        # Segment's form sorts as time does (years 0001-9999): the range check is a string
        # comparison, not a second parse.
        if self._plain <= text <= self._latest:
            return text
        if not self._earliest <= text <= self._latest:
            raise ImplausibleTimestampError(_implausible(value, self._earliest, self._latest))
        if _excel_day_number(value) is not None:  # before 1970-01-02, and the range takes it
            self.excel_day_numbers += 1  # warned of by the caller
        return text

    def _parse(self, value: Any) -> datetime:
        if isinstance(value, str) and self._format is not None:
            try:
                moment = datetime.strptime(value.strip(), self._format)
            except ValueError:
                pass  # not in the job's format: perhaps ISO or epoch
            else:
                return moment.replace(tzinfo=self._zone) if moment.tzinfo is None else moment.astimezone(UTC)
        if isinstance(value, str) and not _looks_numeric(value.strip()):
            return _from_iso(value.strip(), self._zone)
        return parse_timestamp(value)


# Excel's day numbers (days since 1899-12-30) for 1954 to 2119: read as epoch seconds they
# are moments of 1970-01-01, so a spreadsheet's unformatted date column lands here.
_EXCEL_DAYS = (20_000, 80_000)
_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)


# Read as epoch seconds, every Excel day number of _EXCEL_DAYS is a moment before this.
_EXCEL_DAYS_AS_EPOCH_END = "1970-01-02"
# A day number written with a decimal comma (`44261,3958`), as spreadsheets of `;` locales do.
_EXCEL_DAYS_WITH_COMMA = re.compile(r"\s*[0-9]{5},[0-9]+\s*")


def _excel_hint(days: float) -> str:
    moment = format_timestamp(_EXCEL_EPOCH + timedelta(seconds=round(days * 86_400)))
    return (
        f"the time looks like an Excel day number ({days:g} is {moment}): format the column as "
        "a date (or ISO 8601 text) in the spreadsheet and export it again"
    )


def _implausible(value: Any, earliest: str, latest: str) -> str:
    days = _excel_day_number(value)
    if days is not None:
        return _excel_hint(days)
    return (
        f"the time is outside the plausible range {earliest[:10]} to {latest[:10]}"
        " (set timestampRange to import it)"
    )


def _excel_day_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        days = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    return days if _EXCEL_DAYS[0] <= days < _EXCEL_DAYS[1] else None


def _excel_day_number_with_comma(value: Any) -> float | None:
    if not isinstance(value, str) or not _EXCEL_DAYS_WITH_COMMA.fullmatch(value):
        return None
    return _excel_day_number(value.replace(",", "."))


def _normalize_iso(text: str) -> str:
    # Python 3.11's fromisoformat reads `Z`; ` UTC`, lower-case `z` and the space Snowflake
    # and Redshift put before an offset (`05:06:07.123 +0000`) still need help.
    if text.endswith((" UTC", " utc")):
        return text[:-4] + "+00:00"
    if text.endswith("z"):
        return text[:-1] + "Z"
    return _SPACED_OFFSET.sub(r"\1", text)
