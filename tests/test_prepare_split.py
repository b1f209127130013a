"""Splitting by session: seeded, reproducible, no session in two splits, ~80/10/10, non-empty val/test."""

from __future__ import annotations

from collections import Counter

from replica.prepare.split import assign_sessions, split_examples


def examples_for(sizes: dict[str, int]) -> list[dict]:
    return [{"session": session, "target": f"{session}/{i}"} for session, n in sizes.items() for i in range(n)]


def test_many_sessions_split_about_80_10_10_without_sharing_sessions():
    sizes = {f"chat{c}#{s}": 1 + (c * 7 + s) % 9 for c in range(20) for s in range(50)}
    splits = split_examples(examples_for(sizes), [0.8, 0.1, 0.1], seed=1)
    total = sum(sizes.values())
    shares = {name: len(rows) / total for name, rows in splits.items()}
    assert abs(shares["train"] - 0.8) < 0.02 and abs(shares["val"] - 0.1) < 0.02 and abs(shares["test"] - 0.1) < 0.02
    owners = {}
    for name, rows in splits.items():
        for row in rows:
            assert owners.setdefault(row["session"], name) == name
    assert sum(len(rows) for rows in splits.values()) == total


def test_split_is_seeded_and_reproducible():
    sizes = Counter({f"s{i}": 1 + i % 5 for i in range(200)})
    assert assign_sessions(sizes, [0.8, 0.1, 0.1], seed=5) == assign_sessions(sizes, [0.8, 0.1, 0.1], seed=5)
    assert assign_sessions(sizes, [0.8, 0.1, 0.1], seed=5) != assign_sessions(sizes, [0.8, 0.1, 0.1], seed=6)


def test_three_sessions_fill_every_split():
    for seed in range(20):
        assignment = assign_sessions(Counter({"a#1": 50, "a#2": 3, "b#1": 1}), [0.8, 0.1, 0.1], seed=seed)
        assert sorted(assignment.values()) == ["test", "train", "val"]


def test_zero_fraction_split_stays_empty():
    assignment = assign_sessions(Counter({f"s{i}": 2 for i in range(10)}), [0.9, 0.1, 0.0], seed=0)
    assert "test" not in assignment.values() and "val" in assignment.values()
