"""Mask personal data with placeholders that stay stable across the whole dataset (same value -> same placeholder).

Masked: phone numbers (libphonenumber, region-aware), emails, URLs, IBANs (mod-97 check), card numbers (13-19
digits, Luhn check) and contacts' names taken from the exports' sender lists: the full name and, for multi-word
names, the first name (>= 3 letters), as whole words, in any case, with or without accents. A first name stands for its
person (same placeholder as the full name) unless several contacts share it. The user's own names are not masked:
they are the voice being cloned, and a contact's first name equal to one of the user's names is left alone too.
The value -> placeholder mapping lives only in memory and is never written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import phonenumbers

from replica.config import MaskSchema as MaskOptions  # one definition of the mask switches
from replica.prepare.identity import display_name, normalize_name, strip_accents

_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\""
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", re.IGNORECASE)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", re.IGNORECASE)
_CARD = re.compile(r"(?<![\w+])\d(?:[ -]?\d){12,18}(?!\w)")
_DIGIT = re.compile(r"\d")
_MIN_PHONE_DIGITS = 7
_MIN_NAME_LETTERS = 3


def iban_is_valid(candidate: str) -> bool:
    """ISO 13616 mod-97 check on an IBAN written with or without spaces."""
    iban = candidate.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34 or not iban.isalnum() or not iban[:2].isalpha() or not iban[2:4].isdigit():
        return False
    return int("".join(str(int(char, 36)) for char in iban[4:] + iban[:4])) % 97 == 1


def luhn_is_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def name_aliases(name: str) -> list[str]:
    """The ways a contact's name is written in text: full name, and first name of a multi-word name (>= 3 letters)."""
    full = display_name(name)
    aliases = [full] if sum(char.isalpha() for char in full) >= _MIN_NAME_LETTERS else []
    words = full.split()
    if len(words) > 1 and sum(char.isalpha() for char in words[0]) >= _MIN_NAME_LETTERS:
        aliases.append(words[0])
    return aliases


class PiiMasker:
    """Replace personal data in texts by `<KIND_n>` placeholders, numbered in order of first appearance."""

    def __init__(
        self,
        contact_names: Iterable[str] = (),
        *,
        own_names: Iterable[str] = (),
        region: str = "IT",
        options: MaskOptions = MaskOptions(),
    ) -> None:
        self.region = region
        self.options = options
        self._placeholders: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self._found: set[str] = set()
        self._cache: dict[str, str] = {}
        self._name_keys, self._name_surfaces = _contact_aliases(contact_names if options.names else (), own_names)
        self._name_pattern = _alternation(self._name_surfaces)
        self._steps: list[Callable[[str], str]] = [
            step
            for enabled, step in (
                (options.urls, self._mask_urls),
                (options.emails, self._mask_emails),
                (options.iban, self._mask_ibans),
                (options.cards, self._mask_cards),
                (options.phones, self._mask_phones),
                (self._name_pattern is not None, self._mask_names),
            )
            if enabled
        ]

    def mask(self, text: str) -> str:
        cached = self._cache.get(text)
        if cached is None:
            cached = text
            for step in self._steps:
                cached = step(cached)
            self._cache[text] = cached
        return cached

    def values(self) -> set[str]:
        """The raw personal values met so far plus every contact name alias (private: keep in memory only)."""
        return self._found | self._name_surfaces

    def _placeholder(self, kind: str, key: str, raw: str) -> str:
        self._found.add(raw)
        placeholder = self._placeholders.get((kind, key))
        if placeholder is None:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            placeholder = self._placeholders[(kind, key)] = f"<{kind}_{self._counts[kind]}>"
        return placeholder

    def _mask_urls(self, text: str) -> str:
        def replace(match: re.Match) -> str:
            url = match.group().rstrip(_URL_TRAILING)
            return self._placeholder("URL", url, url) + match.group()[len(url):]

        return _URL.sub(replace, text) if "://" in text or "www." in text.casefold() else text

    def _mask_emails(self, text: str) -> str:
        if "@" not in text:
            return text
        return _EMAIL.sub(lambda match: self._placeholder("EMAIL", match.group().casefold(), match.group()), text)

    def _mask_ibans(self, text: str) -> str:
        def replace(match: re.Match) -> str:
            candidate = match.group()
            # The pattern may swallow following words ("IT60 ... 456 ok"): drop trailing words until it checks out.
            while candidate and not iban_is_valid(candidate):
                candidate = candidate.rpartition(" ")[0]
            if not candidate:
                return match.group()
            key = candidate.replace(" ", "").upper()
            return self._placeholder("IBAN", key, candidate) + match.group()[len(candidate):]

        return _IBAN.sub(replace, text) if _digit_count(text) >= 13 else text

    def _mask_cards(self, text: str) -> str:
        def replace(match: re.Match) -> str:
            digits = re.sub(r"\D", "", match.group())
            return self._placeholder("CARD", digits, match.group()) if luhn_is_valid(digits) else match.group()

        return _CARD.sub(replace, text) if _digit_count(text) >= 13 else text

    def _mask_phones(self, text: str) -> str:
        if _digit_count(text) < _MIN_PHONE_DIGITS:
            return text
        pieces, end = [], 0
        for match in phonenumbers.PhoneNumberMatcher(text, self.region, leniency=phonenumbers.Leniency.POSSIBLE):
            # A leading "+" is strong evidence on its own (fictional +1 555-01xx numbers are "invalid");
            # numbers written without one must be valid for the region, which keeps amounts and ids unmasked.
            if not (match.raw_string.startswith(("+", "00")) or phonenumbers.is_valid_number(match.number)):
                continue
            key = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            pieces += [text[end:match.start], self._placeholder("PHONE", key, match.raw_string)]
            end = match.end
        return "".join(pieces) + text[end:] if pieces else text

    def _mask_names(self, text: str) -> str:
        def replace(match: re.Match) -> str:
            alias = normalize_name(match.group())
            return self._placeholder("NAME", self._name_keys.get(alias, alias), match.group())

        return self._name_pattern.sub(replace, text)


def _digit_count(text: str) -> int:
    return len(_DIGIT.findall(text)) if _DIGIT.search(text) else 0


def _contact_aliases(contact_names: Iterable[str], own_names: Iterable[str]) -> tuple[dict[str, str], set[str]]:
    """Map each normalized alias to the person it stands for (a first name shared by several contacts is its own
    person) and list the surface forms to search for: as written and without accents."""
    own = {normalize_name(name) for name in own_names}
    own |= {name.split()[0] for name in own if name}
    owners_of: dict[str, set[str]] = {}
    surfaces: set[str] = set()
    for name in contact_names:
        person = normalize_name(name)
        for alias in name_aliases(name):
            key = normalize_name(alias)
            if key not in own:
                owners_of.setdefault(key, set()).add(person)
                surfaces |= {alias, strip_accents(alias)}
    keys = {alias: next(iter(people)) if len(people) == 1 else f"shared:{alias}" for alias, people in owners_of.items()}
    return keys, surfaces


def _alternation(surfaces: set[str]) -> re.Pattern | None:
    """One compiled, longest-first, case-insensitive, whole-word alternation of the names."""
    if not surfaces:
        return None
    ordered = sorted(surfaces, key=lambda alias: (-len(alias), alias))
    body = "|".join(r"\s+".join(re.escape(word) for word in alias.split()) for alias in ordered)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)


def pii_values(
    texts: Iterable[str],
    contact_names: Iterable[str] = (),
    *,
    own_names: Iterable[str] = (),
    region: str = "IT",
    options: MaskOptions = MaskOptions(),
) -> set[str]:
    """The raw personal values in `texts` (for counting leaks in generated text); private, never persist it."""
    masker = PiiMasker(contact_names, own_names=own_names, region=region, options=options)
    for text in texts:
        masker.mask(text)
    return masker.values()
