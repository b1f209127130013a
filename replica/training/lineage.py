"""A run continued from another (`from_run=RUN`): its settings, its dataset, its adapter and its feedback.

- Settings: RUN's recorded overrides come first on the command line, so RUN's settings hold unless overridden.
- Data: RUN's exports plus any new `data.exports` (a message in both is counted once by the overlap check), built
  as a new content-addressed dataset whose examples that RUN's dataset held keep their split there
  (`data.keep_splits_of`): RUN's test examples stay held out, so before/after comparisons stay honest.
- Weights: the new run's LoRA starts from RUN's exported adapter; optimizer and schedule start fresh, at
  `from_run_lr_scale` times the learning rate (a trained adapter is knocked back by a fresh warm-up to full rate).
- Feedback: RUN's corrections (and replies marked good) become weighted train examples (`feedback.weight`), repeated
  to make up `feedback.share` of the train rows, and with `feedback.preference=true` correction-over-reply pairs for
  a DPO loss; they are fixed for the run in `<run>/feedback/learned.jsonl` (private, like the store), so a resumed
  run learns exactly the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from replica.atomic import read_jsonl, write_jsonl
from replica.errors import ReplicaInputError
from replica.feedback.store import FEEDBACK_DIR, FeedbackStore
from replica.model.run_dir import RunInfo, inspect_run
from replica.prepare.pipeline import run_dataset
from replica.prepare.store import read_run_record

FROM_RUN = "from_run"
LEARNED_FILE = "learned.jsonl"  # the parent's feedback this run learns, fixed when it starts
NOT_INHERITED = ("from_run", "ckpt_path", "hydra", "data.keep_splits_of")  # overrides a child never takes over
SAME_SHAPE = ("lora.r", "lora.target_modules", "lora.train_new_tokens", "model.name_or_path", "data.format")


def with_parent_overrides(argv: Sequence[str]) -> list[str]:
    """The command line with `from_run`'s recorded overrides first (train.py calls it before Hydra starts)."""
    given = [arg.partition("=")[2] for arg in argv if arg.partition("=")[0].lstrip("+") == FROM_RUN]
    if not given or given[-1] in ("", "null"):
        return list(argv)
    saved = Path(given[-1]).expanduser() / ".hydra" / "overrides.yaml"
    try:
        recorded = yaml.safe_load(saved.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError):
        raise ReplicaInputError(f"{FROM_RUN}: no readable .hydra/overrides.yaml; pass a run folder train.py printed",
                                path=str(saved.parents[1])) from None
    inherited = [arg for arg in recorded if isinstance(arg, str) and not _not_inherited(arg)]
    return [*inherited, *argv]


def _not_inherited(override: str) -> bool:
    key = override.partition("=")[0].lstrip("+~")
    return any(key == name or key.startswith(name + ".") or key.startswith(name + "/") for name in NOT_INHERITED)


@dataclass(frozen=True)
class Parent:
    """The run a run continues from."""

    info: RunInfo

    @property
    def adapter_dir(self) -> Path:
        return self.info.adapter_dir

    def base_path(self, cfg: DictConfig) -> str | None:
        """The parent's own base where this run would build another: a tiny model is built from its run's train
        split, so a continued run with new chats reuses its parent's build (None: the base is named, the same)."""
        if not cfg.model.get("tiny"):
            return None
        built = Path(str(self.info.meta.get("base_model", "")))
        if not (built / "config.json").is_file():
            raise ReplicaInputError(f"{FROM_RUN}: the parent's tiny base model is gone from the cache "
                                    f"({built.name or 'not recorded'}); train a new run without from_run")
        return str(built)


def continue_from(cfg: DictConfig) -> Parent | None:
    """For `from_run=RUN`: check that RUN's adapter fits this run, and point `data` at RUN's exports plus the new
    ones, with RUN's dataset keeping its splits (in place, before the run's config is recorded)."""
    if not cfg.get(FROM_RUN):
        return None
    info = inspect_run(cfg[FROM_RUN])
    record = read_run_record(info.run_dir)
    _check_same_shape(cfg, info.config)
    dataset = run_dataset(info.run_dir, log=lambda line: None)
    exports = list(dict.fromkeys([*record["data"]["exports"], *(str(Path(p).expanduser().resolve())
                                                                  for p in cfg.data.exports)]))
    with open_dict(cfg):
        cfg[FROM_RUN] = str(info.run_dir.resolve())
        cfg.data.exports = exports
        cfg.data.keep_splits_of = str(dataset.dir)
        cfg.optimizer.lr = float(cfg.optimizer.lr) * float(cfg.get("from_run_lr_scale", 1.0))
    return Parent(info)


def _check_same_shape(cfg: DictConfig, parent: dict[str, Any]) -> None:
    differing = []
    for key in SAME_SHAPE:
        mine, theirs = OmegaConf.select(cfg, key), _select(parent, key)
        if isinstance(mine, (DictConfig, ListConfig)):
            mine = OmegaConf.to_container(mine, resolve=True)
        if mine != theirs:
            differing.append(f"{key}={mine!r} (the parent's: {theirs!r})")
    if differing:
        raise ReplicaInputError(f"{FROM_RUN}: {', '.join(differing)}; a continued run keeps its parent's adapter "
                                "shape, base and format: drop these overrides, or train a new run without from_run")


def _select(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def learned_feedback(run_dir: Path, parent: Parent | None, cfg: DictConfig) -> list[dict]:
    """The feedback examples this run learns: fixed in `<run>/feedback/learned.jsonl` when it first starts (the
    parent's own learned feedback, then its store), read back from there on resume. Rows: context, target,
    relationship, group, and `rejected` (the replica's reply) for a correction."""
    saved = run_dir / FEEDBACK_DIR / LEARNED_FILE
    if saved.is_file():
        return read_jsonl(saved)
    if parent is None:
        return []
    rows = _parent_learned(parent)
    for entry in FeedbackStore.of_run(parent.info.run_dir, parent.info.config).entries():
        if entry.good and not cfg.feedback.include_good:
            continue
        row = {"context": entry.context, "target": entry.reply if entry.good else entry.correction,
               "relationship": entry.relationship, "group": entry.group}
        if not entry.good:
            row["rejected"] = entry.reply
        rows.append(row)
    saved.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_jsonl(saved, rows)
    saved.chmod(0o600)
    return rows


def _parent_learned(parent: Parent) -> list[dict]:
    path = parent.info.run_dir / FEEDBACK_DIR / LEARNED_FILE
    return read_jsonl(path) if path.is_file() else []


def feedback_examples(rows: list[dict], weight: float, share: float, chat_examples: int) -> list[dict]:
    """Feedback rows as train examples of loss weight `weight`, each repeated as often as needed for feedback to be
    about `share` of the train rows (at least once each): a handful of corrections among thousands of chat replies
    would otherwise be met once an epoch, or not at all in a short continued run. None at weight 0."""
    if weight <= 0 or not rows:
        return []
    repeats = max(1, math.ceil(share * chat_examples / ((1 - share) * len(rows)))) if share > 0 else 1
    return [{**row, "weight": weight} for _ in range(repeats) for row in rows]
