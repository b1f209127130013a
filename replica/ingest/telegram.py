"""Telegram Desktop `result.json` (one chat or the full account export) -> Message list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from replica.errors import ReplicaInputError
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


def looks_like_telegram(obj: Any) -> bool:
    """True for a single-chat export or a full account export."""
    if not isinstance(obj, dict):
        return False
    for key in ("chats", "left_chats"):
        if isinstance(obj.get(key), dict) and isinstance(obj[key].get("list"), list):
            return True
    return isinstance(obj.get("messages"), list) and "id" in obj and "type" in obj and "participants" not in obj


def parse_telegram(obj: dict, *, source: str) -> tuple[list[Message], set[str]]:
    """Messages of every chat in the export (file order) and the owner names it declares."""
    owner_id, owners = _owner(obj.get("personal_information"))
    messages: list[Message] = []
    for chat in _chats(obj):
        chat_name = _chat_name(chat)
        for raw in chat.get("messages") or []:
            if not isinstance(raw, dict):
                continue
            messages.append(_message(raw, chat_name, source))
            if owner_id is not None and raw.get("from_id") == owner_id and raw.get("from"):
                owners.add(raw["from"])
    return messages, owners


def _chats(obj: dict) -> list[dict]:
    if "messages" in obj:
        return [obj]
    chats: list[dict] = []
    for key in ("chats", "left_chats"):
        section = obj.get(key)
        if isinstance(section, dict):
            chats.extend(chat for chat in section.get("list") or [] if isinstance(chat, dict))
    return chats


def _owner(info: Any) -> tuple[str | None, set[str]]:
    """(`from_id` of the owner's messages, owner names) from `personal_information`."""
    if not isinstance(info, dict):
        return None, set()
    owners = set()
    full_name = " ".join(part for part in (info.get("first_name"), info.get("last_name")) if part).strip()
    if full_name:
        owners.add(full_name)
    username = (info.get("username") or "").lstrip("@")
    if username:
        owners.add(username)
    user_id = info.get("user_id")
    return (f"user{user_id}" if user_id is not None else None), owners


def _chat_name(chat: dict) -> str:
    if chat.get("name"):
        return str(chat["name"])
    if chat.get("type") == "saved_messages":
        return "Saved Messages"
    return f"Telegram chat {chat.get('id', '?')}"


def _message(raw: dict, chat: str, source: str) -> Message:
    time = _time(raw, source)
    text = _text(raw)
    if raw.get("type") == "service":
        return Message(time, raw.get("actor"), text, "system", "telegram", chat)
    media = _media(raw)
    kind = "media" if media is not None else "text"
    if media is None and not text:
        kind, media = "media", "other"  # a message with neither text nor known media (unsupported content)
    return Message(
        time,
        raw.get("from") or DELETED_ACCOUNT,
        text,
        kind,
        "telegram",
        chat,
        edited="edited" in raw or "edited_unixtime" in raw,
        forwarded="forwarded_from" in raw or "via_bot" in raw,
        media=media,
    )


def _time(raw: dict, source: str) -> datetime:
    try:
        return datetime.fromisoformat(raw["date"]).replace(tzinfo=None)
    except (KeyError, TypeError, ValueError) as err:
        raise ReplicaInputError(
            f"message id {raw.get('id', '?')} has no valid 'date'; export the chat again from Telegram Desktop",
            path=source,
        ) from err


def _text(raw: dict) -> str:
    """Join the plain-text pieces and entity texts exactly as sent (no spaces added)."""
    parts = raw["text_entities"] if isinstance(raw.get("text_entities"), list) else raw.get("text", "")
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        return ""
    return "".join(_piece(part) for part in parts)


def _piece(part: Any) -> str:
    if isinstance(part, str):
        return part
    return str(part.get("text", "")) if isinstance(part, dict) else ""


def _media(raw: dict) -> str | None:
    if raw.get("media_type"):
        return _MEDIA_TYPES.get(raw["media_type"], "other")
    for key, media in _MEDIA_KEYS:
        if key in raw:
            return media
    return None
