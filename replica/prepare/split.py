"""Split examples into train/val/test by session, so no conversation leaks across splits."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

SPLITS = ("train", "val", "test")


def assign_sessions(sizes: Counter[str], fractions: Sequence[float], seed: int) -> dict[str, str]:
    """Map each session id to a split: sessions shuffled with `seed`, then cut where the cumulative number of
    examples crosses the fractions. With >= 3 sessions every split with a positive fraction gets at least one."""
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    total = sum(sizes.values()) or 1
    bounds = [sum(fractions[: index + 1]) for index in range(len(SPLITS))]
    assignment: dict[str, str] = {}
    seen = 0
    for session in order:
        middle = (seen + sizes[session] / 2) / total  # where the session's centre falls
        assignment[session] = next((name for name, bound in zip(SPLITS, bounds) if middle < bound), SPLITS[-1])
        seen += sizes[session]
    if len(order) >= len(SPLITS):
        _fill_empty_splits(assignment, sizes, fractions)
    return assignment


def _fill_empty_splits(assignment: dict[str, str], sizes: Counter[str], fractions: Sequence[float]) -> None:
    """Move the smallest session of the most populated split into each empty split that should not be empty."""
    for name, fraction in zip(SPLITS, fractions):
        members = Counter(assignment.values())
        if fraction <= 0 or members[name]:
            continue
        donor = max(SPLITS, key=lambda split: (members[split], -SPLITS.index(split)))
        moved = min((session for session, split in assignment.items() if split == donor),
                    key=lambda session: (sizes[session], session))
        assignment[moved] = name


def split_examples(examples: list[dict], fractions: Sequence[float], seed: int) -> dict[str, list[dict]]:
    """train/val/test lists of examples; an example's split is its session's split."""
    assignment = assign_sessions(Counter(example["session"] for example in examples), fractions, seed)
    splits: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for example in examples:
        splits[assignment[example["session"]]].append(example)
    return splits
