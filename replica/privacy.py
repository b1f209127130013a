"""File names as logs, console lines and error messages show them: without the contact names and numbers they hold.

Exports are named after people: `WhatsApp Chat with Giovanna Verdi +39 347 111 2233.txt`, Messenger's
`inbox/giovannaverdi_1015…/`. `display_path` keeps the path's shape and masks its personal parts with placeholders
that are stable within the process: a WhatsApp chat title becomes `<NAME_n>` words and `<PHONE_n>` numbers, a
Messenger thread folder `<NAME_n>_<id>`, a Signal chat folder (the one holding `chat.md`) `<NAME_n>`, a
DiscordChatExporter file `Direct Messages - <NAME_n> [<id>].json`, and phone numbers and e-mails anywhere in the
path are masked too.
"""

from __future__ import annotations

import os
import re
from functools import cache, partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a path is shown (see `_masker`)
    from replica.prepare.pii import PiiMasker

_SEPARATORS = re.compile(r"([/\\!])")
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}$")
_THREAD_FOLDER = re.compile(r"^([^\W\d_]+)_(\d{5,})$")  # Messenger/Instagram: <name>_<thread id>
_WORDS = re.compile(r"[^\W\d_](?:[\w'’.-]*[^\W_])?(?:\s+[^\W\d_](?:[\w'’.-]*[^\W_])?)*")
_PLACEHOLDER = re.compile(r"(<[A-Z]+_\d+>)")
_DISCORD_FILE = re.compile(r"^(.+?) - (.+) (\[\d+\](?:\.json)?)$")  # DiscordChatExporter: <where> - <channel> [id]
_SIGNAL_CHAT_FILE = "chat.md"  # signal-export names each chat's folder after the contact or group



@cache
def _masker():
    """One masker for the process (no contact names: numbers, e-mails, URLs), imported only when a path is shown
    (`replica parse` stays free of the config stack)."""
    from replica.prepare.pii import PiiMasker

    return PiiMasker()


def display_path(path: str) -> str:
    """`path` with the personal parts of its file and folder names masked."""
    parts = _SEPARATORS.split(str(path))
    shown = []
    for index, part in enumerate(parts):
        if part in ("/", "\\", "!"):
            shown.append(part)
        elif part and index + 2 < len(parts) and _is_signal_chat_folder(parts, index):
            shown.append(_mask_title(part))
        else:
            shown.append(_display_part(part))
    return "".join(shown)


def _is_signal_chat_folder(parts: list[str], index: int) -> bool:
    """The folder at parts[index] is a signal-export chat: the path goes on to its `chat.md`, or the folder holds one."""
    if parts[index + 2] == _SIGNAL_CHAT_FILE:
        return True
    if "!" in parts[: index + 1]:  # inside a zip: nothing on disk to look at
        return False
    return os.path.isfile(os.path.join("".join(parts[: index + 1]) or os.sep, _SIGNAL_CHAT_FILE))


def _display_part(part: str) -> str:
    from replica.ingest import whatsapp_chat_name  # the ingest package shows its paths through this module

    if not part:
        return part
    discord = _DISCORD_FILE.match(part)
    if discord:
        return f"{discord.group(1)} - {_mask_title(discord.group(2))} {discord.group(3)}"
    suffix_match = _SUFFIX.search(part)
    suffix = suffix_match.group() if suffix_match else ""
    stem = part[: len(part) - len(suffix)]
    chat = whatsapp_chat_name(part)
    if chat != stem and stem.endswith(chat):
        return stem[: len(stem) - len(chat)] + _mask_title(chat) + suffix
    thread = _THREAD_FOLDER.match(part)
    if thread:
        return f"{_masker().placeholder('NAME', thread.group(1).casefold(), thread.group(1))}_{thread.group(2)}"
    return _masker().mask(part)


def _mask_title(title: str) -> str:
    """A chat title in a file name, masked by the process's own masker."""
    return mask_title(title, _masker())


def mask_title(title: str, masker: PiiMasker) -> str:
    """A chat title is a person or a group named by people: what `masker` finds masked, then every run of words."""
    pieces = _PLACEHOLDER.split(masker.mask(title))
    name = partial(_name, masker)
    return "".join(piece if _PLACEHOLDER.fullmatch(piece) else _WORDS.sub(name, piece) for piece in pieces)


def _name(masker: PiiMasker, match: re.Match) -> str:
    words = match.group()
    return masker.placeholder("NAME", " ".join(words.casefold().split()), words)
