"""Adapter-only checkpoints (no frozen base weights) and a PEFT-format export of the best adapter."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

from replica.atomic import replace_dir
from replica.model.run_dir import FORMAT_VERSION
from replica.model.run_meta import read_meta, write_meta


def export_adapter(pl_module: LightningModule, formatter, out_dir: str | Path, extra: dict[str, Any]) -> Path:
    """Write adapter weights + tokenizer + Replica metadata to `out_dir`, replacing it atomically."""
    out_dir = Path(out_dir)
    with replace_dir(out_dir) as staging:
        pl_module.model.save_pretrained(staging)
        pl_module.tokenizer.save_pretrained(staging)
        meta = {
            "format_version": FORMAT_VERSION,
            "format": formatter.style,
            "end_of_turn": formatter.end_of_turn,
            "stop_strings": formatter.stop_strings,
            "role_tokens": dict(pl_module.model_cfg["role_tokens"]),
            "max_length": formatter.max_length,
            "relationship_in_prompt": formatter.relationship_in_prompt,
            "relationships": formatter.labels,
            "base_model": pl_module.base_path,
            **extra,
        }
        write_meta(staging, meta)
    return out_dir


def exported_step(adapter_dir: str | Path) -> int | None:
    """The training step of the adapter exported in `adapter_dir` (from its metadata), None when there is none."""
    try:
        return read_meta(adapter_dir)["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


class AdapterCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose files hold only trainable weights + optimizer/scheduler/loop/data state.

    `last.ckpt` is refreshed every `last_every_n_steps` steps, at the end and on interruption; every new best
    (by `monitor`) is also exported in PEFT format to `adapter_dir`, with the run's resolved `config` and the
    `formatter`'s chat format in its metadata. The periodic `last.ckpt` never counts as "already saved at this
    step", so a validation on the same step still writes the best checkpoint and export.
    """

    def __init__(
        self, adapter_dir: str, config: dict[str, Any], formatter, last_every_n_steps: int = 1, **kwargs: Any
    ) -> None:
        kwargs.setdefault("save_last", True)
        kwargs.setdefault("save_on_exception", True)
        super().__init__(**kwargs)
        self.adapter_dir = adapter_dir
        self.config = config
        self.formatter = formatter
        self.last_every_n_steps = last_every_n_steps
        self.validated_step: int | None = None  # global step of the latest validation during fit
        self.last_saved_step: int | None = None  # global step held by last.ckpt on disk

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = pl_module.trainable_state_dict()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        step = trainer.global_step
        if self.last_every_n_steps and step % self.last_every_n_steps == 0 and self.last_saved_step != step:
            self._save_last_only(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self.validated_step = trainer.global_step

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.last_saved_step != trainer.global_step:
            self._save_last_only(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Ctrl-C or a crash: keep a resumable `last.ckpt` (never a misnamed "best" file)."""
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        if self.save_on_exception and fitting and self.last_saved_step != trainer.global_step:
            self._save_last_only(trainer)

    def _save_last_only(self, trainer: Trainer) -> None:
        """Write last.ckpt without marking the step as saved for the best-checkpoint logic."""
        saved_step = self._last_global_step_saved
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._last_global_step_saved = saved_step

    def _save_last_checkpoint(self, trainer: Trainer, monitor_candidates: dict[str, Any]) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self.last_saved_step = trainer.global_step

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if filepath == self.best_model_path and trainer.is_global_zero:
            self.export(trainer, trainer.lightning_module)

    def consider_final(self, trainer: Trainer, pl_module: LightningModule, metrics: dict[str, float]) -> None:
        """After a validation outside `fit` (e.g. after Ctrl-C): keep the final weights if they are the best."""
        self.validated_step = trainer.global_step
        score = metrics.get(self.monitor) if self.monitor else None
        if score is None or not math.isfinite(score):
            return
        best = self.best_model_score
        if best is not None and not (score < float(best) if self.mode == "min" else score > float(best)):
            return
        previous = self.best_model_path
        self.best_model_score = torch.tensor(score)
        candidates = {**self._monitor_candidates(trainer), self.monitor: self.best_model_score}
        self.best_model_path = self.format_checkpoint_name(candidates)
        if not (self.last_model_path and Path(self.last_model_path).is_file()):
            self.best_model_path = ""  # no last.ckpt of these weights to keep as the best checkpoint
        if trainer.is_global_zero:
            if self.best_model_path:
                shutil.copyfile(self.last_model_path, self.best_model_path)  # last.ckpt holds exactly these weights
                if previous and previous != self.best_model_path and Path(previous).is_file():
                    Path(previous).unlink()
            self.export(trainer, pl_module)
        self.best_k_models = {self.best_model_path: self.best_model_score}
        self.kth_best_model_path = self.best_model_path

    def export(self, trainer: Trainer, pl_module: LightningModule) -> None:
        score = self.best_model_score
        export_adapter(
            pl_module,
            self.formatter,
            self.adapter_dir,
            {
                "global_step": trainer.global_step,
                "monitor": self.monitor,
                "best_score": None if score is None else float(score),
                "config": self.config,
            },
        )

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "validated_step": self.validated_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.validated_step = state_dict.get("validated_step")
