"""WhatsApp's localized strings, one TOML file per interface language in `replica/ingest/locales/`, merged once.

The parser never knows a file's language up front, so every table is the union over all languages; the parser
compiles one regex or set per kind from it. Each string comes from a real export (see each file's `sources`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from replica.ingest.message import MEDIA_TYPES

LOCALES_DIR = Path(__file__).with_name("locales")

# key -> what it holds (every key but `language`, `sources` and `media_omitted` is a list of strings)
LIST_KEYS = {
    "deleted": "whole text of a deleted message ('This message was deleted')",
    "edited": "the marker appended to an edited message, without its <> ('This message was edited')",
    "file_attached": "the Android suffix word in 'IMG-1.jpg (file attached)', without its ()",
    "attached": "the iOS word in '<attached: 00000012-PHOTO.jpg>', without ':' and <>",
    "location": "prefix of a shared location, without ':' ('location')",
    "poll": "first line of a poll, without ':' ('POLL')",
    "poll_option": "poll answer prefix, without ':' ('OPTION')",
    "system_phrases": "words that mark an Android notice whose quoted part holds ': ' ('changed the subject')",
    "system_notices": "start of a notice that WhatsApp may write in a sender's slot ('Missed voice call')",
    "actor_notices": "iOS notice that follows its actor's name in the text ('~ Ana: ~ Ana created this group')",
    "am": "clock suffix/prefix before noon ('AM', 'a. m.', 'ص', '午前', '오전')",
    "pm": "clock suffix/prefix after noon ('PM', 'p. m.', 'م', '午後', '오후')",
    "time_prefix": "word between date and time ('klo' in '12.3.2021 klo 21.04')",
    "time_suffix": "word after the time that is no AM/PM ('ч.' in '21:04 ч.')",
}
META_KEYS = ("language", "sources")


@dataclass(frozen=True)
class LocaleTables:
    """Every language's strings, merged: media placeholders lowercased, the rest as written."""

    languages: dict[str, str] = field(default_factory=dict)  # file stem -> language name
    media_omitted: dict[str, str] = field(default_factory=dict)  # lowercased whole-line placeholder -> media type
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)  # LIST_KEYS key -> strings, longest first

    def words(self, key: str) -> tuple[str, ...]:
        return self.lists.get(key, ())


def read_locale(path: Path) -> dict:
    """One locale file, checked: only known keys, strings only, known media types. ValueError names the problem."""
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    problems = []
    for key, value in data.items():
        if key == "media_omitted":
            if not isinstance(value, dict) or not all(isinstance(k, str) and v in MEDIA_TYPES for k, v in value.items()):
                problems.append(f"media_omitted must map placeholder strings to one of {', '.join(MEDIA_TYPES)}")
        elif key in LIST_KEYS:
            if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
                problems.append(f"{key} must be a list of non-empty strings")
        elif key == "language":
            if not isinstance(value, str):
                problems.append("language must be a string")
        elif key == "sources":
            if not isinstance(value, list):
                problems.append("sources must be a list")
        else:
            problems.append(f"unknown key {key!r} (known: {', '.join((*META_KEYS, 'media_omitted', *LIST_KEYS))})")
    if "language" not in data:
        problems.append("missing `language`")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return data


@cache
def load_tables(folder: Path = LOCALES_DIR) -> LocaleTables:
    """Merge every `*.toml` in `folder` (read once per process)."""
    languages: dict[str, str] = {}
    media: dict[str, str] = {}
    lists: dict[str, dict[str, None]] = {key: {} for key in LIST_KEYS}
    for path in sorted(folder.glob("*.toml")):
        data = read_locale(path)
        languages[path.stem] = data["language"]
        for placeholder, kind in data.get("media_omitted", {}).items():
            media[placeholder.lower()] = kind
        for key in LIST_KEYS:
            lists[key].update(dict.fromkeys(data.get(key, ())))
    ordered = {key: tuple(sorted(words, key=len, reverse=True)) for key, words in lists.items()}
    return LocaleTables(languages, media, ordered)
