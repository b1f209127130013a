"""The evaluation behind `evaluate.py`: one run, one model, scored with its adapter off (baseline) and on.

Each step is one call: read the held-out sample, load the run, let both sides answer, score them, write `<run>/eval/`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from replica.devices import resolve_device
from replica.errors import ReplicaInputError
from replica.evaluation.data import HeldOut, read_held_out
from replica.evaluation.human import human_score
from replica.evaluation.labels import is_labelled, per_relationship
from replica.evaluation.outputs import json_safe, run_meta, write_eval_dir
from replica.evaluation.scoring import score_sides
from replica.evaluation.sides import SIDES, decoding_settings, run_side
from replica.evaluation.teaching import where_to_teach
from replica.inference.engines import choose_engine, is_auto, open_run_engines
from replica.model.run_dir import inspect_run
from replica.settings import GenerationSection

log = logging.getLogger(__name__)


def run_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Score baseline and fine-tuned sides of `cfg.run_dir`, write `<run>/eval/`, return the metrics dict."""
    import torch

    from replica.evaluation.semantic import Embedder
    from replica.inference.loading import load_run, quiet_loading

    started = time.perf_counter()
    info = inspect_run(cfg.run_dir)
    run_dir = info.run_dir.resolve()
    cfg.decoding = GenerationSection.of_run(info.config).under(cfg.decoding)  # null: the run's sampling block
    held_out = read_held_out(run_dir, cfg)
    device = resolve_device(cfg.eval.device, option="eval.device")
    embedder = Embedder(cfg.metrics.embedder, device=device)
    decoding = OmegaConf.to_container(cfg.decoding, resolve=True)

    torch.manual_seed(cfg.seed)
    log.info("loading %s (%d %s examples)", run_dir, len(held_out.reference.examples), cfg.eval.split)
    with quiet_loading():
        model, formatter, info = load_run(run_dir, device=device, quantized=cfg.eval.quantized)
    engine = choose_engine(decoding["engine"], device, option="decoding.engine")
    engines = open_run_engines(info, engine=engine, quant=decoding["engine_quant"], sides=(False, True),
                               slots=cfg.eval.batch_size, max_new_tokens=decoding["max_new_tokens"], model=model,
                               formatter=formatter, device=device, fallback=is_auto(decoding["engine"]))
    log.info("generating with %s", engines[True].name)
    labelled = is_labelled(info.meta)
    try:
        sides = {side: run_side(model, engines[side == "finetuned"], side, held_out.reference, cfg.probes.prompts,
                                decoding, cfg.eval.batch_size, labelled)
                 for side in SIDES}
        metrics = score_sides(sides, held_out.reference, embedder, cfg.metrics, device, cfg.intervals.resamples, cfg.seed)
        if labelled:
            metrics.update(relationship_metrics(engines[True], held_out, sides, decoding, cfg))
            if (teaching := where_to_teach(metrics)) is not None:
                metrics["where_to_teach"] = teaching
    finally:
        for opened in engines.values():
            opened.close()
    if (parent := parent_run(info, cfg.eval.parent)) is not None:
        del model  # one model in memory at a time
        versus = score_parent(parent, sides["finetuned"], held_out, decoding, cfg, device, labelled)
        metrics["versus_parent"] = {"parent": str(parent), **score_sides(
            versus, held_out.reference, embedder, cfg.metrics, device, cfg.intervals.resamples, cfg.seed)}
    metrics["meta"] = run_meta(cfg, run_dir, held_out, info.meta, sides, device, time.perf_counter() - started)
    if (human := human_score(run_dir)) is not None:
        metrics["human"] = human  # the blind test's guesses (replica serve's /blind page)
    metrics = json_safe(metrics)
    report = write_eval_dir(run_dir, metrics, held_out.reference, sides, cfg)
    log.info("report written to %s", report)
    return metrics


def parent_run(info, wanted: str | bool) -> Path | None:
    """The run `info` continued from, when `eval.parent` asks for it (auto: whenever there is one)."""
    parent = info.config.get("from_run")
    if wanted is False or (wanted == "auto" and not parent):
        return None
    if not parent:
        raise ReplicaInputError("eval.parent=true: this run was not continued from another (no from_run recorded)")
    return inspect_run(parent).run_dir


def score_parent(parent: Path, child_side, held_out: HeldOut, decoding: dict, cfg: DictConfig, device: str,
                 labelled: bool) -> dict[str, Any]:
    """{baseline: the parent's fine-tuned side, finetuned: this run's}, on the same held-out examples and seeds:
    `score_sides` then gives parent -> this run with paired intervals."""
    from replica.inference.loading import load_run, quiet_loading

    log.info("scoring the parent run %s on the same examples", parent)
    with quiet_loading():
        model, formatter, info = load_run(parent, device=device, quantized=cfg.eval.quantized)
    engine = choose_engine(decoding["engine"], device, option="decoding.engine")
    engines = open_run_engines(info, engine=engine, quant=decoding["engine_quant"], sides=(True,),
                               slots=cfg.eval.batch_size, max_new_tokens=decoding["max_new_tokens"], model=model,
                               formatter=formatter, device=device, fallback=is_auto(decoding["engine"]))
    try:
        side = run_side(model, engines[True], "finetuned", held_out.reference, cfg.probes.prompts, decoding,
                        cfg.eval.batch_size, labelled)
    finally:
        engines[True].close()
    return {"baseline": side, "finetuned": child_side}


def relationship_metrics(engine, held_out: HeldOut, sides, decoding: dict, cfg: DictConfig) -> dict[str, Any]:
    """`per_relationship` (each label's metrics, both sides) and, unless turned off, the fine-tuned side's
    `label_fidelity`."""
    from replica.evaluation.fidelity import label_fidelity

    section = cfg.relationships
    reference = held_out.reference
    out: dict[str, Any] = {
        "per_relationship": per_relationship(sides, reference, section.min_examples, cfg.intervals.resamples, cfg.seed)
    }
    if section.fidelity:
        out["label_fidelity"] = label_fidelity(
            engine, held_out.train_replies, reference.examples, decoding_settings(decoding)[0],
            decoding["samples"], cfg.eval.batch_size, section.min_train_replies, cfg.intervals.resamples, cfg.seed,
        )
    return out
