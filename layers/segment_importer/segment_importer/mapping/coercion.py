"""Turning CSV cell strings into JSON values where the meaning is unambiguous.

CSV has only strings. Inside `properties` and `traits` a cell becomes:
- `true`/`false` (any case) -> a boolean;
- an integer written canonically (`0`, `42`, `-7`; no leading zeros, no `+`, within +-2**53)
  -> an integer; `007` and `02134` (codes, zip codes) stay strings;
- a decimal written canonically (`3.5`, `-0.25`; digits on both sides of one dot, no
  exponent) -> a float;
- a cell that starts with `{` or `[` and parses as JSON -> that object or array.
Everything else stays a string. Ids (`userId`, `anonymousId`, `groupId`, `previousId`) and
other top-level fields are never coerced.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_INTEGER = re.compile(r"-?(?:0|[1-9]\d{0,15})")
_DECIMAL = re.compile(r"-?(?:0|[1-9]\d*)\.\d+")
# A decimal written with a comma (`12,50`), as spreadsheets in comma-decimal locales write it;
# no thousands separators (`1.234,50` stays text: it could be two numbers).
_DECIMAL_COMMA = re.compile(r"-?(?:0|[1-9]\d*),\d+")
_MAX_SAFE_INTEGER = 2**53
_BOOLEANS = {"true": True, "false": False}
_BOOLEAN_INITIALS = frozenset("tTfF")
_BOOLEAN_LENGTHS = frozenset({4, 5})
_JSON_INITIALS = frozenset("{[")


def coerce_cell(text: str) -> Any:
    """The JSON value a CSV cell stands for (see the module docstring).

    Most cells are plain text: the first character rules out every other reading before
    any lower-casing or regular expression runs. `\\d` in the patterns matches any script's
    decimal digits, so the digit test is `str.isdigit` (a superset), not an ASCII range.
    """
    first = text[:1]
    if first in _BOOLEAN_INITIALS and len(text) in _BOOLEAN_LENGTHS:
        lowered = text.lower()
        if lowered in _BOOLEANS:
            return _BOOLEANS[lowered]
    elif first == "-" or first.isdigit():
        if _INTEGER.fullmatch(text):
            number = int(text)
            return number if abs(number) <= _MAX_SAFE_INTEGER else text
        if _DECIMAL.fullmatch(text):
            return float(text)
    elif first in _JSON_INITIALS:  # not "" (in every string): an empty cell stays ""
        return parse_embedded_json(text, fallback=text)
    return text


# First characters after which coerce_cell always returns the text itself: ASCII, and not
# t/T/f/F (booleans), '-' or a digit (numbers), '{' or '[' (JSON). Any other character
# (a digit of another script among them) goes through coerce_cell.
_PLAIN_INITIALS = frozenset(chr(code) for code in range(128)) - frozenset("tTfF-0123456789{[")


def coerce_text(cell: Any) -> Any:
    """coerce_cell for a cell of any type (non-text values are kept as they are), with the
    commonest case, plain text, decided by one set look-up of its first character."""
    if not isinstance(cell, str) or cell[:1] in _PLAIN_INITIALS:
        return cell
    return coerce_cell(cell)


def coerce_cell_decimal_comma(text: str) -> Any:
    """coerce_cell, and a comma-decimal cell (`12,50`) is the number 12.5: for the CSV files
    of locales that write decimals with a comma, whose spreadsheets separate cells with `;`."""
    value = coerce_cell(text)
    if value is text and text[:2].lstrip("-")[:1].isdigit() and _DECIMAL_COMMA.fullmatch(text):
        return float(text.replace(",", ".", 1))
    return value


def coerce_text_decimal_comma(cell: Any) -> Any:
    """coerce_text with coerce_cell_decimal_comma."""
    if not isinstance(cell, str) or cell[:1] in _PLAIN_INITIALS:
        return cell
    return coerce_cell_decimal_comma(cell)


def parse_embedded_json(text: str, fallback: Any) -> Any:
    """JSON stored in a cell (warehouse exports keep objects as JSON text)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return fallback
