"""Cleaning: system/deleted/forwarded lines go, media become short tags (or go), text stays."""

from __future__ import annotations

from datetime import datetime

from replica.ingest.message import Message
from replica.prepare.clean import clean_messages


def msg(text: str, kind: str = "text", *, sender: str | None = "Luca", media: str | None = None,
        forwarded: bool = False) -> Message:
    return Message(datetime(2024, 1, 1), sender, text, kind, "whatsapp", "chat", forwarded=forwarded, media=media)


MESSAGES = [
    msg("ciao"),
    msg("Luca added Anna", "system", sender=None),
    msg("", "deleted"),
    msg("look at this", forwarded=True),
    msg("", "media", media="image"),
    msg("al mare!", "media", media="video"),
    msg("", "media", media="sticker"),
    msg("", "media", media="audio"),
    msg("   "),
]


def test_tag_mode_keeps_media_as_tags_with_captions():
    kept, dropped = clean_messages(MESSAGES, media="tag")
    assert [m.text for m in kept] == ["ciao", "<image>", "<video> al mare!", "<sticker>", "<audio>"]
    assert dropped == {"system": 1, "deleted": 1, "forwarded": 1, "empty": 1}
    assert MESSAGES[4].text == ""  # inputs are not mutated


def test_drop_mode_removes_media():
    kept, dropped = clean_messages(MESSAGES, media="drop")
    assert [m.text for m in kept] == ["ciao"]
    assert dropped["media"] == 4


def test_forwarded_media_is_dropped_too():
    kept, dropped = clean_messages([msg("", "media", media="image", forwarded=True)])
    assert kept == [] and dropped == {"forwarded": 1}
