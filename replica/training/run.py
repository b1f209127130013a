"""One training run, composed from the Hydra config: what `train.py` does."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning import Callback, Trainer, seed_everything
from omegaconf import DictConfig

from callbacks import AdapterCheckpoint, StopSequenceEval
from replica.atomic import write_json
from replica.config import validate
from replica.errors import ReplicaInputError
from replica.training.base_model import load_tokenizer, resolve_model_path, role_tokens
from replica.training.module import ReplicaModule

log = logging.getLogger(__name__)
SUMMARY_FILE = "summary.json"


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """`ckpt_path=auto`: the newest `last.ckpt` of this task's earlier runs (None if there is none)."""
    ckpt = cfg.get("ckpt_path")
    if ckpt in (None, ""):
        return None
    if ckpt == "auto":
        runs = Path(cfg.paths.log_dir) / cfg.task_name
        candidates = sorted(runs.glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
        candidates = [c for c in candidates if Path(cfg.paths.output_dir) not in c.parents]
        return str(candidates[-1]) if candidates else None
    if not Path(ckpt).is_file():
        raise ReplicaInputError(f"ckpt_path={ckpt}: no such checkpoint file (use a run's checkpoints/last.ckpt or auto)")
    return str(ckpt)


def _instantiate_all(node: DictConfig | None) -> list[Any]:
    if not node:
        return []
    return [instantiate(item) for item in node.values() if item is not None and "_target_" in item]


def _is_rank_zero() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def build_module(cfg: DictConfig, base_path: str, tokenizer) -> ReplicaModule:
    """The LightningModule of a run, with its optimizer/scheduler factories from the config."""
    module = ReplicaModule(
        model=cfg.model,
        quant=cfg.quant,
        lora=cfg.lora,
        optimizer=instantiate(cfg.optimizer, _convert_="all"),  # plain lists: checkpoints stay weights_only-safe
        scheduler=instantiate(cfg.scheduler, _convert_="all"),
        data_format=cfg.data.format,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
    module.attach(base_path, tokenizer)
    return module


def _one_console_log() -> None:
    """Lightning adds its own console handlers; under Hydra's logging they would print every line twice."""
    if logging.getLogger().handlers:
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True


def run_training(cfg: DictConfig) -> dict[str, Any]:
    _one_console_log()
    validate(cfg)
    seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = resolve_ckpt_path(cfg)

    datamodule = instantiate(cfg.datamodule, data=cfg.data)
    if _is_rank_zero():
        datamodule.prepare_data()
    base_path = resolve_model_path(cfg.model, datamodule.train_texts, cfg.paths.cache_dir)
    tokenizer = load_tokenizer(base_path, cfg.model, cfg.data.format)
    datamodule.attach(tokenizer, role_tokens(cfg.model))

    module = build_module(cfg, base_path, tokenizer)

    callbacks: list[Callback] = _instantiate_all(cfg.get("callbacks"))
    for callback in callbacks:
        if isinstance(callback, AdapterCheckpoint):
            callback.config = cfg
    trainer: Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=_instantiate_all(cfg.get("logger")) or False)

    started = time.perf_counter()
    initial: dict[str, float] = {}
    if ckpt_path is None and cfg.get("validate_before_training", True):
        initial = {k: float(v) for k, v in trainer.validate(module, datamodule=datamodule, verbose=False)[0].items()}
        module.initial_metrics = initial
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    summary = _summary(cfg, trainer, module, datamodule, time.perf_counter() - started, ckpt_path)
    if trainer.is_global_zero:
        write_json(output_dir / SUMMARY_FILE, summary)
    return summary


def _summary(cfg, trainer: Trainer, module: ReplicaModule, datamodule, seconds: float, resumed_from: str | None) -> dict:
    checkpoint = next(c for c in trainer.callbacks if isinstance(c, AdapterCheckpoint))
    stops = next((c for c in trainer.callbacks if isinstance(c, StopSequenceEval)), None)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    initial = module.initial_metrics
    best = checkpoint.best_model_score
    return {
        "initial_val_loss": initial.get("val/loss"),
        "initial_clean_stop_rate": initial.get("val/clean_stop_rate"),
        "best_val_loss": float(best) if best is not None else metrics.get("val/loss"),
        "final_val_loss": metrics.get("val/loss"),
        "final_val_perplexity": metrics.get("val/perplexity"),
        "clean_stop_rate": stops.last.get("clean_stop_rate") if stops else None,
        "length_ratio": stops.last.get("length_ratio") if stops else None,
        "global_step": trainer.global_step,
        "epochs": trainer.current_epoch,
        "train_seconds": round(seconds, 1),
        "adapter_dir": str(Path(checkpoint.adapter_dir).resolve()),
        "best_checkpoint": checkpoint.best_model_path or None,
        "last_checkpoint": str(Path(checkpoint.dirpath) / "last.ckpt"),
        "resumed_from": resumed_from,
        "examples": {split: len(rows) for split, rows in datamodule.encoded.items()},
        "dropped_examples": datamodule.dropped,
        "base_model": module.base_path,
    }


def optimized_value(summary: dict[str, Any], metric: str | None) -> float | None:
    """The number a sweeper minimizes: best val loss for `val/loss`, else the summary's final value."""
    if not metric:
        return None
    if metric == "val/loss":
        return summary.get("best_val_loss")
    return summary.get(metric.replace("val/", "final_val_"), summary.get(metric))
