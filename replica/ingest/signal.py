"""Signal Desktop chats exported as text by signal-export (`<chat>/chat.md`) -> Message list.

Layout, one message per header, continuation lines belong to the message above:
    [2019-05-29, 15:04] Me: How is everyone?          (older signal-export)
    [2023-02-11 09:12:40] Aya: We're great!           (current; every body ends with two spaces)
Outgoing messages are written with the sender "Me" (the owner). Inside a body signal-export writes a quote as
"> " lines after an empty line, attachments as `![name](./media/file)` / `[name](./media/file)`, stickers as
`(( emoji ))` or a link into `exported_stickers/`, reactions as a last `(- Name: emoji -)` line, and calls and
deleted messages as fixed English phrases.

A WhatsApp iOS export in a locale with ISO dates looks alike (`[2023-02-11 09:12:40] Aya: text`), so a file is
read as Signal only with evidence WhatsApp never writes: a `.md` name, the old `[YYYY-MM-DD, HH:MM]` header
(WhatsApp iOS always writes seconds), the two trailing spaces, or signal-export's attachment/reaction lines.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import PurePosixPath

from replica.errors import ReplicaInputError
from replica.ingest.attachments import media_of_file
from replica.ingest.message import Message

OWNER = "Me"  # signal-export's sender name for the owner's own messages
DELETED = "(This message was deleted)"

_HEADER = re.compile(
    r"^\[(?P<date>\d{4}-\d{2}-\d{2})(?P<sep>, | )(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?\] "
    r"(?P<sender>[^\n]+?):(?: (?P<rest>[^\n]*))?$",
    re.MULTILINE,
)
_LINK = re.compile(r"(?P<image>!?)\[(?P<name>[^\]\n]*)\]\((?P<path>(?:\.\.?/)[^)\s]+)\)[ \t]*")
_STICKER_LINE = re.compile(r"^\(\( (?P<emoji>.*) \)\)$")
_REACTIONS_LINE = re.compile(r"^\(- .* -\)$")
_CALL = re.compile(
    r"^(?:(?:Incoming|Outgoing|Missed) (?:voice |video )?call(?: \([^)\n]*\))?)$"
)
_SAMPLE_LINES = 200
_SAMPLE_CHARS = 64 * 1024  # only the head of a file is looked at
_MIN_HEADER_SHARE = 0.25  # quotes, reactions and multi-line bodies add lines between headers
_MIN_SPACED_SHARE = 0.5  # messages (per header) whose last line ends with signal-export's two spaces


def looks_like_signal(text: str, name: str) -> bool:
    """True when the file opens with Signal headers and carries evidence that WhatsApp never writes."""
    head = text[: _SAMPLE_CHARS].lstrip("\ufeff").splitlines()[:_SAMPLE_LINES]
    lines = [line for line in head if line.strip()]
    if not lines or not _HEADER.match(lines[0]):
        return False
    headers = [match for line in lines if (match := _HEADER.match(line))]
    own_lines = [line for line in lines if not line.startswith(">") and not _REACTIONS_LINE.match(line)]
    if len(headers) < _MIN_HEADER_SHARE * len(own_lines):  # quoted and reaction lines are signal-export's own
        return False
    if PurePosixPath(name.replace("\\", "/")).suffix.lower() == ".md":
        return True
    if any(match["sep"] == ", " and match["second"] is None for match in headers):
        return True
    if sum(line.endswith("  ") for line in lines) >= _MIN_SPACED_SHARE * len(headers):
        return True
    return any(_LINK.search(line) or _REACTIONS_LINE.match(line) for line in lines)


def parse_signal(text: str, *, source: str) -> tuple[list[Message], set[str]]:
    """Messages of one signal-export chat file in file order, and {"Me"} when the owner wrote any."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    chat = signal_chat_name(source)
    messages: list[Message] = []
    headers = list(_HEADER.finditer(text))
    for index, match in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        body = (match["rest"] or "") + text[match.end() : end].rstrip("\n")
        try:
            messages.append(_message(match, body, chat))
        except ValueError:  # month 13, day 31 of a 30-day month, hour 25 ...
            raise ReplicaInputError(
                "impossible date or time in a message header; fix the line or export the chat again",
                path=source, line=text.count("\n", 0, match.start()) + 1,
            ) from None
    owners = {OWNER} if any(message.sender == OWNER for message in messages) else set()
    return messages, owners


def signal_chat_name(source: str) -> str:
    """signal-export writes `<chat name>/chat.md`: the folder names the chat; any other file its own stem."""
    pieces = [piece for part in source.split("!") for piece in PurePosixPath(part.replace("\\", "/")).parts]
    stem = PurePosixPath(pieces[-1]).stem if pieces else source
    if stem.lower() == "chat" and len(pieces) > 1:
        return pieces[-2]
    return stem


def _message(match: re.Match, body: str, chat: str) -> Message:
    time = datetime(
        *map(int, match["date"].split("-")), int(match["hour"]), int(match["minute"]), int(match["second"] or 0)
    )
    sender = match["sender"]
    lines = _drop_quote(body.split("\n"))
    lines = [line for line in lines if not _REACTIONS_LINE.match(line.strip())]
    stickers = [found["emoji"] for line in lines if (found := _STICKER_LINE.match(line.strip()))]
    lines = [line for line in lines if not _STICKER_LINE.match(line.strip())]
    joined = "\n".join(line.rstrip() for line in lines)
    media = [_link_media(link) for link in _LINK.finditer(joined)]
    caption = _LINK.sub("", joined).strip()
    if caption == DELETED and not media:
        return Message(time, sender, "", "deleted", "signal", chat)
    if _CALL.match(caption) and not media:
        return Message(time, None, caption, "system", "signal", chat, actor=sender)
    if stickers:
        media.insert(0, "sticker")
    if media:
        return Message(time, sender, caption, "media", "signal", chat, media=media[0])
    return Message(time, sender, caption, "text", "signal", chat)


def _drop_quote(lines: list[str]) -> list[str]:
    """Remove the quoted message signal-export puts first: empty line(s), "> " lines, one empty line."""
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start == 0 or start >= len(lines) or not lines[start].startswith(">"):
        return lines
    end = start
    while end < len(lines) and lines[end].startswith(">"):
        end += 1
    if end < len(lines) and not lines[end].strip():
        end += 1
    return lines[end:]


def _link_media(link: re.Match) -> str:
    if "exported_stickers/" in link["path"]:
        return "sticker"
    return "image" if link["image"] else media_of_file(link["path"])
