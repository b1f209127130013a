"""Telegram Desktop `result.json` (one chat or the full account export) -> Message list."""

from __future__ import annotations

import math
from datetime import datetime, tzinfo
from typing import Any

from replica.errors import ReplicaInputError
from replica.ingest.fields import (
    Place,
    epoch_number,
    from_epoch,
    text_field,
    type_name,
    valid_text,
)
from replica.ingest.message import Message

DELETED_ACCOUNT = "Deleted Account"

_MEDIA_TYPES = {
    "sticker": "sticker",
    "video_file": "video",
    "video_message": "video",
    "voice_message": "audio",
    "audio_file": "audio",
    "animation": "gif",
}
# Keys that mark a non-text message, checked after `media_type`, in this order.
_MEDIA_KEYS = (
    ("photo", "image"),
    ("file", "document"),
    ("location_information", "location"),
    ("contact_information", "contact"),
    ("poll", "poll"),
    ("game_title", "other"),
    ("invoice_information", "other"),
)


_FIX = "export the chat again from Telegram Desktop (Export chat history, JSON)"


def looks_like_telegram(obj: Any) -> bool:
    """True for a full account export, a single-chat export, or a bare `messages` list of Telegram messages."""
    if not isinstance(obj, dict):
        return False
    for key in ("chats", "left_chats"):
        if isinstance(obj.get(key), dict) and isinstance(obj[key].get("list"), list):
            return True
    messages = obj.get("messages")
    if not isinstance(messages, list) or "participants" in obj:
        return False
    return ("id" in obj and "type" in obj) or _telegram_messages(messages)


def _telegram_messages(messages: list) -> bool:
    """Telegram messages carry `date` or `date_unixtime`, and `text`, `from` or `actor`."""
    sample = messages[:20]
    return bool(sample) and all(
        isinstance(m, dict) and ("date" in m or "date_unixtime" in m) and ("text" in m or "from" in m or "actor" in m)
        for m in sample
    )


def parse_telegram(obj: dict, *, source: str, zone: tzinfo | None = None) -> tuple[list[Message], set[str]]:
    """Messages of every chat in the export (file order) and the owner names it declares."""
    owner_id, owners = _owner(obj.get("personal_information"), Place(source, "personal_information", _FIX))
    messages: list[Message] = []
    for chat_place, chat in _chats(obj, source):
        chat_name = _chat_name(chat)
        raws = chat.get("messages")
        if not isinstance(raws, list):
            raise chat_place.error("messages", f"is {type_name(raws)}, expected a list")
        for index, raw in enumerate(raws, 1):
            place = Place(source, f"{chat_place.where} message {index}{_id_of(raw)}", _FIX)
            if not isinstance(raw, dict):
                raise ReplicaInputError(f"{place.where} is {type_name(raw)}, expected an object; {_FIX}", path=source)
            message = _message(raw, chat_name, zone, place)
            messages.append(message)
            if owner_id is not None and raw.get("from_id") == owner_id and message.sender != DELETED_ACCOUNT:
                owners.add(message.sender)
    return messages, owners


def _id_of(raw: Any) -> str:
    value = raw.get("id") if isinstance(raw, dict) else None
    return f" (id {value})" if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**18 else ""


def _chats(obj: dict, source: str) -> list[tuple[Place, dict]]:
    """(place, chat) of a single-chat export, or of every chat of a full export."""
    if "messages" in obj:
        return [(Place(source, "chat", _FIX), obj)]
    chats: list[tuple[Place, dict]] = []
    for key in ("chats", "left_chats"):
        section = obj.get(key)
        if section is None:
            continue
        listed = section.get("list") if isinstance(section, dict) else None
        if not isinstance(listed, list):
            raise ReplicaInputError(f"'{key}.list' is {type_name(listed)}, expected a list; {_FIX}", path=source)
        for index, chat in enumerate(listed, 1):
            place = Place(source, f"{key} #{index}", _FIX)
            if not isinstance(chat, dict):
                raise ReplicaInputError(f"{place.where} is {type_name(chat)}, expected an object; {_FIX}", path=source)
            chats.append((place, chat))
    return chats


def _owner(info: Any, place: Place) -> tuple[str | None, set[str]]:
    """(`from_id` of the owner's messages, owner names) from `personal_information`."""
    if info is None:
        return None, set()
    if not isinstance(info, dict):
        raise ReplicaInputError(f"'personal_information' is {type_name(info)}, expected an object; {place.fix}",
                                path=place.source)
    owners = set()
    names = (text_field(info.get(key), key, place) for key in ("first_name", "last_name"))
    full_name = " ".join(name for name in names if name).strip()
    if full_name:
        owners.add(full_name)
    username = (text_field(info.get("username"), "username", place) or "").lstrip("@")
    if username:
        owners.add(username)
    user_id = text_field(info.get("user_id"), "user_id", place)
    return (f"user{user_id}" if user_id else None), owners


def _chat_name(chat: dict) -> str:
    """The chat's `name` (a number is read as text); unnamed chats get a stable label."""
    name = chat.get("name")
    if isinstance(name, str) and name.strip():
        return valid_text(name)
    if isinstance(name, (int, float)) and not isinstance(name, bool) and math.isfinite(name):
        return str(name)
    if chat.get("type") == "saved_messages":
        return "Saved Messages"
    chat_id = chat.get("id")
    return f"Telegram chat {chat_id if isinstance(chat_id, int) and not isinstance(chat_id, bool) else '?'}"


def _message(raw: dict, chat: str, zone: tzinfo | None, place: Place) -> Message:
    time = _time(raw, zone, place)
    text = _text(raw, place)
    kind = raw.get("type")
    if kind is not None and not isinstance(kind, str):
        raise place.error("type", f"is {type_name(kind)}, expected text")
    if kind == "service":
        return Message(time, None, text, "system", "telegram", chat, actor=text_field(raw.get("actor"), "actor", place))
    media = _media(raw, place)
    kind = "media" if media is not None else "text"
    if media is None and not text:
        kind, media = "media", "other"  # a message with neither text nor known media (unsupported content)
    return Message(
        time,
        text_field(raw.get("from"), "from", place) or DELETED_ACCOUNT,
        text,
        kind,
        "telegram",
        chat,
        edited="edited" in raw or "edited_unixtime" in raw,
        forwarded="forwarded_from" in raw or "via_bot" in raw,
        media=media,
    )


def _time(raw: dict, zone: tzinfo | None, place: Place) -> datetime:
    """`date` (the exporter's wall clock), else `date_unixtime` in local time (REPLICA_TZ)."""
    date = raw.get("date")
    if isinstance(date, str) and len(date) < 64:
        try:
            return datetime.fromisoformat(date).replace(tzinfo=None)
        except ValueError:
            pass
    seconds = epoch_number(raw.get("date_unixtime"))
    time = from_epoch(seconds, zone) if seconds is not None else None
    if time is None:
        raise place.error("date", "is missing or not a valid time, and so is 'date_unixtime'")
    return time


def _text(raw: dict, place: Place) -> str:
    """Join the entity texts (else the plain-text pieces) exactly as sent (no spaces added)."""
    entities = raw.get("text_entities")
    if entities is not None and not isinstance(entities, list):
        raise place.error("text_entities", f"is {type_name(entities)}, expected a list")
    return _joined(entities, "text_entities", place) or _joined(raw.get("text"), "text", place)


def _joined(value: Any, key: str, place: Place) -> str:
    """A text, or a list of texts and `{"type": ..., "text": ...}` entities (one entity alone too), joined."""
    pieces = value if isinstance(value, list) else [value]
    texts = (text_field(piece.get("text") if isinstance(piece, dict) else piece, key, place) for piece in pieces)
    return "".join(text for text in texts if text)


def _media(raw: dict, place: Place) -> str | None:
    media_type = raw.get("media_type")
    if media_type is not None and not isinstance(media_type, str):
        raise place.error("media_type", f"is {type_name(media_type)}, expected text")
    if media_type:
        return _MEDIA_TYPES.get(media_type, "other")
    for key, media in _MEDIA_KEYS:
        if key in raw:
            return media
    return None
