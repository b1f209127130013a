"""The relationship rules on invented messages: which label each chat gets, the labels a user may write, the group
speakers' pseudonyms and the one-line errors (every expected value is written out here, not computed by the code)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from replica.errors import ReplicaInputError
from replica.ingest.message import Message
from replica.prepare.relationships import Relation, chat_relations, check_labels, contact_pseudonyms, title_keys
from replica.privacy import name_key

ME = {"Léa"}
START = datetime(2024, 5, 1, 9, 0)


def said(chat: str, *senders: str | None, platform: str = "whatsapp") -> list[Message]:
    """One text message per sender, a minute apart, in `chat` (None: a system line)."""
    return [Message(START + timedelta(minutes=index), sender, "ciao", "text" if sender else "system", platform, chat)
            for index, sender in enumerate(senders)]


MESSAGES = [
    *said("Mamma", "Mamma", "Léa", "Mamma"),                      # 1:1, listed by its contact
    *said("Calcetto", "Jake Miller", "Léa", "Nico", "Nico"),      # group, listed by its title
    *said("Ornella Sarti +39 348 222 3344", "Ornella", "Léa"),    # 1:1, listed by its title without the number
    *said("Gita", "Nico", "Pia", "Léa"),                          # group, not listed
    *said("Zio", "Zio", None, "Léa"),                             # 1:1, not listed (a system line is nobody)
    *said("Mamma", "Mamma", platform="telegram"),                 # the same title on another platform is its own chat
]


def test_each_chat_gets_its_label_from_its_title_or_its_one_contact():
    relations = chat_relations(MESSAGES, ME, {"mamma": "Family", "CALCETTO": "sport", "Ornella Sarti": "work"})
    assert relations == {
        ("whatsapp", "Mamma"): Relation("family", False),
        ("whatsapp", "Calcetto"): Relation("sport", True),
        ("whatsapp", "Ornella Sarti +39 348 222 3344"): Relation("work", False),
        ("whatsapp", "Gita"): Relation("group", True),
        ("whatsapp", "Zio"): Relation("other", False),
        ("telegram", "Mamma"): Relation("family", False),
    }


def test_a_title_label_wins_over_a_contact_label_and_a_contact_label_never_labels_a_group():
    relations = chat_relations(MESSAGES, ME, {"Nico": "friend", "Gita": "trip"})
    assert relations[("whatsapp", "Gita")] == Relation("trip", True)
    assert relations[("whatsapp", "Calcetto")] == Relation("group", True)  # Nico writes there, but it is a group


def test_a_one_to_one_chat_takes_its_contacts_label_whatever_its_title():
    messages = [*said("Mum (old phone)", "Mamma", "Léa"), *said("Cena", "Mamma", "Nico", "Léa")]
    assert chat_relations(messages, ME, {"Mamma": "family"}) == {
        ("whatsapp", "Mum (old phone)"): Relation("family", False),
        ("whatsapp", "Cena"): Relation("group", True),
    }


def test_names_given_as_their_keys_match_the_same_chats():
    assert chat_relations(MESSAGES, ME, {name_key("Mamma"): "family"})[("whatsapp", "Mamma")] == Relation("family", False)


def test_a_name_matching_nothing_is_one_line_listing_what_was_found():
    with pytest.raises(ReplicaInputError) as caught:
        chat_relations(MESSAGES, ME, {"Mamma": "family", "Giulia": "friend", "Marco": "work"})
    message = str(caught.value)
    assert message.startswith("data.relationships: 2 of its names match no sender and no chat")
    senders = message.split("senders found: ")[1].split("; chats found")[0].split(", ")
    assert sorted(senders) == ["Jake Miller", "Mamma", "Nico", "Ornella", "Pia", "Zio"]  # never the user
    assert sorted(senders[:2]) == ["Mamma", "Nico"]  # the ones in the most chats first
    assert "chats found: Calcetto, Gita, Mamma, Ornella Sarti +39 348 222 3344, Zio — " in message and "\n" not in message


def test_a_label_that_is_a_name_is_refused():
    with pytest.raises(ReplicaInputError, match="a label equals a sender's or a chat's name"):
        chat_relations(MESSAGES, ME, {"Mamma": "nico"})


@pytest.mark.parametrize("label, kept", [("Family", "family"), ("  best   friend ", "best friend"), ("work_2", "work_2"),
                                         ("x" * 24, "x" * 24), ("9-to-5", "9-to-5"),
                                         ("close\nfriend", "close friend")])
def test_labels_are_lowercased_and_their_spaces_folded(label, kept):
    assert check_labels({"Mamma": label, "Nico": "friend"}) == {"Mamma": kept, "Nico": "friend"}


@pytest.mark.parametrize("label", ["", " ", "x" * 25, "-work", "famiglia!", "über"])
def test_a_bad_label_names_its_entry_not_the_name(label):
    with pytest.raises(ReplicaInputError) as caught:
        check_labels({"Mamma": "family", "Segreto Rossi": label})
    assert "for entry 2 must be 1-24 letters" in str(caught.value) and "Segreto" not in str(caught.value)


def test_pseudonyms_rank_senders_by_messages_then_name_and_skip_me_and_system_lines():
    messages = [*said("a", "Nico", "nico", "Pia", "Pia", "Léa", "Léa", "Léa", None), *said("b", "Ada", "Zoe", "Pia")]
    assert contact_pseudonyms(messages, ME) == {"Pia": "contact_1", "Ada": "contact_2", "Nico": "contact_3",
                                                "nico": "contact_4", "Zoe": "contact_5"}


@pytest.mark.parametrize("title, keys", [
    ("Ornella Sarti +39 348 222 3344", ["Ornella Sarti +39 348 222 3344", "Ornella Sarti"]),
    ("Ufficio 348-222-3344", ["Ufficio 348-222-3344", "Ufficio"]),
    ("Calcetto", ["Calcetto"]),
    ("Gita 2024", ["Gita 2024"]),  # a short number is part of the name
    ("+39 348 222 3344", ["+39 348 222 3344"]),  # nothing left without the number: the title alone
])
def test_a_title_also_answers_without_its_trailing_phone_number(title, keys):
    assert title_keys(title) == [name_key(key) for key in keys]


def test_the_unknown_names_error_lists_at_most_twelve_senders_and_chats():
    messages = [message for index in range(14) for message in said(f"Chat {index:02}", f"Amico {index:02}", "Léa")]
    with pytest.raises(ReplicaInputError) as caught:
        chat_relations(messages, ME, {"Nessuno": "friend"})
    message = str(caught.value)
    assert len(message.split("senders found: ")[1].split("; chats found")[0].split(", ")) == 12
    assert message.split("chats found: ")[1].split(" — ")[0] == ", ".join(f"Chat {index:02}" for index in range(12))
