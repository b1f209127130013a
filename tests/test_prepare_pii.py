"""PII masking: phones, emails, URLs, IBANs, cards and contact names, with stable placeholders."""

from __future__ import annotations

import re

import pytest

from replica.prepare.pii import MaskOptions, PiiMasker, iban_is_valid, luhn_is_valid, pii_values, regions_seen

VALID_IBAN = "IT60X0542811101000000123456"
VALID_CARD = "4111 1111 1111 1111"


@pytest.mark.parametrize("text, region, expected", [
    ("chiamami al +39 333 123 4567 stasera", "IT", "chiamami al <PHONE_1> stasera"),
    ("chiamami al 333-123-4567 stasera", "IT", "chiamami al <PHONE_1> stasera"),
    ("US office: +1 (555) 010-0199.", "IT", "US office: <PHONE_1>."),
    ("fisso 06 1234 5678", "IT", "fisso <PHONE_1>"),
])
def test_phone_formats_are_masked(text, region, expected):
    assert PiiMasker(region=region).mask(text) == expected


def test_same_phone_in_different_formats_gets_one_placeholder():
    masker = PiiMasker(region="IT")
    assert masker.mask("+39 333 123 4567") == "<PHONE_1>"
    assert masker.mask("333-123-4567 o 02 8765 4321") == "<PHONE_1> o <PHONE_2>"


def test_foreign_national_numbers_use_the_regions_seen_then_the_generic_shape():
    # +1 seen in the exports: the US national form is the same number, so the same placeholder
    masker = PiiMasker(region="IT", regions=regions_seen(["il suo numero è +1 415 555 0132"]))
    assert masker.regions == ["IT", "US"]
    assert masker.mask("+1 415 555 0132 / (415) 555-0132.") == "<PHONE_1> / <PHONE_1>."
    # no +1 anywhere: the phone-shaped fallback still masks it
    masked = PiiMasker(region="IT").mask("chiama (415) 555-0132, 020 7946 0958 o 0412 345 678")
    assert re.fullmatch(r"chiama <PHONE_\d>, <PHONE_\d> o <PHONE_\d>", masked)
    assert len(set(re.findall(r"<PHONE_\d>", masked))) == 3


@pytest.mark.parametrize("text", [
    "pago 1234567 euro", "alle 12:30 del 12/03/2024", "ordine n. 20240312", "il 2024-03-12 14.30 o il 12.03.2024 10.30",
    "costa € 1 234 567 890 o 1.234.567.890 euro, $ 2 500 000 000", "alle 10:30:15 del 12-03-2024, 14.30-16.45",
    "saldo 1.234.567,89 e 12 345 678,90 EUR", "versione 1.2.3, 3.14159",
])
def test_amounts_dates_and_ids_are_not_phones(text):
    assert PiiMasker(region="IT").mask(text) == text


def test_emails_and_urls():
    masker = PiiMasker()
    assert masker.mask("scrivi a Luca.Ferri+x@example.co.uk, poi vai su https://example.com/a?b=1).") == (
        "scrivi a <EMAIL_1>, poi vai su <URL_1>)."
    )
    assert masker.mask("www.example.it e luca.ferri+x@EXAMPLE.co.uk") == "<URL_2> e <EMAIL_1>"


def test_valid_iban_masked_invalid_not():
    masker = PiiMasker()
    assert iban_is_valid(VALID_IBAN) and not iban_is_valid("IT60X0542811101000000123457")
    assert masker.mask(f"IBAN {VALID_IBAN} grazie") == "IBAN <IBAN_1> grazie"
    assert masker.mask("IBAN IT60 X054 2811 1010 0000 0123 456 ok") == "IBAN <IBAN_1> ok"
    assert masker.mask("IBAN IT60X0542811101000000123457") == "IBAN IT60X0542811101000000123457"


def test_luhn_valid_card_masked_invalid_not():
    masker = PiiMasker()
    assert luhn_is_valid("4111111111111111") and not luhn_is_valid("4111111111111112")
    assert masker.mask(f"carta {VALID_CARD} scad 12/27") == "carta <CARD_1> scad 12/27"
    assert masker.mask("carta 4111-1111-1111-1111") == "carta <CARD_1>"
    assert masker.mask("carta 4111.1111.1111.1111. Grazie") == "carta <CARD_1>. Grazie"
    assert masker.mask("amex 3782-822463-10005 o 3782 822463 10005") == "amex <CARD_2> o <CARD_2>"
    assert masker.mask("codice 4111 1111 1111 1112") == "codice 4111 1111 1111 1112"


def test_contact_names_whole_words_case_insensitive_stable_across_messages():
    masker = PiiMasker(["Luca Ferri", "Léa Martin", "Al", "+39 333 000 1111"], own_names=["Marco Bianchi"])
    assert masker.mask("ho visto luca ferri e LÉA") == "ho visto <NAME_1> e <NAME_2>"
    # a first name stands for its person; accents are optional in the text
    assert masker.mask("Luca Ferri, Lea Martin e Luca") == "<NAME_1>, <NAME_2> e <NAME_1>"
    assert masker.mask("Lucas e lucano e al bar") == "Lucas e lucano e al bar"  # whole words; <3 letters ignored
    assert masker.mask("ciao luca") == "ciao <NAME_1>"


def test_first_name_shared_by_two_contacts_gets_its_own_placeholder():
    masker = PiiMasker(["Luca Ferri", "Luca Bianchi"])
    # contacts are numbered in the order given (Ferri first); the shared "Luca" comes after them
    assert masker.mask("Luca Bianchi, Luca, Luca Ferri") == "<NAME_2>, <NAME_3>, <NAME_1>"


def test_name_tokens_shared_with_the_user_are_not_masked():
    masker = PiiMasker(["Marco Rossi", "Giulia Neri"], own_names=["Marco Bianchi"])
    assert masker.mask("Marco e Giulia da Marco Rossi") == "Marco e <NAME_2> da Marco <NAME_1>"


def test_options_disable_kinds():
    masker = PiiMasker(["Luca Ferri"], options=MaskOptions(urls=False, names=False))
    assert masker.mask("Luca https://example.com a@b.it") == "Luca https://example.com <EMAIL_1>"


def test_pii_values_collects_raw_values_for_leak_checks():
    values = pii_values(["mail a@b.it, tel +39 333 123 4567", "niente"], ["Luca Ferri"]).values()
    assert {"a@b.it", "+39 333 123 4567", "luca", "ferri"} <= values
    assert "niente" not in values


def test_surnames_nicknames_accents_and_width_in_both_directions():
    masker = PiiMasker(["Luca Ferri", "Nicolo Esposito", "Zoë Müller", "Giovanni 'Gianni' Verdi"])
    text = "Ferri, ferri; ESPOSITO e Nicolò, Muller/MÜLLER/ｍｕｌｌｅｒ, zoe e Gianni"
    assert masker.mask(text) == (
        "<NAME_1>, <NAME_1>; <NAME_2> e <NAME_2>, <NAME_3>/<NAME_3>/<NAME_3>, <NAME_3> e <NAME_4>"
    )
    assert masker.mask("Nicolo\u0300 Esposito") == "<NAME_2>"  # decomposed accent, full name: one placeholder
    assert masker.mask("Ferrino e nicolas e Gianna") == "Ferrino e nicolas e Gianna"  # whole words only


def test_names_that_are_everyday_words_are_kept_where_they_read_as_words():
    masker = PiiMasker(["Rosa Neri", "Sunny Patel"])
    assert masker.mask("la maglietta rosa, Rosa arriva, ROSA!", "it") == "la maglietta rosa, <NAME_1> arriva, <NAME_1>!"
    assert masker.mask("rosa neri ha chiamato", "it") == "<NAME_1> ha chiamato"  # next to her surname
    assert masker.mask("it is sunny, Sunny says", "en") == "it is sunny, <NAME_2> says"
    assert masker.mask("la maglietta rosa") == "la maglietta <NAME_1>"  # language unknown: mask every use
    assert masker.mask("it is sunny", "it") == "it is <NAME_2>"  # not an Italian word


@pytest.mark.parametrize("text, expected", [
    ("vedi example.io/path/segreto.", "vedi <URL_1>."),
    ("bit.ly/abc123, instagram.com/luca.ferri!", "<URL_1>, <URL_2>!"),
    ("(ftp://files.example.net/x.zip)", "(<URL_1>)"),
    ("su www.example.com; oppure example.com?", "su <URL_1>; oppure <URL_2>?"),
    ("wiki https://en.wikipedia.org/wiki/Foo_(bar), ok", "wiki <URL_1>, ok"),
    ("apri README.md, train.py e foto.jpg: ore 10.30, v1.2.3", "apri README.md, train.py e foto.jpg: ore 10.30, v1.2.3"),
    ("ciao.come stai?e.g. ok", "ciao.come stai?e.g. ok"),
])
def test_urls_of_any_scheme_and_bare_domains_keep_punctuation(text, expected):
    assert PiiMasker().mask(text) == expected


@pytest.mark.parametrize("text", [
    "luca(at)example(dot)com", "luca [at] example [dot] com", "luca at example dot com", "LUCA AT EXAMPLE DOT COM",
    "luca {at} example.com", "luca chiocciola example punto com", "luca @ example . com",
])
def test_obfuscated_emails_share_the_plain_address_placeholder(text):
    masker = PiiMasker()
    assert masker.mask("luca@example.com") == "<EMAIL_1>"
    assert masker.mask(f"scrivi a {text}!") == "scrivi a <EMAIL_1>!"


def test_everyday_phrases_with_at_and_dot_are_not_emails():
    masker = PiiMasker()
    text = "look at this dot, meet at home. a punto e basta"
    assert masker.mask(text) == text


ADVERSARIAL = {
    "email": "a." * 32768 + "@",
    "obfuscated email": "a at " * 13107,
    "url": "http://x" + "(" * 65000 + ")" * 500,
    "bare domain": "a." * 32768,
    "iban": "IT60 " * 13107,
    "card": "4111 " * 13107,
    "phone": "+39 347 " * 8192,
    "phone digits": "1 " * 32768,
    "name": "Nicolò ferri, " * 5000,
}


@pytest.mark.parametrize("kind", ADVERSARIAL)
def test_adversarial_64kb_messages_are_masked(kind):
    """Inputs that make backtracking patterns explode; their timings are in benchmarks/mask_scaling.py."""
    text = ADVERSARIAL[kind]
    masked = PiiMasker(["Nicolo Ferri"]).mask(text, "it")
    assert len(text) >= 40_000
    if kind == "name":
        assert masked == "<NAME_1>, " * 5000
    elif kind == "url":
        assert masked == "<URL_1>"  # the URL opened more brackets than it closes: they are its own
    else:
        assert masked == text  # nothing valid in there


def test_numbering_comes_from_the_data_not_from_the_order_of_calls():
    texts = [("scrivi a luca@example.com o al 333 123 4567", None), ("Giulia ha detto anna@example.com", None)]
    contacts = ["Luca Ferri", "Giulia Neri"]  # ranked: most active first
    first, second = PiiMasker(contacts, texts=texts), PiiMasker(contacts, texts=texts)
    forward = [first.mask(text) for text, _ in texts]
    backward = [second.mask(text) for text, _ in reversed(texts)][::-1]
    assert forward == backward
    assert forward[1] == "<NAME_2> ha detto <EMAIL_2>"  # Giulia is the second contact, her address the second seen
    # contacts keep their rank's number whichever is written first
    masker = PiiMasker(contacts)
    assert masker.mask("Giulia") == "<NAME_2>" and masker.mask("Luca") == "<NAME_1>"
