"""Keep the user's and contacts' own words: drop system/deleted/forwarded lines, turn media into short tags."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

from replica.ingest.message import Message
from replica.settings import require


def media_tag(media: str | None) -> str:
    """`<image>`, `<video>`, …; media of unknown type become `<media>`."""
    return f"<{media}>" if media and media != "other" else "<media>"


def clean_messages(messages: Iterable[Message], *, media: str = "tag") -> tuple[list[Message], Counter[str]]:
    """Return the kept messages (media as "<image> caption" or dropped) and the drop counts by reason."""
    require("data.media", media)
    kept: list[Message] = []
    dropped: Counter[str] = Counter()
    for message in messages:
        reason = _drop_reason(message, media)
        if reason:
            dropped[reason] += 1
        elif message.kind == "media":
            caption = message.text.strip()
            tagged = f"{media_tag(message.media)} {caption}" if caption else media_tag(message.media)
            kept.append(replace(message, text=tagged))
        else:
            kept.append(message)
    return kept, dropped


def _drop_reason(message: Message, media: str) -> str | None:
    if message.kind in ("system", "deleted"):
        return message.kind
    if message.sender is None:
        return "system"
    if message.forwarded:
        return "forwarded"
    if message.kind == "media":
        return "media" if media == "drop" else None
    if not message.text.strip():
        return "empty"
    return None
