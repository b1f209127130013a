"""More PII masking rules on invented messages (replica/prepare/pii.py and pii_patterns.py): regions of international
numbers, detection without numbering, leak checks, URL and e-mail edges, IBAN/Luhn checks on published examples and
the phone-shaped fallback's limits. Every expected value is worked out by hand from the rules in the modules'
docstrings (or is a published test number)."""

from __future__ import annotations

import pytest

from replica.prepare.pii import (
    PiiMasker,
    iban_is_valid,
    luhn_is_valid,
    pii_values,
    regions_seen,
)
from replica.prepare.pii_patterns import phone_shaped


# ---- regions of the international numbers seen --------------------------------------------------------------------
def test_regions_seen_most_frequent_first_with_00_prefixes():
    texts = ["niente qui", "London: 0044 20 7946 0958", "+1 415 555 0132", "ciao", "anche +1 212 555 0188"]
    assert regions_seen(texts) == ["US", "GB"]  # US twice, GB once (written 00 44)
    assert regions_seen(["0044 20 7946 0958"]) == ["GB"]
    assert regions_seen(["solo testo", "12 34"]) == []


def test_regions_seen_skips_numbers_it_cannot_parse_and_keeps_reading():
    assert regions_seen(["+999 123 4567 poi +44 20 7946 0958"]) == ["GB"]


def test_the_default_region_is_italy_and_regions_are_upper_case():
    assert PiiMasker().regions == ["IT"]
    assert PiiMasker(region="us", regions=["GB", "US"]).regions == ["US", "GB"]
    assert pii_values(["niente"]).masker.regions == ["IT"]


# ---- detection, seen values and leaks --------------------------------------------------------------------------------
def test_detect_finds_kinds_without_numbering_them():
    masker = PiiMasker(["Luca Ferri"])
    found = masker.detect("scrivi a luca@example.com o a Luca, https://example.org/x")
    assert {kind for kind, _ in found} == {"EMAIL", "NAME", "URL"}
    assert ("EMAIL", "luca@example.com") in found and ("URL", "https://example.org/x") in found
    assert {kind for kind, _ in masker.seen()} == {"NAME"}  # only the contacts, numbered up front
    assert masker.mask("luca@example.com") == "<EMAIL_1>"
    assert ("EMAIL", "luca@example.com") in masker.seen()


def test_detect_reads_names_in_the_chat_language():
    masker = PiiMasker(["Rosa Neri"])
    assert masker.detect("la maglietta rosa", ["it"]) == set()
    assert {kind for kind, _ in masker.detect("la maglietta rosa")} == {"NAME"}


def test_leaks_are_contact_names_or_values_seen_in_the_exports():
    private = pii_values(["mail luca@example.com, tel +39 333 123 4567"], ["Luca Ferri"])
    assert private.leaks("scrivimi a luca@example.com")
    assert private.leaks("chiama il +39 333 123 4567")
    assert private.leaks("ciao Luca")
    assert not private.leaks("scrivimi a altro@example.com")  # an address the exports never had
    assert not private.leaks("ciao a tutti")


def test_leak_checks_read_names_in_the_languages_of_the_exports():
    private = pii_values([("la maglietta rosa è bella", "it")], ["Rosa Neri"])
    assert not private.leaks("che bella maglietta rosa")
    assert private.leaks("Rosa arriva domani")


def test_values_hold_every_raw_value_as_written():
    masker = PiiMasker(["Luca Ferri"])
    masker.mask("vedi https://example.com/a e example.io/b, scrivi a luca at example dot com o a LUCA")
    values = masker.values()
    assert {"https://example.com/a", "example.io/b", "luca at example dot com", "LUCA"} <= values
    assert all(isinstance(value, str) for value in values)


# ---- e-mails ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("scrivi a luca@example.qqq", "scrivi a <EMAIL_1>"),   # an alphabetic TLD, even one not in the list
    ("luca.ferri@example.qqq", "<EMAIL_1>"),
    ("luca@example.qq", "<EMAIL_1>"),                        # two letters are enough
    ("a@b.c", "a@b.c"),                                      # one letter is not a TLD
    ("ping user@192.168.0.1", "ping user@192.168.0.1"),      # numbers are no TLD
])
def test_plain_emails_need_an_alphabetic_tld(text, expected):
    assert PiiMasker().mask(text) == expected


# ---- URLs ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("[https://example.com/x]", "[<URL_1>]"),
    ("{https://example.com/x}", "{<URL_1>}"),
    ("see https://example.com/a[1], ok", "see <URL_1>, ok"),
    ("https://example.com/{id}.", "<URL_1>."),
    ("((https://example.com/(a)))", "((<URL_1>))"),        # one bracket is the URL's own, two close the sentence
])
def test_closing_brackets_belong_to_a_url_only_when_it_opened_them(text, expected):
    assert PiiMasker().mask(text) == expected


def test_different_urls_get_different_placeholders():
    masker = PiiMasker()
    assert masker.mask("https://example.com/a e https://example.com/b e https://example.com/a") == "<URL_1> e <URL_2> e <URL_1>"


@pytest.mark.parametrize("text, expected", [
    ("vedi example.qqq/path", "vedi <URL_1>"),  # a path makes it a URL whatever the TLD
    ("www.example.qqq", "<URL_1>"),             # so does www.
    ("vai su ab.it", "vai su <URL_1>"),         # a two-letter name under a known TLD
    ("vedi v1.2.12/x", "vedi v1.2.12/x"),       # a number is no TLD
    ("apri foo.bar.42/x", "apri foo.bar.42/x"),
])
def test_bare_domains(text, expected):
    assert PiiMasker().mask(text) == expected


# ---- IBANs and cards ----------------------------------------------------------------------------------------------
def test_iban_length_limits():
    assert iban_is_valid("NO9386011117947")  # Norway's published example: 15 characters, the shortest IBAN
    assert iban_is_valid("NO93 8601 1117 947")
    assert not iban_is_valid("NO938601111794")  # 14 characters
    assert not iban_is_valid("N19386011117947")  # a country code is two letters
    assert not iban_is_valid("NOX386011117947")  # check digits are digits


def test_luhn_on_published_test_numbers():
    assert luhn_is_valid("79927398713")  # the classic example: 9s on undoubled positions
    assert not luhn_is_valid("79927398710")
    assert luhn_is_valid("5555555555554444")  # doubled 5s make 10
    assert not luhn_is_valid("5555555555554445")


# ---- phone-shaped digit groups ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, found", [
    ("tel 12 345 6789 ok", ["12 345 6789"]),                    # 9 digits: the fewest
    ("tel 123 4567 8901 2345 ok", ["123 4567 8901 2345"]),      # 15 digits: the most
    ("tel 12 345 678 ok", []),
    ("tel 123 4567 8901 23456 ok", []),
    ("il 12-03-2024 chiama 345 678 9012", ["345 678 9012"]),    # a date before does not stop the search
    ("codice 123 456 789", []),                                 # thousands groups: an amount
    ("€ 345 678 9012", []),
    ("345 678 9012 euro", []),
    ("345 678 9012 euro.", []),
    ("dollars x 345 678 9012", ["345 678 9012"]),               # only the word next to the number counts
    ("345 678 9012 x euro", ["345 678 9012"]),
])
def test_phone_shaped_groups(text, found):
    assert [match.group() for match in phone_shaped(text)] == found


def test_one_phone_in_two_spellings_shares_a_placeholder_another_gets_its_own():
    masker = PiiMasker()
    assert masker.mask("chiama 12 345 6789 o 12-345-6789 o 12 345 6780") == "chiama <PHONE_1> o <PHONE_1> o <PHONE_2>"
    assert {"12 345 6789", "12-345-6789", "12 345 6780"} <= masker.values()


def test_each_iban_gets_its_placeholder_whatever_its_case_and_the_shortest_counts():
    masker = PiiMasker()
    text = "conto NO9386011117947 e IT60X0542811101000000123456 e no9386011117947"  # the first has 13 digits
    assert masker.mask(text) == "conto <IBAN_1> e <IBAN_2> e <IBAN_1>"
    assert {"NO9386011117947", "no9386011117947", "IT60X0542811101000000123456"} <= masker.values()


def test_a_thirteen_digit_card_is_masked():
    masker = PiiMasker()
    assert masker.mask("carta 4222222222222") == "carta <CARD_1>"  # Visa's 13-digit test number
    assert masker.values() == {"4222222222222"}


def test_a_seven_digit_number_is_a_phone_where_the_region_has_them():
    assert PiiMasker(region="DE").mask("ruf an: 030 1234") == "ruf an: <PHONE_1>"  # Berlin: 030 + four digits


def test_a_leading_plus_makes_a_different_number():
    assert PiiMasker().mask("tel +999 1234 5678 o 999 1234 5678") == "tel <PHONE_1> o <PHONE_2>"


def test_shared_first_names_are_numbered_where_they_are_met_as_names():
    contacts = ["Rosa Neri", "Rosa Bianchi", "Luca Ferri", "Luca Verdi"]
    # "rosa" in the first Italian message is the colour; in the second, Luca is met before Rosa
    masker = PiiMasker(contacts, texts=[("la maglietta rosa", "it"), ("Luca e Rosa", "it")])
    assert masker.mask("Luca", "it") == "<NAME_5>" and masker.mask("Rosa", "it") == "<NAME_6>"


def test_a_shared_first_name_never_met_in_the_exports_still_leaks():
    assert pii_values(["niente"], ["Luca Ferri", "Luca Bianchi"]).leaks("ciao Luca")


def test_an_obfuscated_address_needs_a_known_tld_as_written():
    assert PiiMasker().mask("LUCA AT EXAMPLE DOT COMX") == "LUCA AT EXAMPLE DOT COMX"


def test_amounts_and_currency_groups_do_not_hide_a_later_phone():
    assert [match.group() for match in phone_shaped("pago 123 456 789 poi chiama 345 678 9012")] == ["345 678 9012"]
    assert [match.group() for match in phone_shaped("€ 345 678 9012 e 345 678 9013")] == ["345 678 9013"]


def with_check_digits(country: str, check: str, bban: str) -> str:
    """`country + check + bban` with `bban`'s last two digits chosen so that the ISO 7064 mod-97 remainder is 1."""
    for tail in range(100):
        candidate = f"{country}{check}{bban[:-2]}{tail:02d}"
        moved = candidate[4:] + candidate[:4]
        if int("".join(str(int(char, 36)) for char in moved)) % 97 == 1:
            return candidate
    raise AssertionError("no tail gives remainder 1")


def test_iban_shape_rules_beyond_the_checksum():
    assert iban_is_valid(with_check_digits("NO", "93", "1" * 30))       # 34 characters: the longest allowed
    assert not iban_is_valid(with_check_digits("NO", "93", "1" * 31))   # 35
    assert not iban_is_valid(with_check_digits("NO", "93", "1" * 10))   # 14
    assert not iban_is_valid(with_check_digits("NO", "A3", "1" * 11))   # check digits must be digits
    assert not iban_is_valid("NO93-8601-1117-947")                      # only letters, digits and spaces


def test_an_invalid_number_does_not_stop_the_numbers_after_it():
    masker = PiiMasker()
    assert masker.mask("codice 123456 poi 333 123 4567 e +39 333 123 4567") == "codice 123456 poi <PHONE_1> e <PHONE_1>"


def test_a_message_whose_only_digits_are_one_short_iban_is_masked():
    assert PiiMasker().mask("conto NO9386011117947") == "conto <IBAN_1>"  # 13 digits, the least checked


def test_one_number_grouped_differently_shares_a_placeholder():
    assert PiiMasker().mask("tel +999 1234 5678 o +999 123 45 678") == "tel <PHONE_1> o <PHONE_1>"


def test_00_and_plus_spell_the_same_international_number_even_a_fictional_one():
    assert PiiMasker().mask("tel 001 555 010 0199 o +1 555 010 0199") == "tel <PHONE_1> o <PHONE_1>"


def test_pii_values_masks_as_the_dataset_does():
    from replica.prepare.pii import MaskOptions

    private = pii_values(["chiama +1 415 555 0132", "mail a@b.it"], ["Marco Rossi"], own_names=["Marco Bianchi"],
                         region="gb", options=MaskOptions(emails=False))
    assert private.masker.regions == ["GB", "US"]  # the region given, then the ones of the numbers seen
    assert not private.leaks("ciao Marco")  # the user's own first name is no contact's name
    assert private.leaks("ciao Rossi")
    assert private.masker.mask("scrivi a a@b.it") == "scrivi a a@b.it"  # e-mails switched off
