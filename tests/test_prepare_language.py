"""Language detection per conversation (not per message), seeded, and the chat-level filter."""

from __future__ import annotations

from datetime import datetime, timedelta

from replica.ingest.message import Message
from replica.prepare.language import detect_chat_languages, detect_language, keep_languages

ITALIAN = [
    "Ciao, come stai? Stasera andiamo a mangiare la pizza da Gino?",
    "Sì volentieri, però prima devo finire di lavorare, ci vediamo alle nove",
    "Perfetto, allora prenoto un tavolo per quattro persone",
    "Domani mattina vado al mercato a comprare la frutta e la verdura",
    "Non ti preoccupare, arrivo un po' più tardi perché c'è traffico",
    "Hai visto la partita ieri sera? Che gol incredibile all'ultimo minuto",
]
ENGLISH = [
    "Hey, are you coming to the meeting tomorrow morning?",
    "I think we should book the flights before the prices go up again",
    "Thanks a lot for your help with the project, it was really useful",
]


def chat(name: str, texts: list[str]) -> list[Message]:
    start = datetime(2024, 1, 1)
    return [Message(start + timedelta(minutes=i), "Luca" if i % 2 else "Me", text, "text", "whatsapp", name)
            for i, text in enumerate(texts)]


def test_italian_chat_with_one_english_message_stays_italian():
    messages = chat("amici", ITALIAN + [ENGLISH[0]]) + chat("work", ENGLISH) + chat("emoji", ["😂😂", "👍"])
    languages = detect_chat_languages(messages, sample=40, seed=0)
    assert languages == {("whatsapp", "amici"): "it", ("whatsapp", "work"): "en", ("whatsapp", "emoji"): "und"}


def test_detection_is_seeded_and_reproducible():
    texts = ITALIAN + ENGLISH
    assert {detect_language(texts, sample=4, seed=7) for _ in range(5)} == {detect_language(texts, sample=4, seed=7)}


def test_keep_languages_filters_whole_chats_and_empty_keeps_all():
    messages = chat("amici", ITALIAN + [ENGLISH[0]]) + chat("work", ENGLISH)
    languages = detect_chat_languages(messages, sample=40, seed=0)
    kept = keep_languages(messages, languages, ["IT"])
    assert {m.chat for m in kept} == {"amici"} and len(kept) == len(ITALIAN) + 1
    assert keep_languages(messages, languages, []) == messages
