"""DiscordChatExporter JSON (one channel, DM or group DM per file) -> Message list.

- Sender: the author's `nickname` (server nickname / display name), else `name`.
- Time: `timestamp` as exported (the exporter's local wall-clock time; its UTC offset is dropped).
- `Default` and `Reply` messages are words; every other type (calls, pins, joins, renames...) is a system line
  with `sender=None` and the author as `actor`. Bots' messages are marked `forwarded` (not a person's own words).
- Attachments and stickers make a media message with the text as caption; a message with neither text nor
  attachments (embed only) is media "share".
- Owner: the export does not name who exported it, but a DM's channel name lists the *other* participants
  (DiscordChatExporter joins the recipients' display names with ", "): the one author of a direct chat who is
  not listed there is the owner.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from replica.errors import ReplicaInputError
from replica.ingest.attachments import media_of_file
from replica.ingest.message import Message

WORD_TYPES = frozenset({"Default", "Reply"})
DIRECT_KINDS = frozenset({"DirectTextChat", "DirectGroupTextChat"})
DM_GUILD = "Direct Messages"
UNKNOWN_AUTHOR = "Deleted User"


def looks_like_discord(obj: Any) -> bool:
    """True for a DiscordChatExporter JSON export: `guild`, `channel` and a `messages` list."""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("guild"), dict)
        and isinstance(obj.get("channel"), dict)
        and isinstance(obj.get("messages"), list)
    )


def parse_discord(obj: dict, *, source: str) -> tuple[list[Message], set[str]]:
    """The channel's messages in file order and the owner's names when the export implies them."""
    chat = _chat_name(obj)
    raws = _unique([raw for raw in obj["messages"] if isinstance(raw, dict)])
    messages = [_message(raw, chat, source) for raw in raws]
    return messages, _owners(obj, raws)


def _unique(raws: list[dict]) -> list[dict]:
    """Drop repeats of a message id (the exporter writes a message again when a page boundary repeats it)."""
    seen: set[str] = set()
    unique = []
    for raw in raws:
        key = str(raw.get("id")) if raw.get("id") is not None else None
        if key is None or key not in seen:
            unique.append(raw)
            if key is not None:
                seen.add(key)
    return unique


def _chat_name(obj: dict) -> str:
    guild, channel = obj["guild"], obj["channel"]
    name = str(channel.get("name") or channel.get("id") or "Discord channel")
    guild_name = guild.get("name")
    if guild_name and guild_name != DM_GUILD and not _is_direct(channel):
        return f"{guild_name} #{name}"
    return name


def _is_direct(channel: dict) -> bool:
    return isinstance(channel.get("type"), str) and channel["type"] in DIRECT_KINDS


def _author(raw: dict) -> dict:
    return raw["author"] if isinstance(raw.get("author"), dict) else {}


def _sender(author: dict) -> str:
    return next((name for name in _names(author)), UNKNOWN_AUTHOR)


def _names(author: dict) -> list[str]:
    """The author's nickname and user name, where they are non-empty strings."""
    return [name for name in (author.get("nickname"), author.get("name")) if isinstance(name, str) and name]


def _is_words(raw: dict) -> bool:
    """A person's message (`Default`, `Reply`) rather than a system event; a missing type counts as `Default`."""
    kind = raw.get("type", "Default")
    return isinstance(kind, str) and kind in WORD_TYPES


def _message(raw: dict, chat: str, source: str) -> Message:
    time = _time(raw, source)
    author = _author(raw)
    text = raw["content"] if isinstance(raw.get("content"), str) else ""
    if not _is_words(raw):
        return Message(time, None, text, "system", "discord", chat, actor=_sender(author) if author else None)
    media = _media(raw)
    if media is None and not text.strip():
        media = "share"  # embeds only (a link card, a bot's rich message)
    return Message(
        time,
        _sender(author),
        text,
        "text" if media is None else "media",
        "discord",
        chat,
        edited=bool(raw.get("timestampEdited")),
        forwarded=bool(author.get("isBot")),
        media=media,
    )


def _media(raw: dict) -> str | None:
    if raw.get("stickers"):
        return "sticker"
    attachments = raw.get("attachments")
    for attachment in attachments if isinstance(attachments, list) else []:
        if isinstance(attachment, dict):
            return media_of_file(str(attachment.get("fileName") or attachment.get("url") or ""))
    return None


def _time(raw: dict, source: str) -> datetime:
    try:
        return datetime.fromisoformat(raw["timestamp"]).replace(tzinfo=None)
    except (KeyError, TypeError, ValueError) as err:
        raise ReplicaInputError(
            f"message id {raw.get('id', '?')} has no valid 'timestamp'; export the channel again with "
            "DiscordChatExporter in JSON format",
            path=source,
        ) from err


def _owners(obj: dict, raws: list[dict]) -> set[str]:
    """The one human author of a direct chat whose name the channel name (the other participants) does not list."""
    channel = obj["channel"]
    if not _is_direct(channel) or not isinstance(channel.get("name"), str):
        return set()
    listed = {name.strip() for name in channel["name"].split(", ")}
    authors: dict[str, dict] = {}
    for raw in raws:
        author = _author(raw)
        if _is_words(raw) and author.get("id") is not None:
            authors.setdefault(str(author["id"]), author)
    unlisted = [a for a in authors.values() if not a.get("isBot") and not set(_names(a)) & listed]
    named_recipients = channel["type"] == "DirectTextChat" or len(unlisted) < len(authors)
    if len(unlisted) != 1 or not named_recipients:
        return set()
    return set(_names(unlisted[0]))
