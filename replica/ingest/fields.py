"""Reading the fields of a JSON export: each value type-checked, or coerced to text where that is the sensible
reading (a number as a name), and epoch times turned into naive local time.

Times: an epoch is converted with `datetime.fromtimestamp` in the IANA zone of `data.timezone` (`--timezone` for
`replica parse/senders`); without one, in the zone named by the `REPLICA_TZ` environment variable, else in the
machine's own zone.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from replica.errors import ReplicaInputError

TZ_ENV = "REPLICA_TZ"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Place:
    """Where a value sits (file, message) and how the user fixes a bad one, for one-line errors."""

    source: str
    where: str  # e.g. "message 12"
    fix: str  # e.g. "export the chat again from Telegram Desktop"

    def error(self, key: str, problem: str) -> ReplicaInputError:
        return ReplicaInputError(f"{self.where}: '{key}' {problem}; {self.fix}", path=self.source)


def type_name(value: Any) -> str:
    """The JSON type of a value, in words (never the value itself: it may be private)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number" if math.isfinite(value) else "not a finite number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "an object"


def valid_text(text: str) -> str:
    """The string with lone surrogates (legal in JSON escapes, not in UTF-8) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def text_field(value: Any, key: str, place: Place) -> str | None:
    """A text field: strings as they are, finite numbers written out, None for null; else one-line error."""
    if value is None:
        return None
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    raise place.error(key, f"is {type_name(value)}, expected text")


def epoch_number(value: Any) -> float | None:
    """A finite epoch number from a number or a numeric string; None for anything else."""
    if isinstance(value, str):
        try:
            value = float(value.strip()) if len(value) < 40 else None
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def from_epoch(seconds: float, zone: tzinfo | None) -> datetime | None:
    """Naive local time of an epoch in seconds; None when it is outside the calendar datetime can hold."""
    try:
        return datetime.fromtimestamp(seconds, zone).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        return None


def local_zone(name: str | None = None) -> tzinfo | None:
    """The zone called `name` (data.timezone), else the one REPLICA_TZ names, else None for the machine's own."""
    setting = "data.timezone" if name else TZ_ENV
    name = name or os.environ.get(TZ_ENV)
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        message = f"{setting}={name!r} is not a known time zone; use an IANA name such as Europe/Rome"
        raise ReplicaInputError(message) from err
