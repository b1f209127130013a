"""Decide which senders are the user: `data.me` names/aliases plus the owners the exports declare."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from replica.errors import ReplicaInputError
from replica.ingest.message import Message
from replica.privacy import INVISIBLE, normalize_name

_SHOWN_SENDERS = 12


def display_name(name: str) -> str:
    """The sender name without direction marks, `~` and extra whitespace, accents and case kept."""
    return " ".join(INVISIBLE.sub(" ", unicodedata.normalize("NFKC", name)).split())


def sender_counts(messages: Iterable[Message]) -> Counter[str]:
    return Counter(message.sender for message in messages if message.sender is not None)


def resolve_me(messages: Sequence[Message], me: Sequence[str], owners: Iterable[str] = ()) -> set[str]:
    """Return the raw sender strings that are the user; raise a one-line error listing the senders if none match."""
    wanted = {normalize_name(name) for name in [*me, *owners]} - {""}
    counts = sender_counts(messages)
    matched = {sender for sender in counts if normalize_name(sender) in wanted}
    if matched:
        return matched
    ranked = counts.most_common()
    shown = ", ".join(f"{display_name(sender)} ({count})" for sender, count in ranked[:_SHOWN_SENDERS])
    if len(ranked) > _SHOWN_SENDERS:
        shown += f", ... and {len(ranked) - _SHOWN_SENDERS} more"
    example = display_name(ranked[0][0]) if ranked else "Your Name"
    problem = f"data.me={list(me)} matches no sender" if me else "data.me is empty and the exports name no owner"
    raise ReplicaInputError(
        f"{problem}; senders found: {shown or 'none'} — set data.me to your name(s), e.g. data.me=\"['{example}']\""
    )
