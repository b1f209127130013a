"""Mask personal data with placeholders that stay stable across the whole dataset (same value -> same placeholder).

Masked, in this order: URLs of any scheme, e-mails (also `luca(at)example(dot)com` and `luca at example dot com`),
bare domains (`bit.ly/x`, `example.io/x`, `www.x.com`, `x.com`), IBANs (mod-97), card numbers with any separator
(Luhn), phone numbers (libphonenumber for the user's region, then for the regions of the international numbers seen in
the exports, then any phone-shaped group of 9-15 digits that is not a date, time or amount) and contacts' names
(`replica.prepare.names`: every token of >= 3 letters, case/accent/width-insensitive, everyday words kept where they
read as words). The user's own names are not masked: they are the voice being cloned.
The value -> placeholder mapping lives only in memory and is never written.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import phonenumbers

from replica.prepare import pii_patterns as patterns
from replica.prepare.names import NameIndex, fold
from replica.prepare.pii_patterns import iban_is_valid, luhn_is_valid
from replica.settings import (
    MaskSection as MaskOptions,  # one definition of the mask switches
)

__all__ = ["MaskOptions", "PiiMasker", "PrivateValues", "iban_is_valid", "luhn_is_valid", "pii_values", "regions_seen"]

_DIGIT = re.compile(r"\d")
_INTERNATIONAL = re.compile(r"(?<![\w+])(?:\+|00)[1-9][\d ().-]{6,18}\d")
_MIN_PHONE_DIGITS = 7
_MIN_CARD_DIGITS = 13

Emit = Callable[[str, str, str], str]  # (kind, key, raw) -> replacement


def regions_seen(texts: Iterable[str]) -> list[str]:
    """Regions of the international numbers (`+1 415 …`, `0044 …`) in `texts`, most frequent first."""
    counts: Counter[str] = Counter()
    for text in texts:
        if "+" not in text and "00" not in text:
            continue
        for match in _INTERNATIONAL.finditer(text):
            candidate = match.group()
            candidate = "+" + candidate[2:] if candidate.startswith("00") else candidate
            try:
                number = phonenumbers.parse(candidate, None)
            except phonenumbers.NumberParseException:
                continue
            region = phonenumbers.region_code_for_country_code(number.country_code)
            if region in phonenumbers.SUPPORTED_REGIONS:
                counts[region] += 1
    return [region for region, _ in counts.most_common()]


class PiiMasker:
    """Replace personal data in texts by `<KIND_n>` placeholders whose numbers come from the data, not from the order
    of `mask` calls: contacts are `<NAME_n>` in the order they are given (most active first), and every other value
    is numbered in order of first appearance in `texts` (the dataset's messages in order). Values met only later
    (e.g. in a chat title) are numbered after those, as they come."""

    def __init__(
        self,
        contact_names: Iterable[str] = (),
        *,
        own_names: Iterable[str] = (),
        region: str = "IT",
        regions: Iterable[str] = (),
        options: MaskOptions = MaskOptions(),
        texts: Iterable[tuple[str, str | None]] = (),
    ) -> None:
        self.regions = list(dict.fromkeys([region.upper(), *regions]))
        self.options = options
        self.placeholders: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self._found: set[str] = set()
        self._cache: dict[tuple[str, str | None], str] = {}
        contacts = list(contact_names) if options.names else []
        self.names = NameIndex(contacts, own_names)
        self._steps: list[Callable[[str, tuple[str, ...], Emit], str]] = [
            step
            for enabled, step in (
                (options.urls, self._mask_scheme_urls),
                (options.emails, self._mask_emails),
                (options.urls, self._mask_bare_domains),
                (options.iban, self._mask_ibans),
                (options.cards, self._mask_cards),
                (options.phones, self._mask_phones),
                (bool(self.names), self._mask_names),
            )
            if enabled
        ]
        for person in self.names.people_in_order(contacts):
            self._new_placeholder("NAME", person)
        for text, language in texts:
            self.mask(text, language)

    def mask(self, text: str, language: str | None = None) -> str:
        """`text` with every personal value replaced; `language` (the chat's) decides which names are words."""
        cached = self._cache.get((text, language))
        if cached is None:
            cached = self._run(text, (language,) if language else (), self.placeholder)
            self._cache[(text, language)] = cached
        return cached

    def detect(self, text: str, languages: Iterable[str] = ()) -> set[tuple[str, str]]:
        """The (kind, key) of every personal value in `text`, without numbering anything."""
        found: set[tuple[str, str]] = set()

        def record(kind: str, key: str, raw: str) -> str:
            found.add((kind, key))
            return f"<{kind}>"

        self._run(text, tuple(languages), record)
        return found

    def seen(self) -> set[tuple[str, str]]:
        """The (kind, key) of every value masked so far."""
        return set(self.placeholders)

    def values(self) -> set[str]:
        """The raw personal values met so far plus every contact name token (private: keep in memory only)."""
        return self._found | self.names.surfaces()

    def _run(self, text: str, languages: tuple[str, ...], emit: Emit) -> str:
        for step in self._steps:
            text = step(text, languages, emit)
        return text

    def placeholder(self, kind: str, key: str, raw: str) -> str:
        """The placeholder of a value (a new one, numbered per kind, the first time)."""
        self._found.add(raw)
        return self.placeholders.get((kind, key)) or self._new_placeholder(kind, key)

    def _new_placeholder(self, kind: str, key: str) -> str:
        """A new value's placeholder: the next `<KIND_n>` of its kind, remembered for `key`."""
        self._counts[kind] = self._counts.get(kind, 0) + 1
        placeholder = self.placeholders[(kind, key)] = f"<{kind}_{self._counts[kind]}>"
        return placeholder

    @staticmethod
    def _mask_scheme_urls(text: str, languages: tuple[str, ...], emit: Emit) -> str:
        if "://" not in text:
            return text
        return patterns.SCHEME_URL.sub(lambda match: _replace_url(match.group(), emit), text)

    @staticmethod
    def _mask_emails(text: str, languages: tuple[str, ...], emit: Emit) -> str:
        def plain(match: re.Match) -> str:
            address = match.group()
            if not patterns.has_alpha_tld(address):
                return address
            return emit("EMAIL", address.casefold(), address)

        def obfuscated(match: re.Match) -> str:
            written = match.group()
            if patterns.last_label(written) not in patterns.known_tlds():
                return written
            return emit("EMAIL", _deobfuscated(written), written)

        if "@" in text:
            text = patterns.EMAIL.sub(plain, text)
        return patterns.OBFUSCATED_EMAIL.sub(obfuscated, text)

    @staticmethod
    def _mask_bare_domains(text: str, languages: tuple[str, ...], emit: Emit) -> str:
        if "." not in text:
            return text

        def replace(match: re.Match) -> str:
            url = patterns.trim_url(match.group())
            if not patterns.is_bare_url(url):
                return match.group()
            return emit("URL", url.casefold(), url) + match.group()[len(url):]

        return patterns.BARE_DOMAIN.sub(replace, text)

    @staticmethod
    def _mask_ibans(text: str, languages: tuple[str, ...], emit: Emit) -> str:
        def replace(match: re.Match) -> str:
            candidate = match.group()
            # The pattern may swallow following words ("IT60 ... 456 ok"): drop trailing words until it checks out.
            while candidate and not iban_is_valid(candidate):
                candidate = candidate.rpartition(" ")[0]
            if not candidate:
                return match.group()
            return emit("IBAN", candidate.replace(" ", "").upper(), candidate) + match.group()[len(candidate):]

        return patterns.IBAN.sub(replace, text) if _digit_count(text) >= _MIN_CARD_DIGITS else text

    @staticmethod
    def _mask_cards(text: str, languages: tuple[str, ...], emit: Emit) -> str:
        def replace(match: re.Match) -> str:
            digits = re.sub(r"\D", "", match.group())
            return emit("CARD", digits, match.group()) if luhn_is_valid(digits) else match.group()

        return patterns.CARD.sub(replace, text) if _digit_count(text) >= _MIN_CARD_DIGITS else text

    def _mask_phones(self, text: str, languages: tuple[str, ...], emit: Emit) -> str:
        if _digit_count(text) < _MIN_PHONE_DIGITS:
            return text
        for region in self.regions:
            text = _mask_region_phones(text, region, emit)
        pieces, end = [], 0
        for match in patterns.phone_shaped(text):
            digits = re.sub(r"\D", "", match.group())
            key = "+" + digits if match.group().startswith("+") else digits
            pieces += [text[end:match.start()], emit("PHONE", key, match.group())]
            end = match.end()
        return "".join(pieces) + text[end:] if pieces else text

    def _mask_names(self, text: str, languages: tuple[str, ...], emit: Emit) -> str:
        pieces, end = [], 0
        for hit in self.names.find(text, languages):
            pieces += [text[end:hit.start], emit("NAME", hit.key, text[hit.start:hit.end])]
            end = hit.end
        return "".join(pieces) + text[end:] if pieces else text


def _replace_url(matched: str, emit: Emit) -> str:
    url = patterns.trim_url(matched)
    return emit("URL", url, url) + matched[len(url):]


def _deobfuscated(written: str) -> str:
    """`Luca (at) Example dot com` -> `luca@example.com`, the key a plain spelling of the address shares."""
    tokens = re.findall(r"[\w+-]+|@|\.", fold(written))
    at_words, dot_words = set(patterns.obfuscation_words("at")), set(patterns.obfuscation_words("dot"))
    out, seen_at = [], False
    for token in tokens:
        if not seen_at and (token == "@" or token in at_words):
            out.append("@")
            seen_at = True
        elif seen_at and (token == "." or token in dot_words):
            out.append(".")
        else:
            out.append(token)
    return "".join(out)


def _mask_region_phones(text: str, region: str, emit: Emit) -> str:
    pieces, end = [], 0
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
        # A leading "+" is strong evidence on its own (fictional +1 555-01xx numbers are "invalid");
        # numbers written without one must be valid for the region, which keeps amounts and ids unmasked.
        if not (match.raw_string.startswith(("+", "00")) or phonenumbers.is_valid_number(match.number)):
            continue
        key = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        pieces += [text[end:match.start], emit("PHONE", key, match.raw_string)]
        end = match.end
    return "".join(pieces) + text[end:] if pieces else text


def _digit_count(text: str) -> int:
    return len(_DIGIT.findall(text)) if _DIGIT.search(text) else 0


@dataclass(frozen=True)
class PrivateValues:
    """What the exports' masking found, for counting leaks in generated text with the same detection. Private:
    keep it in memory, never write or log it."""

    masker: PiiMasker
    languages: frozenset[str]

    def leaks(self, reply: str) -> bool:
        """True when `reply` contains a contact's name or a phone, e-mail, URL, IBAN or card of the exports."""
        seen = self.masker.seen()
        return any(kind == "NAME" or (kind, key) in seen for kind, key in self.masker.detect(reply, self.languages))

    def values(self) -> set[str]:
        return self.masker.values()


def pii_values(
    texts: Iterable[tuple[str, str | None]] | Iterable[str],
    contact_names: Iterable[str] = (),
    *,
    own_names: Iterable[str] = (),
    region: str = "IT",
    options: MaskOptions = MaskOptions(),
) -> PrivateValues:
    """Mask `texts` (plain or (text, language) pairs) the way the dataset is masked and keep what was found."""
    pairs = [(item, None) if isinstance(item, str) else item for item in texts]
    contacts = list(contact_names)
    masker = PiiMasker(
        contacts,
        own_names=own_names,
        region=region,
        regions=regions_seen([*(text for text, _ in pairs), *contacts]),
        options=options,
        texts=pairs,
    )
    return PrivateValues(masker, frozenset(language for _, language in pairs if language))
