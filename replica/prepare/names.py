"""Contact-name tokens and where they occur in a text: case-, accent- and width-insensitive, at word boundaries.

Every letter run of >= 3 letters of a contact's name is a token (first names, surnames, nicknames: "Giovanni
'Gianni' Verdi" gives giovanni, gianni, verdi). Text and names are compared folded (compatibility-decomposed,
casefolded, combining marks dropped), so "Nicolò" matches "Nicolo", "MÜLLER" matches "Muller" and fullwidth letters
match ASCII, in both directions. A token that is also an everyday word of the chat's language
(`data/common_words/<lang>.txt`, see scripts/derive_common_words.py) is masked only where it reads as a name:
capitalized ("Rosa"), all caps, or next to another token of the same contact ("rosa bianchi"); written in lowercase
on its own it is the word ("maglietta rosa"). Without a known language every occurrence is masked.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from replica.prepare.pii_patterns import data_lines

MIN_NAME_LETTERS = 3
_LETTERS = re.compile(r"[^\W\d_]+")
_GAP = re.compile(r"[ \t\u00a0\u202f]+")  # what may separate two tokens of one written name
_COMBINING = dict.fromkeys(cp for cp in range(0x20000) if unicodedata.combining(chr(cp)))  # marks live below U+20000


def fold(text: str) -> str:
    """Compatibility-decomposed, casefolded, without combining marks: "ＮＩＣＯＬÒ" -> "nicolo"."""
    return unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold()).translate(_COMBINING)


@cache
def _fold_char(char: str) -> str:
    return fold(char)


def fold_with_offsets(text: str) -> tuple[str, list[int] | None]:
    """The folded text and, when lengths differ, the index in `text` of every folded character (plus the end)."""
    if text.isascii():
        return text.lower(), None
    pieces: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = _fold_char(char)
        pieces.append(folded)
        origin.extend([index] * len(folded))
    origin.append(len(text))
    return "".join(pieces), origin


def name_tokens(name: str) -> list[str]:
    """The folded letter runs of a name with >= 3 letters: "Zoë Müller-Ré (Zo)" -> ["zoe", "muller"]."""
    return [token for token in _LETTERS.findall(fold(name)) if len(token) >= MIN_NAME_LETTERS]


@cache
def common_words(language: str) -> frozenset[str]:
    """The everyday words of a language (empty when no list ships for it)."""
    try:
        return frozenset(data_lines(f"common_words/{language}.txt"))
    except FileNotFoundError:
        return frozenset()


@cache
def everyday_words(languages: tuple[str, ...]) -> frozenset[str]:
    """The everyday words of any of `languages`."""
    return frozenset().union(*map(common_words, languages))


@dataclass(frozen=True, slots=True)
class NameHit:
    start: int  # span in the original text
    end: int
    key: str  # the person (or shared token) it stands for


class NameIndex:
    """Which contact each name token belongs to; the user's own name tokens are never contact tokens."""

    def __init__(self, contact_names: Iterable[str], own_names: Iterable[str] = ()) -> None:
        own = {token for name in own_names for token in name_tokens(name)}
        self.people: dict[str, set[str]] = {}
        for name in contact_names:
            person = " ".join(name_tokens(name))
            for token in name_tokens(name):
                if token not in own:
                    self.people.setdefault(token, set()).add(person)
        # A quick test run on every message: does any token occur at all? (one C-level scan, no word list)
        alternation = "|".join(map(re.escape, sorted(self.people, key=len, reverse=True)))
        self._probe = re.compile(rf"(?<![^\W\d_])(?:{alternation})(?![^\W\d_])") if self.people else None

    def __bool__(self) -> bool:
        return bool(self.people)

    def surfaces(self) -> set[str]:
        return set(self.people)

    def people_in_order(self, contact_names: Iterable[str]) -> list[str]:
        """The person keys of `contact_names` that have a token here, once each, in the names' order."""
        indexed = set().union(*self.people.values()) if self.people else set()
        keys = (" ".join(name_tokens(name)) for name in contact_names)
        return [key for key in dict.fromkeys(keys) if key in indexed]

    def find(self, text: str, languages: Iterable[str] = ()) -> list[NameHit]:
        """Where contact names are written in `text`; adjacent tokens of one person form one hit."""
        quick = text.lower() if text.isascii() else fold(text)
        if self._probe is None or self._probe.search(quick) is None:
            return []
        folded, origin = fold_with_offsets(text)
        everyday = everyday_words(tuple(languages))
        tokens = [
            (match.start(), match.end(), match.group())
            for match in _LETTERS.finditer(folded)
            if match.group() in self.people and not _inside_placeholder(folded, match.start(), match.end())
        ]
        runs = self._runs(folded, tokens)
        hits = []
        for run in runs:
            people = set.intersection(*(self.people[token] for _, _, token in run))
            if len(run) == 1 and run[0][2] in everyday and not _looks_like_name(text, origin, run[0]):
                continue
            if len(run) > 1 and not people:  # two contacts' names side by side: one hit each
                hits += [self._hit(origin, [part], self.people[part[2]]) for part in run]
                continue
            hits.append(self._hit(origin, run, people))
        return hits

    def _runs(self, folded: str, tokens: list[tuple[int, int, str]]) -> list[list[tuple[int, int, str]]]:
        runs: list[list[tuple[int, int, str]]] = []
        for token in tokens:
            previous = runs[-1][-1] if runs else None
            joined = previous and _GAP.fullmatch(folded, previous[1], token[0])
            if joined and self.people[previous[2]] & self.people[token[2]]:
                runs[-1].append(token)
            else:
                runs.append([token])
        return runs

    @staticmethod
    def _hit(origin: list[int] | None, run: list[tuple[int, int, str]], people: set[str]) -> NameHit:
        start, end = run[0][0], run[-1][1]
        if origin is not None:
            start, end = origin[start], origin[end]
        key = next(iter(people)) if len(people) == 1 else "shared:" + " ".join(token for _, _, token in run)
        return NameHit(start, end, key)


def _looks_like_name(text: str, origin: list[int] | None, token: tuple[int, int, str]) -> bool:
    """Capitalized or all caps as written ("Rosa", "ROSA"), as opposed to the lowercase word ("rosa")."""
    start = origin[token[0]] if origin is not None else token[0]
    return text[start].isupper()


def _inside_placeholder(folded: str, start: int, end: int) -> bool:
    """The KIND of an earlier `<KIND_n>` placeholder ("<PHONE_1>" when a contact is called Phone)."""
    return start > 0 and folded[start - 1] == "<" and folded.startswith("_", end)
