"""Who each chat is with, as a relationship label (never a name), and stable pseudonyms for group speakers.

`data.relationships` maps a contact or a chat, as `replica senders` shows them, to a free label
(`{Mum: family, 'Jake Miller': friend}`). A chat listed by its title takes that label; a 1:1 chat takes its
contact's label; an unlisted group chat is `group` and an unlisted 1:1 chat is `other`. Names are compared as
`name_key`s (`replica.config.hide_relationship_names` replaces them before anything is written), so a config
holding keys instead of names matches the same chats.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from replica.errors import ReplicaInputError
from replica.ingest.message import Message
from replica.prepare.identity import display_name
from replica.prepare.language import chat_key
from replica.privacy import name_key, normalize_name

GROUP, OTHER = "group", "other"
LABEL_PATTERN = re.compile(r"[a-z0-9][a-z0-9 _-]{0,23}")
_SHOWN = 12
_TRAILING_NUMBER = re.compile(r"\s*\+?\d[\d\s().-]{5,}$")


@dataclass(frozen=True, slots=True)
class Relation:
    label: str
    group: bool


def check_labels(relationships: Mapping[str, str]) -> dict[str, str]:
    """The mapping with labels lowercased and checked: short words, never empty, never a line break."""
    checked: dict[str, str] = {}
    for name, label in relationships.items():
        value = " ".join(str(label).lower().split())
        if not LABEL_PATTERN.fullmatch(value):
            raise ReplicaInputError(
                f"data.relationships: the label given for entry {len(checked) + 1} must be 1-24 letters, digits, "
                "spaces, '-' or '_' starting with a letter or digit, e.g. family, friend, work"
            )
        checked[str(name)] = value
    return checked


def contact_pseudonyms(messages: Iterable[Message], me_senders: set[str]) -> dict[str, str]:
    """`contact_1`, `contact_2`, ... for every other sender, ranked by message count then name: a function of the data."""
    counts = Counter(message.sender for message in messages if message.sender and message.sender not in me_senders)
    ranked = sorted(counts, key=lambda sender: (-counts[sender], normalize_name(sender), sender))
    return {sender: f"contact_{rank}" for rank, sender in enumerate(ranked, start=1)}


def chat_relations(
    messages: Iterable[Message], me_senders: set[str], relationships: Mapping[str, str]
) -> dict[tuple[str, str], Relation]:
    """The relation of every (platform, chat); one error line when a name in `relationships` matches nothing."""
    others: dict[tuple[str, str], set[str]] = {}
    for message in messages:
        key = chat_key(message)
        people = others.setdefault(key, set())
        if message.sender is not None and message.sender not in me_senders:
            people.add(message.sender)
    wanted = {name_key(name): label for name, label in check_labels(relationships).items()}
    titles = {key for _, chat in others for key in title_keys(chat)}
    senders = {name_key(sender) for people in others.values() for sender in people}
    unknown = [key for key in wanted if key not in titles | senders]
    if unknown:
        raise ReplicaInputError(_unknown_names_line(len(unknown), others))
    if any(name_key(label) in titles | senders for label in wanted.values()):
        raise ReplicaInputError(
            "data.relationships: a label equals a sender's or a chat's name, and the model must never see names; "
            "use a relationship word such as family, friend, work or partner"
        )
    relations = {}
    for key, people in others.items():
        group = len(people) > 1
        label = next((wanted[k] for k in title_keys(key[1]) if k in wanted), None)
        if label is None and not group and people:
            label = wanted.get(name_key(next(iter(people))))
        relations[key] = Relation(label or (GROUP if group else OTHER), group)
    return relations


def title_keys(title: str) -> list[str]:
    """The name keys a chat title answers to: the title, and the title without a trailing phone number
    ("Ornella Sarti +39 348 222 3344" is also "Ornella Sarti")."""
    bare = _TRAILING_NUMBER.sub("", title)
    return [name_key(title), *([name_key(bare)] if bare and bare != title else [])]


def _unknown_names_line(unknown: int, others: Mapping[tuple[str, str], set[str]]) -> str:
    counts = Counter(sender for people in others.values() for sender in people)
    senders = ", ".join(display_name(sender) for sender, _ in counts.most_common(_SHOWN)) or "none"
    chats = ", ".join(sorted({display_name(chat) for _, chat in others})[:_SHOWN]) or "none"
    return (
        f"data.relationships: {unknown} of its names match no sender and no chat of the exports (case and accents "
        f"ignored); senders found: {senders}; chats found: {chats} — use names as `replica senders` shows them"
    )
