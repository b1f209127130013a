"""What `evaluate.py` checks before Hydra starts or anything heavy loads: override keys, settings, the run folder."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from replica.devices import DEVICES, is_device
from replica.errors import ReplicaInputError
from replica.model.run_dir import RunInfo, inspect_run
from replica.prepare.store import read_run_record
from replica.settings import BOOLEAN, SPLITS, Rule, is_int, one_of, whole

EVALUATE_RULES: dict[str, Rule] = {
    "eval.split": one_of(SPLITS),
    "eval.max_examples": Rule(lambda v: v is None or (is_int(v) and v >= 1), "an integer >= 1, or null for the whole split"),
    "eval.batch_size": whole(1),
    "eval.device": Rule(is_device, DEVICES),
    "eval.quantized": BOOLEAN,
    "eval.parent": Rule(lambda v: v in ("auto", True, False), "auto, true or false"),
    "decoding.samples": whole(1),
    "decoding.greedy": BOOLEAN,
    "intervals.resamples": whole(100),
    "memorization.max_indexed_chars": whole(1),
    "relationships.min_examples": whole(2),
    "relationships.fidelity": BOOLEAN,
    "relationships.min_train_replies": whole(2),
}


def precheck(argv: Sequence[str]) -> RunInfo:
    """Valid override keys, a run_dir given, every setting in range, and a complete run with its dataset record."""
    from replica.config import check_overrides, compose

    check_overrides("evaluate", argv)
    cfg = compose("evaluate", [a for a in argv if not a.startswith("-")], output_dir=".")
    if OmegaConf.is_missing(cfg, "run_dir") or not cfg.run_dir:
        raise ReplicaInputError("run_dir is required: python evaluate.py run_dir=logs/train/runs/<date>")
    problems = setting_problems(cfg)
    if problems:
        raise ReplicaInputError("invalid config: " + "; ".join(problems))
    info = inspect_run(cfg.run_dir)
    read_run_record(info.run_dir)
    return info


def setting_problems(cfg: DictConfig) -> list[str]:
    """Every evaluate.py setting that is out of range, as `key=value must be ...` lines (the sampling keys through
    the generation section's own rules)."""
    from replica.config import key_problems, sampling_problems

    decoding = OmegaConf.to_container(cfg.decoding, resolve=True)
    return key_problems(cfg, EVALUATE_RULES) + sampling_problems(decoding, "decoding")
