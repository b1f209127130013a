"""Split examples into train/val/test by session, so no conversation leaks across splits."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence

from replica.settings import SPLITS


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


PLACEHOLDER = re.compile(r"<[A-Z]+_\d+>")  # a masked value; its number depends on what else the dataset holds


def example_key(example: Mapping) -> str:
    """What identifies an example across two datasets of overlapping exports: when its reply was sent and what it
    says (masked values compared by kind only)."""
    return f"{example['time']}\0{PLACEHOLDER.sub(lambda m: m.group().rsplit('_', 1)[0], example['target'])}"


def kept_sessions(examples: list[dict], kept: Mapping[str, str]) -> dict[str, str]:
    """session -> split for every session holding an example whose split is `kept` (by `example_key`); a session
    holding examples of several splits goes to the last of them (test before val before train), so an example
    another dataset held out is never trained on here."""
    fixed: dict[str, str] = {}
    for example in examples if kept else ():
        split = kept.get(example_key(example))
        if split is not None and SPLITS.index(split) >= SPLITS.index(fixed.get(example["session"], SPLITS[0])):
            fixed[example["session"]] = split
    return fixed


def split_examples(examples: list[dict], fractions: Sequence[float], seed: int,
                   kept: Mapping[str, str] | None = None) -> dict[str, list[dict]]:
    """train/val/test lists of examples; an example's split is its session's split. Sessions holding an example of
    `kept` (example_key -> split, another dataset's) keep that split; the others are cut by `fractions`."""
    fixed = kept_sessions(examples, kept or {})
    sizes = Counter(example["session"] for example in examples if example["session"] not in fixed)
    assignment = {**assign_sessions(sizes, fractions, seed), **fixed}
    splits: dict[str, list[dict]] = {name: [] for name in SPLITS}
    for example in examples:
        splits[assignment[example["session"]]].append(example)
    return splits
