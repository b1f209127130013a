"""Export file names: the chat a WhatsApp file is named after, and a path with the personal parts of its names masked.

Exports are named after people: `WhatsApp Chat with Giovanna Verdi +39 347 111 2233.txt`, Messenger's
`inbox/giovannaverdi_1015…/`. `mask_export_path` keeps the path's shape and masks its personal parts with the masker
it is given: a WhatsApp chat title becomes `<NAME_n>` words and `<PHONE_n>` numbers, a Messenger thread folder
`<NAME_n>_<id>`, a Signal chat folder (the one holding `chat.md`) `<NAME_n>`, a DiscordChatExporter file
`Direct Messages - <NAME_n> [<id>].json`, and what the masker finds anywhere else in the path (numbers, e-mails).
"""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath

from replica.privacy import Masker, mask_title

# "WhatsApp Chat with Luca", "Chat WhatsApp con Luca", "WhatsApp Chat - Luca" (iOS zip), ...
_WHATSAPP_PREFIX = re.compile(
    r"^(?:whats\s?app[- ]chat|chat\s+(?:de\s+|do\s+)?whats\s?app|discussion\s+whats\s?app|"
    r"conversa\s+do\s+whats\s?app|whats\s?app[- ]gesprek)\s*(?:with|con|avec|mit|com|met|-|–|—)\s+",
    re.IGNORECASE,
)
_IOS_STEM = "_chat"  # iOS names every export _chat.txt; the chat name is on its zip
_SEPARATORS = re.compile(r"([/\\!])")
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}$")
_THREAD_FOLDER = re.compile(r"^([^\W\d_]+)_(\d{5,})$")  # Messenger/Instagram: <name>_<thread id>
_DISCORD_FILE = re.compile(r"^(.+?) - (.+) (\[\d+\](?:\.json)?)$")  # DiscordChatExporter: <where> - <channel> [id]
_SIGNAL_CHAT_FILE = "chat.md"  # signal-export names each chat's folder after the contact or group
_DIGEST = re.compile(r"[0-9a-f]{16,}(?:-[0-9a-f]{8,})*")  # Replica's content-addressed folders: a digit run is no phone


def whatsapp_chat_name(name: str) -> str:
    """Chat name from the file name ('WhatsApp Chat with Luca.txt' -> 'Luca'); '_chat.txt' uses its zip/folder."""
    pieces = [piece for part in name.split("!") for piece in PurePosixPath(part.replace("\\", "/")).parts]
    stems = [PurePosixPath(piece).stem for piece in pieces]
    stem = stems[-1]
    if stem.lower() == _IOS_STEM and len(stems) > 1:
        stem = stems[-2]
    return _WHATSAPP_PREFIX.sub("", stem).strip() or stem


def mask_export_path(path: str, masker: Masker) -> str:
    """`path` with the personal parts of its file and folder names masked by `masker`."""
    parts = _SEPARATORS.split(str(path))
    shown = []
    for index, part in enumerate(parts):
        if part in ("/", "\\", "!"):
            shown.append(part)
        elif part and index + 2 < len(parts) and _is_signal_chat_folder(parts, index):
            shown.append(mask_title(part, masker))
        else:
            shown.append(_mask_part(part, masker))
    return "".join(shown)


def _is_signal_chat_folder(parts: list[str], index: int) -> bool:
    """The folder at parts[index] is a signal-export chat: the path goes on to its `chat.md`, or the folder holds one."""
    if parts[index + 2] == _SIGNAL_CHAT_FILE:
        return True
    if "!" in parts[: index + 1]:  # inside a zip: nothing on disk to look at
        return False
    return os.path.isfile(os.path.join("".join(parts[: index + 1]) or os.sep, _SIGNAL_CHAT_FILE))


def _mask_part(part: str, masker: Masker) -> str:
    """One file or folder name: an export's title masked as a chat title, anything else as text."""
    if not part or _DIGEST.fullmatch(part):
        return part
    discord = _DISCORD_FILE.match(part)
    if discord:
        return f"{discord.group(1)} - {mask_title(discord.group(2), masker)} {discord.group(3)}"
    suffix_match = _SUFFIX.search(part)
    suffix = suffix_match.group() if suffix_match else ""
    stem = part[: len(part) - len(suffix)]
    chat = whatsapp_chat_name(part)
    if chat != stem and stem.endswith(chat):
        return stem[: len(stem) - len(chat)] + mask_title(chat, masker) + suffix
    thread = _THREAD_FOLDER.match(part)
    if thread:
        return f"{masker.placeholder('NAME', thread.group(1).casefold(), thread.group(1))}_{thread.group(2)}"
    return masker.mask(part)
