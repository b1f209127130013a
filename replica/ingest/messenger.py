"""Facebook Messenger / Instagram `message_N.json` parts of one thread -> Message list.

Times: `timestamp_ms` becomes naive local time in the zone the loader passes (`data.timezone`, see `fields`).
"""

from __future__ import annotations

import re
from datetime import tzinfo
from pathlib import PurePosixPath
from typing import Any

from replica.errors import ReplicaInputError
from replica.ingest.fields import Place, epoch_number, from_epoch, text_field, type_name
from replica.ingest.message import Message

UNKNOWN_SENDER = "Facebook User"

# Attachment lists/objects on a message, in priority order, and their media type.
_ATTACHMENT_KEYS = (
    ("photos", "image"),
    ("videos", "video"),
    ("gifs", "gif"),
    ("sticker", "sticker"),
    ("audio_files", "audio"),
    ("files", "document"),
    ("share", "share"),
)

# Words of the auto-generated "X sent a photo." lines (EN/IT/FR/ES) -> media type.
_SENT_WORDS = {
    "attachment": "other", "attachments": "other", "photo": "image", "photos": "image", "video": "video",
    "videos": "video", "voice message": "audio", "voice messages": "audio", "audio": "audio",
    "audio clip": "audio", "gif": "gif", "gifs": "gif", "sticker": "sticker", "stickers": "sticker",
    "link": "share", "links": "share", "file": "document", "files": "document",
    "allegato": "other", "allegati": "other", "foto": "image", "messaggio vocale": "audio",
    "messaggi vocali": "audio", "adesivo": "sticker",
    "pièce jointe": "other", "pièces jointes": "other", "vidéo": "video", "vidéos": "video",
    "message vocal": "audio", "autocollant": "sticker", "lien": "share", "fichier": "document",
    "archivo adjunto": "other", "fotos": "image", "mensaje de voz": "audio", "enlace": "share",
    "archivo": "document",
}
_SENT_LINE = re.compile(
    r"(?:sent|ha inviato|hai inviato|a envoyé|avez envoyé|envió|enviaste)\s++"
    + r"(?:(?:an?|una?|une|\d++)\s++|un')?(?P<what>"  # possessive runs: never backtracks into spaces or digits
    + "|".join(re.escape(word) for word in sorted(_SENT_WORDS, key=len, reverse=True))
    + r")\s*+\.?",
    re.IGNORECASE,
)
_SYSTEM_LINE = re.compile(
    r"(?:reacted\s.{1,20}\sto\s(?:your|a|their|his|her)\smessage"
    + r"|(?:ha|hai)\sreagito\s.{0,30}(?:al tuo|a un|al suo|al)\smessaggio"
    + r"|a\sréagi\s.{1,20}\sà\s(?:votre|un)\smessage"
    + r"|liked\sa\smessage"
    + r"|(?:ha|hai)\smesso\s.?mi piace.?\sa\sun\smessaggio)\s*\.?",
    re.IGNORECASE,
)
_UNSENT_LINE = re.compile(
    r"(?:unsent\sa\smessage|(?:ha|hai)\sannullato\sl'invio\sdi\sun\smessaggio)\s*\.?",
    re.IGNORECASE,
)
_SYSTEM_TYPES = frozenset({"Call", "Subscribe", "Unsubscribe"})


_FIX = "download the export again (Download your information, JSON)"


def looks_like_messenger(obj: Any) -> bool:
    """True for a Messenger/Instagram `message_N.json` part (classic or end-to-end-encrypted export); a part without
    `participants` counts when its messages name their sender and time."""
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        return False
    sample = obj["messages"][:20]
    if not all(isinstance(m, dict) and ("timestamp_ms" in m or ("timestamp" in m and "senderName" in m)) for m in sample):
        return False
    if "participants" in obj:
        return isinstance(obj["participants"], list)
    return bool(sample) and all("sender_name" in m or "senderName" in m for m in sample)


_E2EE_MEDIA = (  # file extension of an end-to-end-encrypted export's media uri -> classic attachment key
    ((".jpg", ".jpeg", ".png", ".webp", ".heic"), "photos"),
    ((".mp4", ".mov", ".webm"), "videos"),
    ((".mp3", ".m4a", ".aac", ".wav", ".ogg", ".opus"), "audio_files"),
    ((".gif",), "gifs"),
)


def _classic_message(raw: dict) -> dict:
    """An end-to-end-encrypted export's message (camelCase keys, 2024+) in the classic schema."""
    if "timestamp_ms" in raw:
        return raw
    out = {
        "sender_name": raw.get("senderName"),
        "timestamp_ms": raw.get("timestamp"),
        "content": raw.get("text"),
        "is_unsent": raw.get("isUnsent") is True,
    }
    media = raw.get("media")
    for item in media if isinstance(media, list) else []:
        uri = item.get("uri") if isinstance(item, dict) else item
        uri = uri.lower() if isinstance(uri, str) else ""
        key = next((k for exts, k in _E2EE_MEDIA if uri.endswith(exts)), "files")
        out.setdefault(key, []).append(item)
    return out


def repair_mojibake(text: str) -> str:
    """Undo Facebook's UTF-8-read-as-Latin-1 encoding; text that doesn't round-trip is returned unchanged."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _text(value: Any, key: str, place: Place) -> str | None:
    """A text field, type-checked, with Facebook's mojibake undone."""
    text = text_field(value, key, place)
    return repair_mojibake(text) if text else text


def parse_messenger(parts: list[dict], *, source: str, zone: tzinfo | None = None) -> list[Message]:
    """Merge the parts of one thread, drop duplicates, and return its messages oldest first."""
    chat = _chat_name(parts, source)
    seen: set[tuple] = set()
    timed: list[tuple[float, Message]] = []
    for part in parts:
        rows = []
        for index, raw in enumerate(part["messages"], 1):
            place = Place(source, f"message {index}", _FIX)
            if not isinstance(raw, dict):
                raise ReplicaInputError(f"{place.where} is {type_name(raw)}, expected an object; {_FIX}", path=source)
            rows.append(_message(_classic_message(raw), chat, zone, place))
        if len(rows) > 1 and rows[0][0] > rows[-1][0]:
            rows.reverse()  # exports list the newest message first
        for ms, message in rows:
            key = (ms, message.sender, message.actor, message.text, message.kind, message.media)
            if key not in seen:
                seen.add(key)
                timed.append((ms, message))
    timed.sort(key=lambda row: row[0])
    return [message for _, message in timed]


def _chat_name(parts: list[dict], source: str) -> str:
    """The thread's title, else its participants' names, else its folder name."""
    for part in parts:
        for key in ("title", "threadName"):
            title = _text(part.get(key), key, Place(source, "thread", _FIX))
            if title:
                return title
    names = []
    for part in parts[:1]:
        people = part.get("participants")
        place = Place(source, "participants", _FIX)
        for person in people if isinstance(people, list) else []:
            name = _text(person.get("name") if isinstance(person, dict) else person, "name", place)
            if name:
                names.append(name)
    return ", ".join(names) or PurePosixPath(source.replace("\\", "/")).parent.name or source


def _ms(raw: dict, place: Place) -> float:
    value = epoch_number(raw.get("timestamp_ms"))
    if value is None:
        raise place.error("timestamp_ms", f"is {type_name(raw.get('timestamp_ms'))}, expected a number")
    return value


def _message(raw: dict, chat: str, zone: tzinfo | None, place: Place) -> tuple[float, Message]:
    """(timestamp_ms, message) of one classic-schema message."""
    ms = _ms(raw, place)
    time = from_epoch(ms / 1000, zone)
    if time is None:
        raise place.error("timestamp_ms", "is not a time a calendar can hold")
    sender = _text(raw.get("sender_name"), "sender_name", place) or UNKNOWN_SENDER
    content = _text(raw.get("content"), "content", place) or ""
    body = _auto_line_body(content, sender)
    if raw.get("is_unsent") is True or _UNSENT_LINE.fullmatch(body):
        return ms, Message(time, sender, "", "deleted", "messenger", chat)
    sent = _SENT_LINE.fullmatch(body)
    attached = next((media for key, media in _ATTACHMENT_KEYS if raw.get(key)), None)
    if attached is not None:
        return ms, Message(time, sender, "" if sent else content, "media", "messenger", chat, media=attached)
    if sent:
        return ms, Message(time, sender, "", "media", "messenger", chat, media=_SENT_WORDS.get(sent["what"].lower(), "other"))
    if _SYSTEM_LINE.fullmatch(body) or _is_system_type(raw.get("type")) or "call_duration" in raw:
        return ms, Message(time, None, content, "system", "messenger", chat, actor=sender)
    if not content:
        return ms, Message(time, sender, "", "media", "messenger", chat, media="other")
    return ms, Message(time, sender, content, "text", "messenger", chat)
def _is_system_type(value: Any) -> bool:
    return isinstance(value, str) and value in _SYSTEM_TYPES


def _auto_line_body(content: str, sender: str) -> str:
    """The content without a leading sender name / "You", as auto lines ("Luca sent a photo.") write it."""
    text = content.strip()
    for name in (sender, sender.split(" ")[0], "You"):
        if name and text.startswith(name + " "):
            return text[len(name) + 1 :]
    return text
