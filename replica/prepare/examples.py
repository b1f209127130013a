"""One training example per user turn: the target is the user's turn, the context its previous turns."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from replica.prepare.turns import ME, Session, Turn


def build_examples(
    sessions: Iterable[Session],
    *,
    context_min: int,
    context_max: int,
    seed: int,
    speakers: Mapping[str, str] | None = None,
) -> list[dict]:
    """Examples for every user turn with >= 1 previous turn in its session; the context length is drawn per example
    between context_min and context_max (fewer when the session has fewer previous turns).

    Each session draws from its own generator seeded by (seed, session id), so adding or removing a chat does not
    change the other chats' examples. Every example names its relationship label; in a group chat, the other
    people's turns carry their pseudonym (`speakers`: sender -> `contact_n`), never their name.
    """
    examples = []
    for session in sessions:
        rng = random.Random(f"{seed}:{session.id}")
        for index, turn in enumerate(session.turns):
            if turn.role != ME or index == 0:
                continue
            length = rng.randint(context_min, context_max)
            context = session.turns[max(0, index - length):index]
            examples.append({
                "context": [_context_turn(previous, session.group, speakers or {}) for previous in context],
                "target": turn.text,
                "session": session.id,
                "time": turn.start.isoformat(timespec="seconds"),
                "language": session.language,
                "chat": session.chat,
                "relationship": session.relationship,
                "group": session.group,
            })
    return examples


def _context_turn(turn: Turn, group: bool, speakers: Mapping[str, str]) -> dict:
    row = {"role": turn.role, "text": turn.text}
    if group and turn.role != ME:
        row["speaker"] = speakers[turn.sender]
    return row
