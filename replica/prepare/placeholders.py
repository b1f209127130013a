"""Safety net for app-written text no locale table knows ("suspected placeholders").

- A one-line `<…>` text message that two or more senders sent identically (`<Medya dahil edilmedi>`,
  `<Media weggelaten>`) is an app placeholder, not anyone's words: it becomes a media message of type "other".
- The identical short messages most repeated across senders are reported so a user sees what slipped through.
  Privacy: a `<…>` placeholder is shown as written (apps write those, people rarely do); any other text is shown
  only as its *shape* - letters as `x`/`X`, digits as `9`, spaces, punctuation and emoji kept - so
  `Bu mesaj silindi` appears as `Xx xxxxx xxxxxxx` and `IMG-0042.jpg (dosya ekli)` as
  `XXX-9999.xxx (xxxxx xxxx)`: recognisable as a notice, never readable as words, names or numbers.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace

from replica.ingest.message import Message

PLACEHOLDER = re.compile(r"<[^<>\n]+>")
MIN_SENDERS = 2  # a text only counts when this many different senders sent it identically
MAX_SHORT_CHARS = 40  # longer messages are never placeholders
TOP = 10  # rows in the report
MIN_REPORTED = 3  # other repeated texts are reported from this many messages on


def mark_placeholders(messages: Sequence[Message]) -> tuple[list[Message], list[dict]]:
    """Messages with cross-sender `<…>` placeholders turned into media, and the report of suspected placeholders."""
    counts: Counter[str] = Counter()
    senders: dict[str, set[str]] = defaultdict(set)
    for message in messages:
        text = _short_text(message)
        if text is not None:
            counts[text] += 1
            senders[text].add(message.sender)
    shared = {text: count for text, count in counts.items() if len(senders[text]) >= MIN_SENDERS}
    placeholders = {text for text in shared if PLACEHOLDER.fullmatch(text)}
    marked = [
        replace(message, kind="media", media="other", text="") if _short_text(message) in placeholders else message
        for message in messages
    ]
    reported = [(text, count) for text, count in shared.items() if text in placeholders or count >= MIN_REPORTED]
    ranked = sorted(reported, key=lambda item: (-item[1], -len(senders[item[0]]), shape(item[0])))[:TOP]
    report = [
        {
            "shown": text if text in placeholders else shape(text),
            "placeholder": text in placeholders,
            "messages": count,
            "senders": len(senders[text]),
        }
        for text, count in ranked
    ]
    return marked, report


def shape(text: str) -> str:
    """`Bu mesaj 42` -> `Xx xxxxx 99`: letters and digits hidden, layout and symbols kept."""
    return "".join(
        ("X" if char.isupper() else "x") if char.isalpha() else "9" if char.isdigit() else char for char in text
    )


def _short_text(message: Message) -> str | None:
    if message.kind != "text" or message.sender is None:
        return None
    text = message.text.strip()
    if not text or "\n" in text or len(text) > MAX_SHORT_CHARS:
        return None
    return text
