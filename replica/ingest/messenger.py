"""Facebook Messenger / Instagram `message_N.json` parts of one thread -> Message list.

Times: `timestamp_ms` is converted to naive local time with `datetime.fromtimestamp`, in the machine's time
zone, or in the IANA zone named by the `REPLICA_TZ` environment variable (e.g. `REPLICA_TZ=Europe/Rome`).
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, tzinfo
from pathlib import PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from replica.errors import ReplicaInputError
from replica.ingest.message import Message

TZ_ENV = "REPLICA_TZ"
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
    r"(?:sent|ha inviato|hai inviato|a envoyé|avez envoyé|envió|enviaste)\s+"
    + r"(?:an?|una?|un'|une|\d+)?\s*(?P<what>"
    + "|".join(re.escape(word) for word in sorted(_SENT_WORDS, key=len, reverse=True))
    + r")\s*\.?",
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


def looks_like_messenger(obj: Any) -> bool:
    """True for a Messenger/Instagram `message_N.json` part (classic or end-to-end-encrypted export)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("participants"), list):
        return False
    messages = obj.get("messages")
    return isinstance(messages, list) and all(
        isinstance(m, dict) and ("timestamp_ms" in m or ("timestamp" in m and "senderName" in m)) for m in messages[:20]
    )


_E2EE_MEDIA = (  # file extension of an end-to-end-encrypted export's media uri -> classic attachment key
    ((".jpg", ".jpeg", ".png", ".webp", ".heic"), "photos"),
    ((".mp4", ".mov", ".webm"), "videos"),
    ((".mp3", ".m4a", ".aac", ".wav", ".ogg", ".opus"), "audio_files"),
    ((".gif",), "gifs"),
)


def _classic_part(part: dict) -> dict:
    """Rewrite an end-to-end-encrypted Messenger export (camelCase keys, 2024+) into the classic schema."""
    if "threadName" not in part and not any(isinstance(m, dict) and "senderName" in m for m in part.get("messages") or []):
        return part
    participants = [{"name": p} if isinstance(p, str) else p for p in part.get("participants") or []]
    return {"participants": participants, "title": part.get("threadName"), "messages": [_classic_message(m) for m in part.get("messages") or [] if isinstance(m, dict)]}


def _classic_message(raw: dict) -> dict:
    if "timestamp_ms" in raw:
        return raw
    out = {
        "sender_name": raw.get("senderName"),
        "timestamp_ms": raw.get("timestamp"),
        "content": raw.get("text") or "",
        "is_unsent": bool(raw.get("isUnsent")),
    }
    for item in raw.get("media") or []:
        uri = str(item.get("uri", "") if isinstance(item, dict) else item).lower()
        key = next((k for exts, k in _E2EE_MEDIA if uri.endswith(exts)), "files")
        out.setdefault(key, []).append(item)
    return out


def repair_mojibake(text: str) -> str:
    """Undo Facebook's UTF-8-read-as-Latin-1 encoding; text that doesn't round-trip is returned unchanged."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def parse_messenger(parts: list[dict], *, source: str) -> list[Message]:
    """Merge the parts of one thread, drop duplicates, and return its messages oldest first."""
    parts = [_classic_part(_repair_all(part)) for part in parts]
    chat = _chat_name(parts, source)
    zone = _zone()
    seen: set[str] = set()
    raws: list[dict] = []
    for part in parts:
        messages = [m for m in part.get("messages") or [] if isinstance(m, dict)]
        if len(messages) > 1 and _ms(messages[0], source) > _ms(messages[-1], source):
            messages.reverse()  # exports list the newest message first
        for raw in messages:
            key = json.dumps(raw, sort_keys=True, ensure_ascii=False)
            if key not in seen:
                seen.add(key)
                raws.append(raw)
    raws.sort(key=lambda raw: _ms(raw, source))
    return [_message(raw, chat, zone, source) for raw in raws]


def _repair_all(value: Any) -> Any:
    if isinstance(value, str):
        return repair_mojibake(value)
    if isinstance(value, list):
        return [_repair_all(item) for item in value]
    if isinstance(value, dict):
        return {key: _repair_all(item) for key, item in value.items()}
    return value


def _chat_name(parts: list[dict], source: str) -> str:
    for part in parts:
        if part.get("title"):
            return str(part["title"])
    people = parts[0].get("participants") if parts else None
    names = [p["name"] for p in people or [] if isinstance(p, dict) and p.get("name")]
    return ", ".join(names) or PurePosixPath(source.replace("\\", "/")).parent.name or source


def _zone() -> tzinfo | None:
    name = os.environ.get(TZ_ENV)
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        message = f"{TZ_ENV}={name!r} is not a known time zone; use an IANA name such as Europe/Rome"
        raise ReplicaInputError(message) from err


def _ms(raw: dict, source: str) -> int:
    value = raw.get("timestamp_ms")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReplicaInputError("a message has no numeric 'timestamp_ms'; download the export again", path=source)
    return int(value)


def _message(raw: dict, chat: str, zone: tzinfo | None, source: str) -> Message:
    time = datetime.fromtimestamp(_ms(raw, source) / 1000, zone).replace(tzinfo=None)
    sender = raw.get("sender_name") or UNKNOWN_SENDER
    content = raw.get("content") if isinstance(raw.get("content"), str) else ""
    body = _auto_line_body(content, sender)
    if raw.get("is_unsent") or _UNSENT_LINE.fullmatch(body):
        return Message(time, sender, "", "deleted", "messenger", chat)
    sent = _SENT_LINE.fullmatch(body)
    attached = next((media for key, media in _ATTACHMENT_KEYS if raw.get(key)), None)
    if attached is not None:
        return Message(time, sender, "" if sent else content, "media", "messenger", chat, media=attached)
    if sent:
        return Message(time, sender, "", "media", "messenger", chat, media=_SENT_WORDS[sent["what"].lower()])
    if _SYSTEM_LINE.fullmatch(body) or raw.get("type") in _SYSTEM_TYPES or "call_duration" in raw:
        return Message(time, sender, content, "system", "messenger", chat)
    if not content:
        return Message(time, sender, "", "media", "messenger", chat, media="other")
    return Message(time, sender, content, "text", "messenger", chat)


def _auto_line_body(content: str, sender: str) -> str:
    """The content without a leading sender name / "You", as auto lines ("Luca sent a photo.") write it."""
    text = content.strip()
    for name in (sender, sender.split(" ")[0], "You"):
        if name and text.startswith(name + " "):
            return text[len(name) + 1 :]
    return text
