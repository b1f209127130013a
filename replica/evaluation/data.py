"""What an evaluation reads: the run's dataset splits, a seeded held-out sample, and what both sides are scored against."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from replica.atomic import read_jsonl
from replica.errors import ReplicaInputError
from replica.prepare.store import read_run_record

log = logging.getLogger(__name__)


def load_split(dataset_dir: str | Path, split: str) -> list[dict]:
    """Examples of one split of a prepared dataset folder; a clear error when it is missing or empty."""
    path = Path(dataset_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise ReplicaInputError(f"the {split} split is missing; delete this dataset folder to rebuild it",
                                path=str(path))
    rows = read_jsonl(path)
    if not rows:
        raise ReplicaInputError(f"the {split} split has no examples; use another eval.split", path=str(path))
    return rows


def sample_examples(rows: Sequence[dict], max_examples: int | None, seed: int) -> list[dict]:
    """At most `max_examples` rows, a seeded sample kept in file order (the same rows on every run)."""
    if max_examples is None or len(rows) <= max_examples:
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), max_examples))
    return [rows[index] for index in keep]


def leak_secrets(data_cfg: Mapping) -> tuple[set[str] | None, str | None]:
    """(raw personal values of the run's exports, None) or (None, why they can't be read). Never persisted."""
    from replica.prepare.pipeline import private_values

    exports = list(data_cfg.get("exports") or [])
    gone = [path for path in exports if not Path(path).exists()]
    if not exports or gone:
        return None, "pii_leaks not measured: the run's exports (data.exports) are no longer on disk"
    try:
        return private_values(data_cfg), None
    except ReplicaInputError as err:
        return None, f"pii_leaks not measured: {err}"


@dataclass
class Reference:
    """What both sides are scored against: held-out examples plus what the train split teaches about the user."""

    examples: list[dict]
    memorization: Any  # memorization.Memorization of the train split's replies
    user_vocab: list[str]
    secrets: set[str] | None

    @property
    def contexts(self) -> list[list[dict]]:
        return [example["context"] for example in self.examples]

    @property
    def targets(self) -> list[str]:
        return [example["target"] for example in self.examples]

    @property
    def prompts(self) -> list[str]:
        """The message being answered: the last context turn's text ("" without context)."""
        return [example["context"][-1]["text"] if example["context"] else "" for example in self.examples]

    @property
    def languages(self) -> list[str | None]:
        return [example.get("language") for example in self.examples]


def user_and_other_texts(train_rows: Sequence[dict]) -> tuple[list[str], list[str]]:
    """Distinct texts of the user (targets and `me` context turns) and of everyone else (`them` turns)."""
    user: dict[str, None] = {}
    other: dict[str, None] = {}
    for row in train_rows:
        user[row["target"]] = None
        for turn in row["context"]:
            (user if turn["role"] == "me" else other)[turn["text"]] = None
    return list(user), list(other)


def build_reference(
    examples: list[dict], train_rows: Sequence[dict], secrets: set[str] | None, max_indexed_chars: int, seed: int
) -> Reference:
    """The Reference of `examples`: the train split's replies indexed for copies, the user's distinctive words."""
    from replica.evaluation.memorization import Memorization
    from replica.evaluation.style import distinctive_words

    user, other = user_and_other_texts(train_rows)
    memorization = Memorization([row["target"] for row in train_rows], max_indexed_chars, seed)
    return Reference(examples, memorization, distinctive_words(user, other), secrets)


def replies_by_label(rows: Sequence[dict]) -> dict[str, list[str]]:
    """The real replies of `rows` grouped by relationship label (rows without one are left out)."""
    replies: dict[str, list[str]] = {}
    for row in rows:
        if row.get("relationship"):
            replies.setdefault(row["relationship"], []).append(row["target"])
    return replies


@dataclass
class HeldOut:
    """The run's held-out sample as a Reference, with where it came from (for the report's header)."""

    reference: Reference
    dataset_key: str
    split_size: int
    train_size: int
    pii_note: str | None
    train_replies: dict[str, list[str]]  # the train split's real replies per relationship label


def read_held_out(run_dir: Path, cfg: DictConfig) -> HeldOut:
    """Exactly the run's dataset (rebuilt and verified if gone), sampled as `cfg.eval` says, as a HeldOut."""
    from replica.prepare.pipeline import run_dataset

    dataset = run_dataset(run_dir, log=log.info)
    split_rows = load_split(dataset.dir, cfg.eval.split)
    train_rows = load_split(dataset.dir, "train")
    examples = sample_examples(split_rows, cfg.eval.max_examples, cfg.seed)
    secrets, pii_note = leak_secrets(read_run_record(run_dir)["data"])  # exports as absolute paths
    reference = build_reference(examples, train_rows, secrets, cfg.memorization.max_indexed_chars, cfg.seed)
    return HeldOut(reference, dataset.key, len(split_rows), len(train_rows), pii_note, replies_by_label(train_rows))
