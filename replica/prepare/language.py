"""Detect each conversation's language once, on a seeded sample of its longer messages, and filter chats by it."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence

from langdetect import DetectorFactory, LangDetectException, detect

from replica.ingest.message import Message

UNKNOWN = "und"
_MIN_SAMPLE_CHARS = 20  # shorter texts ("ok", "ahah") say little about the language


def chat_key(message: Message) -> tuple[str, str]:
    return message.platform, message.chat


def detect_language(texts: Sequence[str], *, sample: int, seed: int) -> str:
    """ISO 639-1 code of the texts joined (a seeded sample of the reasonably long ones), or "und"."""
    long_texts = [text for text in texts if len(text) >= _MIN_SAMPLE_CHARS]
    pool = long_texts or sorted(texts, key=len, reverse=True)[:sample]
    chosen = random.Random(seed).sample(pool, min(sample, len(pool)))
    DetectorFactory.seed = seed
    try:
        return detect("\n".join(chosen))
    except LangDetectException:  # no letters at all: only emoji, numbers or tags
        return UNKNOWN


def detect_chat_languages(messages: Iterable[Message], *, sample: int, seed: int) -> dict[tuple[str, str], str]:
    """Language of every chat, keyed by (platform, chat); only text messages are looked at."""
    texts: dict[tuple[str, str], list[str]] = defaultdict(list)
    for message in messages:
        chat_texts = texts[chat_key(message)]  # media-only chats still get an entry ("und")
        if message.kind == "text":
            chat_texts.append(message.text)
    return {key: detect_language(chat_texts, sample=sample, seed=seed) for key, chat_texts in sorted(texts.items())}


def keep_languages(
    messages: Iterable[Message], chat_languages: dict[tuple[str, str], str], languages: Sequence[str]
) -> list[Message]:
    """Messages of the chats whose language is in `languages` (all of them when `languages` is empty)."""
    wanted = {code.lower() for code in languages}
    return [message for message in messages if not wanted or chat_languages[chat_key(message)] in wanted]
