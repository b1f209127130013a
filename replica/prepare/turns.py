"""Group a chat's messages into turns (one sender, short gaps) and sessions (split at long silences)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from replica.ingest.message import Message
from replica.prepare.language import UNKNOWN, chat_key
from replica.prepare.relationships import OTHER, Relation

ME, THEM = "me", "them"


@dataclass(slots=True)
class Turn:
    role: str  # ME or THEM
    sender: str | None  # None for the user (all their aliases), else the raw sender
    text: str
    start: datetime
    end: datetime


@dataclass(slots=True)
class Session:
    id: str  # "<chat label>#<n>", n counting from 1 within the chat
    chat: str
    language: str
    turns: list[Turn] = field(default_factory=list)
    relationship: str = "other"  # the label the model sees for who this chat is with
    group: bool = False


def chat_labels(keys: Iterable[tuple[str, str]], rename: Callable[[str], str] = str) -> dict[tuple[str, str], str]:
    """A unique, printable label per (platform, chat) key; `rename` masks names in chat titles."""
    labels: dict[tuple[str, str], str] = {}
    taken: set[str] = set()
    for platform, chat in sorted(keys):
        label = rename(chat)
        if label in taken:
            label = f"{label} ({platform})"
        base, n = label, 1
        while label in taken:
            n += 1
            label = f"{base} {n}"
        taken.add(label)
        labels[(platform, chat)] = label
    return labels


def build_sessions(
    messages: Iterable[Message],
    me_senders: set[str],
    *,
    merge_gap_minutes: float,
    session_gap_hours: float,
    labels: Mapping[tuple[str, str], str] | None = None,
    languages: Mapping[tuple[str, str], str] | None = None,
    relations: Mapping[tuple[str, str], Relation] | None = None,
) -> list[Session]:
    """Sessions of every chat, in chat order then time order; sessions never cross chats."""
    by_chat: dict[tuple[str, str], list[Message]] = defaultdict(list)
    for message in messages:
        by_chat[chat_key(message)].append(message)
    merge_gap, session_gap = timedelta(minutes=merge_gap_minutes), timedelta(hours=session_gap_hours)
    sessions: list[Session] = []
    for key in sorted(by_chat):
        label = labels[key] if labels else key[1]
        language = languages.get(key, UNKNOWN) if languages else UNKNOWN
        relation = relations[key] if relations else Relation(OTHER, False)
        previous: Message | None = None
        number = 0
        for message in sorted(by_chat[key], key=lambda item: item.time):
            if previous is None or message.time - previous.time > session_gap:
                number += 1
                sessions.append(Session(f"{label}#{number}", label, language, [], relation.label, relation.group))
            turns = sessions[-1].turns
            role = ME if message.sender in me_senders else THEM
            sender = None if role == ME else message.sender  # the user's aliases are one sender
            last = turns[-1] if turns else None
            if last and (last.role, last.sender) == (role, sender) and message.time - last.end <= merge_gap:
                last.text += "\n" + message.text
                last.end = message.time
            else:
                turns.append(Turn(role, sender, message.text, message.time, message.time))
            previous = message
    return sessions

