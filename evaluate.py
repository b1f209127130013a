"""Compare a run's base model and its fine-tuned adapter on held-out chats: `python evaluate.py run_dir=<run>`."""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from replica.prepare.shown_paths import mask_shown_paths
from replica.task import run_task

PROGRAM = "evaluate.py"


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score baseline (adapter disabled) and fine-tuned replies, write `<run_dir>/eval/`; return the metrics."""
    from replica.evaluation.run import run_evaluation

    return run_evaluation(cfg)


def _print_summary(metrics: dict[str, Any]) -> None:
    from replica.evaluation.formatting import format_value, with_interval
    from replica.evaluation.outputs import EVAL_DIR, HEADLINE
    from replica.evaluation.teaching import teaching_line

    for key in HEADLINE:
        base, tuned = metrics["baseline"].get(key), metrics["finetuned"].get(key)
        change = metrics.get("difference", {}).get(key) or {}
        verdict = " (significant)" if change.get("significant") else ""
        print(f"{key:>22}: {format_value(key, base):>9} -> {format_value(key, tuned)}{verdict}")
    if "mean" in metrics.get("label_fidelity", {}):
        fidelity = metrics["label_fidelity"]["mean"]
        print(f"{'label_fidelity':>22}: {with_interval('fidelity', fidelity['fidelity'], fidelity['fidelity_ci'])} "
              f"(ceiling {format_value('fidelity', fidelity['ceiling'])})")
    if "where_to_teach" in metrics:
        print(teaching_line(metrics["where_to_teach"]))
    print(f"report: {metrics['meta']['run_dir']}/{EVAL_DIR}/report.md")


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    _print_summary(run_task(PROGRAM, lambda: evaluate(cfg), timed=True))


def _precheck() -> None:
    from replica.evaluation.checks import precheck

    precheck(sys.argv[1:])


if __name__ == "__main__":
    mask_shown_paths()  # export names in errors and logs lose their contacts' names and numbers
    run_task(PROGRAM, _precheck)
    main()
