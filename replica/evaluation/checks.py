"""What `evaluate.py` checks before Hydra starts or anything heavy loads: override keys, settings, the run folder."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from replica.errors import ReplicaInputError
from replica.model.run_dir import RunInfo, inspect_run
from replica.prepare.store import read_run_record

SETTING_RULES = (
    ("decoding.samples", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("decoding.greedy", lambda v: isinstance(v, bool), "true or false"),
    ("intervals.resamples", lambda v: isinstance(v, int) and v >= 100, "an integer >= 100"),
    ("memorization.max_indexed_chars", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("eval.batch_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    ("relationships.min_examples", lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    ("relationships.fidelity", lambda v: isinstance(v, bool), "true or false"),
    ("relationships.min_train_replies", lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
)


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
    """Every decoding / interval setting that is out of range, as `key=value must be ...` lines (the sampling keys
    through the generation section's own validator)."""
    from replica.config import sampling_problems

    problems = []
    for key, ok, expected in SETTING_RULES:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) and expected != "true or false" or not ok(value):
            problems.append(f"{key}={value!r} must be {expected}")
    return problems + sampling_problems(OmegaConf.to_container(cfg.decoding, resolve=True), "decoding")
