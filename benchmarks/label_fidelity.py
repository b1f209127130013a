"""Label fidelity of a relationship-conditioned run against its ablation, trained the same way (issue 17).

    python benchmarks/label_fidelity.py                        # tiny model, two runs of 120 steps, last line JSON
    python benchmarks/label_fidelity.py --model smollm2-135m --steps 60 --lr 2e-4
    python benchmarks/label_fidelity.py --steps 40 trainer.val_check_interval=20   # extra args: Hydra overrides

Two runs train on the English sample (`examples/english`: Sam writes full sentences to Mum, lowercase bursts to
Jake and Priya; `data=english` labels them `{Mum: family, Jake Miller: friend, Priya Shah: friend}`), the same seed,
steps and learning rate: **conditioned** (each prompt names the relationship) and **ablation**
(`data.relationship_in_prompt=false`: the same data and base, no label in the prompt). Each run's label fidelity
is then measured as `evaluate.py` measures it (`replica/evaluation/fidelity.py`): every held-out context is
answered under each label with the same seed, and a classifier trained on Sam's real replies to family vs friends
says which label each reply reads as. The ablation's replies to one context are identical under both labels, so
its fidelity is 0.5 by construction; the question is whether the conditioned run's interval lies above it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script from anywhere: import replica/, data_modules/, callbacks/

TINY_LR = 3e-3  # the tiny model learns the label line within 120 steps at this rate (1e-3, its preset's, is slower)
VARIANTS = {"conditioned": "data.relationship_in_prompt=true", "ablation": "data.relationship_in_prompt=false"}


def learning_rate(args: argparse.Namespace) -> float | None:
    """--lr, else TINY_LR for the tiny model; None: the model preset's own."""
    return args.lr if args.lr is not None else TINY_LR if args.model in (None, "tiny") else None


def training_overrides(args: argparse.Namespace, work: Path) -> list[str]:
    """What both runs share: the English sample with its relationships, the model, steps, learning rate, seed."""
    overrides = [
        "data=english", "trainer=cpu", "trainer.max_epochs=-1", f"trainer.max_steps={args.steps}",
        "trainer.check_val_every_n_epoch=null", f"trainer.val_check_interval={args.steps}",
        "trainer.enable_progress_bar=false", "callbacks.stop_sequence_eval.num_samples=8",
        f"callbacks.stop_sequence_eval.max_new_tokens={args.max_new_tokens}",
        f"paths.data_dir={work / 'data'}", f"paths.log_dir={work / 'logs'}",
    ]
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.model:
        overrides.append(f"model={args.model}")
    if (lr := learning_rate(args)) is not None:
        overrides.append(f"optimizer.lr={lr}")
    return [*overrides, *args.overrides]


def train_variant(overrides: Sequence[str], variant: str, runs: Path) -> Path:
    """Train one variant into `<runs>/<variant>`; return its run folder."""
    from replica.config import compose
    from train import train

    cfg = compose("train", [*overrides, VARIANTS[variant]], output_dir=str(runs / variant))
    train(cfg)
    return Path(cfg.paths.output_dir)


def run_fidelity(run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The run's label fidelity on (a seeded sample of) its test split, sampled as the run's generation block says
    (its seed too: the run's `seed`)."""
    from replica.evaluation.data import load_split, replies_by_label, sample_examples
    from replica.evaluation.fidelity import label_fidelity
    from replica.inference.engines import choose_engine, open_run_engines
    from replica.inference.jobs import Sampling
    from replica.model.run_dir import inspect_run
    from replica.prepare.pipeline import run_dataset
    from replica.settings import GenerationSection

    dataset = run_dataset(run_dir, log=lambda *_: None)
    info = inspect_run(run_dir)
    block = GenerationSection.of_run(info.config)
    examples = sample_examples(load_split(dataset.dir, "test"), args.contexts, block.seed)
    sampling = Sampling.from_block(block, do_sample=True, max_new_tokens=args.max_new_tokens)
    engine = open_run_engines(info, engine=choose_engine(block.engine, "cpu"), quant=block.engine_quant, sides=(True,),
                              slots=16, max_new_tokens=args.max_new_tokens)[True]
    try:
        return label_fidelity(engine, replies_by_label(load_split(dataset.dir, "train")), examples, sampling,
                              args.samples, 16, 20, args.resamples, block.seed)
    finally:
        engine.close()


def overlap(left: Sequence[float] | None, right: Sequence[float] | None) -> bool | None:
    """Whether two intervals share a point (None when one is missing)."""
    if not left or not right:
        return None
    return left[0] <= right[1] and right[0] <= left[1]


def summary_line(variant: str, fidelity: dict[str, Any]) -> str:
    if "mean" not in fidelity:
        return f"{variant:>12}: not measured ({fidelity['note']})"
    mean = fidelity["mean"]
    low, high = mean["fidelity_ci"] or (float("nan"), float("nan"))
    own_low, own_high = mean["own_context_ci"] or (float("nan"), float("nan"))
    return (f"{variant:>12}: fidelity {mean['fidelity']:.3f} [{low:.3f}, {high:.3f}]  own context "
            f"{mean['own_context']:.3f} [{own_low:.3f}, {own_high:.3f}]  ceiling {mean['ceiling']:.3f}  "
            f"({fidelity['contexts']} contexts x "
            f"{fidelity['samples']} samples, labels {', '.join(fidelity['labels'])})")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a conf/model preset, e.g. smollm2-135m (default: tiny)")
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps of each run (default 120)")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"learning rate (default: {TINY_LR} for the tiny model, else the model preset's)")
    parser.add_argument("--contexts", type=int, default=None, help="held-out contexts scored (default: the test split)")
    parser.add_argument("--samples", type=int, default=2, help="sampled replies per context and label (default 2)")
    parser.add_argument("--max-new-tokens", type=int, default=24, help="reply length limit (default 24)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=None,
                        help="training, sampling and bootstrap seed of both runs (default: conf/train.yaml's)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the runs, dataset and base-model cache, kept and reused (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", help="further Hydra overrides of conf/train.yaml for both runs")
    args = parser.parse_args(argv)
    if min(args.steps, args.samples, args.max_new_tokens) < 1 or args.resamples < 100:
        parser.error("--steps, --samples and --max-new-tokens must be at least 1, --resamples at least 100")

    from replica.errors import ReplicaInputError

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="replica-label-fidelity-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        runs = Path(tempfile.mkdtemp(prefix="runs-", dir=work))  # this invocation's two runs, never an old one
        overrides = training_overrides(args, work)
        try:
            for variant in VARIANTS:
                results[variant] = run_fidelity(train_variant(overrides, variant, runs), args)
        except ReplicaInputError as err:
            print(f"label_fidelity.py: error: {' '.join(str(err).split())}", file=sys.stderr)
            sys.exit(2)
    for variant, fidelity in results.items():
        print(summary_line(variant, fidelity))
    overlaps = {}
    for name in ("fidelity", "own_context"):
        overlaps[name] = overlap(*[results[variant].get("mean", {}).get(f"{name}_ci") for variant in VARIANTS])
        shown = "n/a" if overlaps[name] is None else "yes" if overlaps[name] else "no"
        print(f"{name.replace('_', ' ')} intervals overlap: {shown}")
    keys = ("fidelity", "fidelity_ci", "own_context", "own_context_ci", "ceiling")
    result = {
        "model": args.model or "tiny", "steps": args.steps, "lr": learning_rate(args), "samples": args.samples,
        **{variant: {key: fidelity.get("mean", {}).get(key) for key in keys} for variant, fidelity in results.items()},
        "intervals_overlap": overlaps["fidelity"], "own_context_intervals_overlap": overlaps["own_context"],
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
