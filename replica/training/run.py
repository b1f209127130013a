"""One training run, composed from the Hydra config: what `train.py` does."""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.trainer.states import TrainerStatus
from omegaconf import DictConfig, OmegaConf

from callbacks import AdapterCheckpoint, StopAtStep
from callbacks.adapter_checkpoint import exported_step
from replica.atomic import read_jsonl, write_json, write_text
from replica.config import hide_relationship_names, normalize, validate
from replica.errors import ReplicaInputError
from replica.feedback.store import FEEDBACK_DIR
from replica.model.memory import return_freed_buffers_to_the_system
from replica.prepare.store import RUN_RECORD
from replica.privacy import display_path
from replica.training.inputs import RunInputs, resolve_inputs
from replica.training.lineage import (
    Parent,
    continue_from,
    feedback_examples,
    learned_feedback,
)
from replica.training.module import LABEL_LOSS, ReplicaModule
from replica.training.preference import Preference, encode_pairs
from replica.training.quiet import silence_third_party_notices
from replica.training.resume import RESUME_KEY_FILE, resolve_ckpt_path, write_resume_key

log = logging.getLogger(__name__)
SUMMARY_FILE = "summary.json"
INTERRUPTED = "interrupted (Ctrl-C)"
# What a run folder holds before its first checkpoint: removed when the run fails before training.
UNSTARTED_ENTRIES = (".hydra", "data_preview.jsonl", "csv", "stop_eval", "tensorboard", "wandb", "checkpoints", RESUME_KEY_FILE,
                     FEEDBACK_DIR)


def instantiate_all(node: DictConfig | None, **inputs: Any) -> list[Any]:
    """Every object the config group lists, each also given those of `inputs` its class's constructor names."""
    built = []
    for item in (node or {}).values():
        if item is None or "_target_" not in item:
            continue
        make = instantiate(item, _partial_=True)  # a partial: `inputs` are passed as they are, never made config
        takes = inspect.signature(make.func).parameters
        built.append(make(**{name: value for name, value in inputs.items() if name in takes}))
    return built


def _is_rank_zero() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def build_module(cfg: DictConfig, inputs: RunInputs, parent: Parent | None = None,
                 pairs: list[dict] | None = None) -> ReplicaModule:
    """The LightningModule of a run, with its optimizer/scheduler factories from the config; a continued run's
    starts from its parent's adapter and, with `feedback.preference`, learns `pairs` by DPO."""
    preference = None
    if pairs and cfg.feedback.preference:
        preference = Preference(encode_pairs(inputs.formatter, pairs), beta=float(cfg.feedback.beta),
                                weight=float(cfg.feedback.preference_weight), batch=int(cfg.feedback.preference_batch))
    return ReplicaModule(
        model=cfg.model,
        quant=cfg.quant,
        lora=cfg.lora,
        optimizer=instantiate(cfg.optimizer, _convert_="all"),  # plain lists: checkpoints stay weights_only-safe
        scheduler=instantiate(cfg.scheduler, _convert_="all"),
        base_path=inputs.base_path,
        tokenizer=inputs.tokenizer,
        data_format=inputs.formatter.style,
        gradient_checkpointing=cfg.gradient_checkpointing,
        init_adapter=str(parent.adapter_dir) if parent is not None else None,
        preference=preference,
    )


def _one_console_log() -> None:
    """Lightning adds its own console handlers; under Hydra's logging they would print every line twice."""
    if logging.getLogger().handlers:
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True


def shown_path(path: str | Path) -> str:
    """`path` relative to the working folder when it lies inside it (copy-pastable), else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_training(cfg: DictConfig) -> dict[str, Any]:
    """Check the config, compose the run (inputs, datamodule, module, callbacks, trainer), fit it, write its summary."""
    _one_console_log()
    silence_third_party_notices()
    return_freed_buffers_to_the_system()
    normalize(cfg)
    validate(cfg)
    parent = continue_from(cfg)
    output_dir = Path(cfg.paths.output_dir)
    _hide_names_in_hydra_copy(output_dir / ".hydra" / "config.yaml")
    ckpt_path = resolve_ckpt_path(cfg)
    if _is_rank_zero():
        print(f"run folder: {shown_path(output_dir)}", flush=True)
    seed_everything(cfg.seed, workers=True)
    output_dir.mkdir(parents=True, exist_ok=True)

    inputs = resolve_inputs(cfg, output_dir / RUN_RECORD, build=_is_rank_zero(),  # other ranks open rank 0's dataset
                            base_path=parent.base_path(cfg) if parent else None)
    learned = learned_feedback(output_dir, parent, cfg)
    chat_train = len(read_jsonl(inputs.dataset.split_path("train")))
    extra = feedback_examples(learned, float(cfg.feedback.weight), float(cfg.feedback.share), chat_train)
    datamodule = instantiate(cfg.datamodule, _partial_=True)(dataset=inputs.dataset, formatter=inputs.formatter,
                                                            extra_train=extra)
    module = build_module(cfg, inputs, parent if ckpt_path is None else None, [r for r in learned if "rejected" in r])
    callbacks: list[Callback] = instantiate_all(
        cfg.get("callbacks"),
        config=OmegaConf.to_container(cfg, resolve=True),  # recorded with the exported adapter
        formatter=inputs.formatter,
        examples=datamodule.load_split("val"),
    )
    checkpoint = next((c for c in callbacks if isinstance(c, AdapterCheckpoint)), None)
    if checkpoint is None:
        raise ReplicaInputError("callbacks.model_checkpoint is required (it saves last.ckpt and exports the adapter)")
    trainer: Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=instantiate_all(cfg.get("logger")) or False)
    for logger in trainer.loggers:
        logger.log_hyperparams(logged_config(cfg))

    started = time.perf_counter()
    if ckpt_path is None and cfg.get("validate_before_training", True):
        trainer.validate(module, datamodule=datamodule, verbose=False)  # the module keeps it as its initial metrics
    if trainer.is_global_zero:
        write_resume_key(output_dir, cfg)
    interrupted = _fit(trainer, module, datamodule, ckpt_path)
    _validate_final_weights(trainer, module, datamodule, checkpoint, interrupted)
    lineage = {"from_run": cfg.get("from_run"), "feedback_examples": len(learned), "feedback_rows": len(extra)}
    summary = _summary(trainer, module, datamodule, checkpoint, time.perf_counter() - started, ckpt_path, interrupted,
                       lineage)
    if trainer.is_global_zero:
        write_json(output_dir / SUMMARY_FILE, summary)
        print("\n".join(report_lines(summary, output_dir)), flush=True)
    return summary


def logged_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved run config as the loggers record it (CSV's hparams.yaml, TensorBoard, W&B if opted in): export
    paths shown as the console shows them (contacts' names masked), `data.me` as a count of names, relationship
    names already replaced by their keys."""
    config = OmegaConf.to_container(cfg, resolve=True)
    data = config.get("data") or {}
    if data.get("exports"):
        data["exports"] = [display_path(str(path)) for path in data["exports"]]
    if data.get("me"):
        data["me"] = f"<{len(data['me'])} name(s)>"
    return config


def _hide_names_in_hydra_copy(saved: Path) -> None:
    """Hydra's copy of the config, written before validation, with data.relationships' names hidden as well (names
    given on the command line are hidden before Hydra starts; these came from a config file)."""
    if not saved.is_file():
        return
    copy = OmegaConf.load(saved)
    before = OmegaConf.to_yaml(copy)
    hide_relationship_names(copy)
    if OmegaConf.to_yaml(copy) != before:
        write_text(saved, OmegaConf.to_yaml(copy))


def _fit(trainer: Trainer, module: ReplicaModule, datamodule, ckpt_path: str | None) -> bool:
    """`trainer.fit`; True when Ctrl-C ended it (Lightning saved last.ckpt and would exit: the run is finished instead)."""
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except ValueError as err:  # the one setting Lightning can only check once it knows the epoch's length
        reason = str(err).strip()
        if not reason.startswith("`val_check_interval`"):
            raise
        raise ReplicaInputError(
            f"trainer.val_check_interval: {reason.split('. ')[0].replace('`', '')}; lower it, give a fraction of an "
            "epoch (e.g. 0.5), or count steps across epochs with trainer.check_val_every_n_epoch=null"
        ) from None
    except SystemExit:
        if trainer.state.status != TrainerStatus.INTERRUPTED or trainer.world_size > 1:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores further Ctrl-C
        return True
    return False


def _validate_final_weights(trainer: Trainer, module, datamodule, checkpoint: AdapterCheckpoint, interrupted: bool) -> None:
    """Validate the final weights unless the last validation saw them; export the adapter if it is the best."""
    if checkpoint.validated_step != trainer.global_step and trainer.global_step > 0:
        if interrupted:
            print(f"interrupted at step {trainer.global_step}: validating the final weights (Ctrl-C again to skip)", flush=True)
        try:
            metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
            checkpoint.consider_final(trainer, module, {k: float(v) for k, v in metrics.items()})
        except (KeyboardInterrupt, SystemExit):
            if not interrupted:
                raise
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if exported_step(checkpoint.adapter_dir) is None and trainer.is_global_zero:
        checkpoint.export(trainer, module)  # nothing better was validated: the adapter holds the final weights


def stop_reason(trainer: Trainer, interrupted: bool) -> str:
    """What ended the fit: Ctrl-C, early stopping (its documented `stopping_reason`), a stop step or the schedule."""
    if interrupted:
        return INTERRUPTED
    early = trainer.early_stopping_callback
    if early is not None and early.stopping_reason != EarlyStoppingReason.NOT_STOPPED:
        return "early stopping"
    for callback in trainer.callbacks:
        if isinstance(callback, StopAtStep) and trainer.global_step >= callback.step:
            return f"callbacks.stop_at (step {callback.step})"
    if trainer.max_steps and trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
        return f"trainer.max_steps={trainer.max_steps}"
    return f"trainer.max_epochs={trainer.max_epochs}"


def _summary(trainer: Trainer, module: ReplicaModule, datamodule, checkpoint: AdapterCheckpoint, seconds: float,
             resumed_from: str | None, interrupted: bool, lineage: dict[str, Any] | None = None) -> dict:
    """summary.json: the latest logged metrics, the initial ones, the best checkpoint and the exported adapter."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    initial = module.initial_metrics
    best = checkpoint.best_model_score
    return {
        "initial_val_loss": initial.get("val/loss"),
        "initial_clean_stop_rate": initial.get("val/clean_stop_rate"),
        "best_val_loss": float(best) if best is not None else metrics.get("val/loss"),
        "final_val_loss": metrics.get("val/loss"),
        "final_val_perplexity": metrics.get("val/perplexity"),
        "clean_stop_rate": metrics.get("val/clean_stop_rate"),
        "length_ratio": metrics.get("val/length_ratio"),
        "global_step": trainer.global_step,
        "epochs": trainer.current_epoch,
        "stop_reason": stop_reason(trainer, interrupted),
        "train_seconds": round(seconds, 1),
        "adapter_dir": str(Path(checkpoint.adapter_dir).resolve()),
        "adapter_step": exported_step(checkpoint.adapter_dir),
        "best_checkpoint": checkpoint.best_model_path or None,
        "last_checkpoint": str(Path(checkpoint.dirpath) / "last.ckpt"),
        "resumed_from": resumed_from,
        "examples": {split: len(rows) for split, rows in datamodule.encoded.items()},
        "dropped_examples": datamodule.dropped,
        "base_model": module.base_path,
        **(lineage or {"from_run": None}),  # from_run, feedback_examples (entries), feedback_rows (with repeats)
        **by_relationship(initial, metrics),
    }


def by_relationship(initial: dict[str, float], final: dict[str, float]) -> dict[str, Any]:
    """Each relationship label's val loss before and after, and the weakest label: the one whose val loss fell the
    least, relative to where it started (where to teach first: `replica chat` /fix, docs/teaching.md)."""
    labels = {name.removeprefix(LABEL_LOSS): {"initial_val_loss": initial.get(name), "final_val_loss": value}
              for name, value in final.items() if name.startswith(LABEL_LOSS)}
    compared = [label for label, row in labels.items() if row["initial_val_loss"]]
    if not compared:
        return {"relationships": labels} if labels else {}
    weakest = max(compared, key=lambda label: (labels[label]["final_val_loss"] / labels[label]["initial_val_loss"], label))
    return {"relationships": labels, "weakest_relationship": weakest}


def _format_metric(value: float | None, digits: int) -> str:
    """A metric with `digits` decimals for the end-of-run report; `n/a` when it was not measured."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def report_lines(summary: dict[str, Any], run_dir: Path) -> list[str]:
    """The short end-of-run report: where the run is, what it achieved, what to run next."""
    run = shown_path(run_dir)
    lines = [
        f"run folder: {run}",
        f"  stopped by {summary['stop_reason']} at step {summary['global_step']}",
        f"  val loss {_format_metric(summary['initial_val_loss'], 3)} -> {_format_metric(summary['best_val_loss'], 3)} (best), "
        f"clean-stop rate {_format_metric(summary['initial_clean_stop_rate'], 2)} -> {_format_metric(summary['clean_stop_rate'], 2)}",
        f"  adapter: {shown_path(summary['adapter_dir'])} (step {summary['adapter_step']})",
    ]
    if summary.get("weakest_relationship"):
        label = summary["weakest_relationship"]
        row = summary["relationships"][label]
        lines.insert(1, f"  weakest relationship: {label} (val loss {_format_metric(row['initial_val_loss'], 3)} -> "
                        f"{_format_metric(row['final_val_loss'], 3)}, the least improved; correct it first: "
                        "docs/teaching.md)")
    if summary.get("from_run"):
        lines.insert(1, f"  continued from {shown_path(summary['from_run'])}, "
                        f"{summary['feedback_examples']} feedback example(s) learned")
    if summary["stop_reason"] == INTERRUPTED:
        lines.append(f"  resume: python train.py ckpt_path={shown_path(summary['last_checkpoint'])}")
    lines.append(f"  next: python evaluate.py run_dir={run}")
    return lines


def discard_unstarted_run(run_dir: str | Path) -> None:
    """Remove a run folder that holds no checkpoint yet; a folder holding anything else is left untouched."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not _is_rank_zero() or any((run_dir / "checkpoints").glob("*.ckpt")):
        return
    entries = list(run_dir.iterdir())
    if not all(entry.name in UNSTARTED_ENTRIES or entry.suffix == ".log" for entry in entries):
        return  # e.g. hydra.run.dir pointed at a folder with other content
    for entry in entries:
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    run_dir.rmdir()


def optimized_value(summary: dict[str, Any], metric: str | None) -> float | None:
    """The number a sweeper minimizes: best val loss for `val/loss`, else the summary's final value."""
    if not metric:
        return None
    if metric == "val/loss":
        return summary.get("best_val_loss")
    return summary.get(metric.replace("val/", "final_val_"), summary.get(metric))
