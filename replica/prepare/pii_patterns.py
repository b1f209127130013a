"""Linear-time finders for personal data with a shape: URLs (any scheme, bare domains), e-mails (plain and
obfuscated), IBANs, card numbers and phone-shaped digit groups.

Every pattern may only start where the previous character cannot belong to the same match (a lookbehind), and uses
possessive or bounded quantifiers: a failed attempt reads one run of characters once and never backtracks into it,
so masking time grows linearly with the message length (`benchmarks/mask_scaling.py` measures it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

DATA = Path(__file__).with_name("data")


def data_lines(name: str) -> list[str]:
    """The non-comment lines of a data file under replica/prepare/data."""
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@cache
def known_tlds() -> frozenset[str]:
    return frozenset(data_lines("tlds.txt"))


@cache
def currency_words() -> frozenset[str]:
    return frozenset(data_lines("currency.txt"))


# ---- URLs and e-mails ---------------------------------------------------------------------------------------
SCHEME_URL = re.compile(r"(?<![\w+.-])[a-z][a-z0-9+.-]*+://[^\s<>\"]++", re.IGNORECASE)
BARE_DOMAIN = re.compile(r"(?<![\w@.+/:-])[a-z0-9-]++(?:\.[a-z0-9-]++)++(?:/[^\s<>\"]*+)?", re.IGNORECASE)
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)++", re.IGNORECASE)
_URL_TRAILING = frozenset(".,;:!?)]}'\"")


@cache
def obfuscation_words(key: str) -> tuple[str, ...]:
    """The words written for "@" (key "at") or "." (key "dot") in obfuscated e-mails."""
    return tuple(json.loads((DATA / "obfuscation.json").read_text(encoding="utf-8"))[key])


def _obfuscated_email_pattern() -> re.Pattern:
    def separator(key: str, symbol: str) -> str:
        alternatives = "|".join(map(re.escape, obfuscation_words(key)))
        return (rf"(?:\s*+[(\[{{]\s*+(?:{alternatives})\s*+[)\]}}]\s*+|\s++(?:{alternatives})\s++"
                rf"|\s*+{re.escape(symbol)}\s*+)")

    return re.compile(
        rf"(?<![\w.+-])[\w.+-]++{separator('at', '@')}[\w-]++(?:{separator('dot', '.')}[\w-]++)++", re.IGNORECASE
    )


OBFUSCATED_EMAIL = _obfuscated_email_pattern()


def trim_url(url: str) -> str:
    """Drop sentence punctuation glued to a URL's end; a closing bracket stays when the URL opened one."""
    opened = url.count("(") + url.count("[") + url.count("{")
    closed = url.count(")") + url.count("]") + url.count("}")
    end = len(url)
    while end and url[end - 1] in _URL_TRAILING:
        if url[end - 1] in ")]}":
            if closed <= opened:
                break
            closed -= 1
        end -= 1
    return url[:end]


def is_bare_url(candidate: str) -> bool:
    """`example.io/x`, `www.x.com` or `bit.ly`-style domains with a known TLD; never numbers or `file.py`."""
    domain, slash, _ = candidate.partition("/")
    labels = domain.lower().split(".")
    tld = labels[-1]
    if not (tld.isascii() and tld.isalpha() and len(tld) >= 2) or not all(labels):
        return False
    if slash or labels[0] == "www":
        return True
    return tld in known_tlds() and len(labels[-2]) >= 2


def has_alpha_tld(address: str) -> bool:
    tld = address.rpartition(".")[2]
    return tld.isalpha() and len(tld) >= 2


def last_label(address: str) -> str:
    return re.split(r"[\s.()\[\]{}]+", address.rstrip(")]} \t").lower())[-1]


# ---- IBANs and cards ----------------------------------------------------------------------------------------
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", re.IGNORECASE)
CARD = re.compile(r"(?<![\w+.,-])\d(?:[ .-]?\d){12,18}(?!\w|[ .-]\d)")


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


# ---- phone-shaped digit groups (the fallback after libphonenumber) -----------------------------------------
PHONE_SHAPE = re.compile(
    r"(?<![\w+.,/:()-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]\d{1,5}){1,5}(?![\w/:]|[ .,-]\d)"
)
_DATE = re.compile(r"(?<!\d)(?:\d{4}[-.]\d{1,2}[-.]\d{1,2}|\d{1,2}[-.]\d{1,2}[-.]\d{2,4})(?!\d)")
_AMOUNT = re.compile(r"\d{1,3}(?:([ .,])\d{3})(?:\1\d{3})*+")
MIN_SHAPE_DIGITS, MAX_SHAPE_DIGITS = 9, 15
_CURRENCY_CONTEXT = 12  # characters looked at on each side of a digit group for a currency


def phone_shaped(text: str) -> Iterator[re.Match]:
    """Digit groups shaped like a phone number (9-15 digits in 2-7 groups), except dates and amounts."""
    for match in PHONE_SHAPE.finditer(text):
        candidate = match.group()
        digits = sum(char.isdigit() for char in candidate)
        if not MIN_SHAPE_DIGITS <= digits <= MAX_SHAPE_DIGITS or _DATE.search(candidate):
            continue
        if _AMOUNT.fullmatch(candidate) and not candidate.startswith("+"):
            continue
        if _near_currency(text, match.start(), match.end()):
            continue
        yield match


def _near_currency(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - _CURRENCY_CONTEXT):start].casefold().split()
    after = text[end:end + _CURRENCY_CONTEXT].casefold().split()
    words = currency_words()
    near = [*(before[-1:]), *(after[:1])]
    return any(word.strip(".,;:!?()") in words or any(symbol in word for symbol in "€$£¥₹") for word in near)
