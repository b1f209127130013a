"""Fine-tune a causal LM with QLoRA on your chats: `python train.py [overrides]` (no arguments: CPU demo)."""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from replica.config import (
    check_overrides,
    expand_home_in_overrides,
    hide_names_in_overrides,
    register_configs,
)
from replica.errors import EXIT_INTERRUPTED
from replica.prepare.shown_paths import mask_shown_paths
from replica.task import run_task

PROGRAM = "train.py"


def train(cfg: DictConfig) -> dict[str, Any]:
    """Prepare data, build/load the base, fit LoRA adapters, export the best adapter; return the run summary."""
    from replica.training.run import run_training

    return run_training(cfg)


def with_parent_overrides(argv: list[str]) -> list[str]:
    """`from_run=RUN`: RUN's recorded overrides first, so its settings hold unless overridden."""
    from replica.training.lineage import with_parent_overrides as inherit

    return inherit(argv)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from replica.training.run import INTERRUPTED, discard_unstarted_run, optimized_value

    summary = run_task(PROGRAM, lambda: train(cfg), on_failure=lambda: discard_unstarted_run(cfg.paths.output_dir),
                       timed=True)
    if summary["stop_reason"] == INTERRUPTED:
        sys.exit(EXIT_INTERRUPTED)  # the run is finished and resumable; a sweep stops here
    return optimized_value(summary, cfg.get("optimized_metric"))


if __name__ == "__main__":
    register_configs()  # the replica_root resolver and the generation schema train.yaml's defaults list takes
    mask_shown_paths()  # export names in errors and logs lose their contacts' names and numbers
    sys.argv[1:] = expand_home_in_overrides(sys.argv[1:])  # data.exports=[~/chats] works as in a shell
    sys.argv[1:] = hide_names_in_overrides(sys.argv[1:])  # .hydra/overrides.yaml names no contact
    sys.argv[1:] = run_task(PROGRAM, lambda: with_parent_overrides(sys.argv[1:]))  # from_run=: its settings first
    run_task(PROGRAM, lambda: check_overrides("train", sys.argv[1:]))
    main()
