"""Turns (merge gap), sessions (session gap, never across chats) and context-window examples."""

from __future__ import annotations

from datetime import datetime, timedelta

from replica.ingest.message import Message
from replica.prepare.examples import build_examples
from replica.prepare.turns import build_sessions, chat_labels

T0 = datetime(2024, 5, 1, 9, 0)
ME = {"Marco", "Marco B."}


def msg(minutes: float, sender: str, text: str, chat: str = "Luca", platform: str = "whatsapp") -> Message:
    return Message(T0 + timedelta(minutes=minutes), sender, text, "text", platform, chat)


def sessions_of(messages, merge=10, gap=6):
    return build_sessions(messages, ME, merge_gap_minutes=merge, session_gap_hours=gap)


def test_merge_gap_joins_one_senders_messages_into_a_turn():
    (session,) = sessions_of([
        msg(0, "Luca", "ciao"), msg(5, "Luca", "ci sei?"), msg(20, "Luca", "?"),  # 15 min after the previous: new turn
        msg(21, "Marco", "sì"), msg(22, "Marco B.", "scusa"),  # the user's aliases are one sender
        msg(23, "Anna", "eccomi"),
    ])
    assert [(t.role, t.text) for t in session.turns] == [
        ("them", "ciao\nci sei?"), ("them", "?"), ("me", "sì\nscusa"), ("them", "eccomi"),
    ]
    assert session.turns[0].start == T0 and session.turns[0].end == T0 + timedelta(minutes=5)


def test_session_gap_splits_and_sessions_never_cross_chats():
    sessions = sessions_of([
        msg(0, "Luca", "a"), msg(60 * 6, "Marco", "b"),  # exactly 6 h: same session
        msg(60 * 12 + 1, "Luca", "c"),  # > 6 h: new session
        msg(1, "Anna", "d", chat="Anna"), msg(2, "Marco", "e", chat="Anna"),
    ])
    assert [(s.id, [t.text for t in s.turns]) for s in sessions] == [
        ("Anna#1", ["d", "e"]), ("Luca#1", ["a", "b"]), ("Luca#2", ["c"]),
    ]


def test_chat_labels_are_unique_and_renamed():
    labels = chat_labels([("whatsapp", "Luca Ferri"), ("telegram", "Luca Ferri"), ("whatsapp", "Gita")],
                         rename=lambda name: name.replace("Luca Ferri", "<NAME_1>"))
    assert labels == {("telegram", "Luca Ferri"): "<NAME_1>", ("whatsapp", "Luca Ferri"): "<NAME_1> (whatsapp)",
                      ("whatsapp", "Gita"): "Gita"}


def long_session():
    return sessions_of([msg(i, "Marco" if i % 2 else f"Luca{i % 4}", f"t{i}") for i in range(40)])


def test_one_example_per_user_turn_with_a_previous_turn():
    sessions = sessions_of([msg(0, "Marco", "first"), msg(1, "Luca", "x"), msg(2, "Marco", "y"),
                            msg(3, "Marco B.", "z", chat="Other")])
    examples = build_examples(sessions, context_min=1, context_max=3, seed=0)
    assert examples == [{
        "context": [{"role": "me", "text": "first"}, {"role": "them", "text": "x"}],
        "target": "y", "session": "Luca#1", "time": "2024-05-01T09:02:00", "language": "und", "chat": "Luca",
        "relationship": "other", "group": False,
    }]


def test_context_lengths_stay_within_bounds_and_are_seeded():
    examples = build_examples(long_session(), context_min=2, context_max=4, seed=3)
    lengths = [len(example["context"]) for example in examples]
    assert len(examples) == 20
    assert lengths[0] == 1  # the first user turn has only one previous turn
    assert all(2 <= n <= 4 for n in lengths[1:]) and {2, 3, 4} <= set(lengths)
    for example in examples:  # the context is the turns right before the target
        index = int(example["target"][1:])
        expected = [f"t{i}" for i in range(index - len(example["context"]), index)]
        assert [c["text"] for c in example["context"]] == expected
    assert build_examples(long_session(), context_min=2, context_max=4, seed=3) == examples
    assert build_examples(long_session(), context_min=2, context_max=4, seed=4) != examples
