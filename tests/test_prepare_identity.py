"""Which senders are the user: data.me aliases matched case/accent/mark-insensitively, plus declared owners."""

from __future__ import annotations

from datetime import datetime

import pytest

from replica.errors import ReplicaInputError
from replica.ingest.message import Message
from replica.prepare.identity import normalize_name, resolve_me


def msg(sender: str) -> Message:
    return Message(datetime(2024, 1, 1), sender, "ciao", "text", "whatsapp", "chat")


def test_normalize_name_strips_case_accents_marks_tilde_and_spaces():
    assert normalize_name("~\u202fLÉA   Martín\u200e") == "lea martin"
    assert normalize_name("\u2068Zoë\u2069") == "zoe"


def test_me_matches_senders_case_and_accent_insensitively():
    messages = [msg("Léa Martin"), msg("~ lea martin"), msg("Luca Ferri"), msg("LEA")]
    assert resolve_me(messages, ["lea martin", "Léa"]) == {"Léa Martin", "~ lea martin", "LEA"}


def test_owners_count_as_the_user_even_without_data_me():
    messages = [msg("Marco Bianchi"), msg("Luca Ferri")]
    assert resolve_me(messages, [], owners={"marco bianchi"}) == {"Marco Bianchi"}


def test_no_match_lists_senders_with_counts_in_one_line():
    messages = [msg("Luca Ferri")] * 3 + [msg("Léa Martin")] * 2 + [msg("\u200eAnna")]
    with pytest.raises(ReplicaInputError) as error:
        resolve_me(messages, ["Marco"])
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith(
        "data.me=['Marco'] matches no sender; senders found: Luca Ferri (3), Léa Martin (2), Anna (1) — "
    )
    assert "data.me=\"['Luca Ferri']\"" in text


def test_empty_me_without_owners_is_an_error():
    with pytest.raises(ReplicaInputError, match="data.me is empty.*Luca Ferri \\(1\\)"):
        resolve_me([msg("Luca Ferri")], [])
