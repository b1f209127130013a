"""The normalized message every parser emits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

KINDS = ("text", "media", "system", "deleted")
PLATFORMS = ("whatsapp", "telegram", "messenger", "signal", "discord")
# Normalized media types (`Message.media`); parsers map localized placeholders onto these.
MEDIA_TYPES = (
    "image", "video", "audio", "sticker", "gif", "document", "location", "contact", "poll", "share", "other",
)


@dataclass(slots=True)
class Message:
    time: datetime  # naive, local time as exported
    sender: str | None  # None for system lines (their actor, if any, is in `actor`)
    text: str  # for media: caption if any, else ""; never the localized placeholder
    kind: str  # one of KINDS
    platform: str  # one of PLATFORMS
    chat: str  # chat/thread name (file stem or title)
    edited: bool = False
    forwarded: bool = False  # forwarded or sent via a bot: not the sender's own words
    media: str | None = None  # one of MEDIA_TYPES when kind == "media"
    actor: str | None = None  # who caused a system line ("X joined", "X called"), when the export names them
    source: str = field(default="", compare=False)  # display name of the file it was read from (not written)

    def to_json(self) -> dict:
        time = self.time
        row = {
            "time": time.isoformat(timespec="seconds") if time.microsecond else time.isoformat(),  # same text, faster
            "sender": self.sender,
            "text": self.text,
            "kind": self.kind,
            "platform": self.platform,
            "chat": self.chat,
            "edited": self.edited,
            "forwarded": self.forwarded,
        }
        if self.media is not None:
            row["media"] = self.media
        if self.actor is not None:
            row["actor"] = self.actor
        return row
