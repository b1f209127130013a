"""PII masking: phones, emails, URLs, IBANs, cards and contact names, with stable placeholders."""

from __future__ import annotations

import random
import time

import pytest

from replica.prepare.pii import MaskOptions, PiiMasker, iban_is_valid, luhn_is_valid, pii_values

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


def test_national_number_depends_on_region():
    assert PiiMasker(region="IT").mask("333-123-4567") == "<PHONE_1>"
    assert PiiMasker(region="US").mask("333-123-4567") == "333-123-4567"  # not a valid US number


@pytest.mark.parametrize("text", ["pago 1234567 euro", "alle 12:30 del 12/03/2024", "ordine n. 20240312"])
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
    assert masker.mask("Luca Bianchi, Luca, Luca Ferri") == "<NAME_1>, <NAME_2>, <NAME_3>"


def test_first_name_shared_with_the_user_is_not_masked():
    masker = PiiMasker(["Marco Rossi", "Giulia Neri"], own_names=["Marco Bianchi"])
    assert masker.mask("Marco e Giulia da Marco Rossi") == "Marco e <NAME_1> da <NAME_2>"


def test_options_disable_kinds():
    masker = PiiMasker(["Luca Ferri"], options=MaskOptions(urls=False, names=False))
    assert masker.mask("Luca https://example.com a@b.it") == "Luca https://example.com <EMAIL_1>"


def test_pii_values_collects_raw_values_for_leak_checks():
    values = pii_values(["mail a@b.it, tel +39 333 123 4567", "niente"], ["Luca Ferri"])
    assert {"a@b.it", "+39 333 123 4567", "Luca Ferri", "Luca"} <= values
    assert "niente" not in values


def test_masking_70k_messages_is_fast():
    rng = random.Random(0)
    words = "ciao come stai domani andiamo al mare va bene perfetto ci vediamo dopo".split()
    contacts = [f"Nome{i} Cognome{i}" for i in range(200)]
    texts = []
    for i in range(70_000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 15)))
        if i % 40 == 0:
            text += f" chiamami al 333 {rng.randint(1000000, 9999999)}"
        if i % 25 == 0:
            text += f" {rng.choice(contacts)}"
        texts.append(text)
    masker = PiiMasker(contacts)
    start = time.perf_counter()
    masked = [masker.mask(text) for text in texts]
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"masking took {elapsed:.2f}s"
    assert sum("<PHONE_" in text for text in masked) >= 1700 and sum("<NAME_" in text for text in masked) >= 2700
