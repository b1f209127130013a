"""Tokenizing chat text shared by the metrics: words, tokens (words + symbols + emoji) and emoji sequences."""

from __future__ import annotations

import re
from collections.abc import Sequence

_EMOJI_BASE = "\U0001F000-\U0001FAFF\u2600-\u27BF\u2300-\u23FF\u2B00-\u2BFF"
_EMOJI_MODIFIER = "\U0001F3FB-\U0001F3FF\uFE0F"
_EMOJI_UNIT = f"[{_EMOJI_BASE}][{_EMOJI_MODIFIER}]*"
_FLAG = "[\U0001F1E6-\U0001F1FF]{2}"
EMOJI = re.compile(f"{_FLAG}|{_EMOJI_UNIT}(?:\u200d{_EMOJI_UNIT})*")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_TOKEN = re.compile(f"{EMOJI.pattern}|{_WORD.pattern}|[^\\w\\s]")


def emojis(text: str) -> list[str]:
    """Emoji in order of appearance; a ZWJ sequence or a flag is one emoji, the variation selector is dropped."""
    return [match.replace("\ufe0f", "") for match in EMOJI.findall(text)]


def words(text: str) -> list[str]:
    """Lowercased words (letters and digits, inner apostrophes kept: "l'amico", "don't")."""
    return [word.lower() for word in _WORD.findall(text)]


def tokens(text: str) -> list[str]:
    """Lowercased words, emoji and single punctuation marks, in order."""
    return [token.replace("\ufe0f", "").lower() for token in _TOKEN.findall(text)]


def require_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    """Paired metrics need one reference per prediction."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
