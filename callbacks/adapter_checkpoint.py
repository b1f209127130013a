"""Adapter-only checkpoints (no frozen base weights) and a PEFT-format export of the best adapter."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf

from replica.run_dir import ADAPTER_META, FORMAT_VERSION


def export_adapter(pl_module: LightningModule, formatter, out_dir: str | Path, extra: dict[str, Any]) -> Path:
    """Write adapter weights + tokenizer + Replica metadata to `out_dir`, replacing it atomically."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        pl_module.model.save_pretrained(staging)
        pl_module.tokenizer.save_pretrained(staging)
        meta = {
            "format_version": FORMAT_VERSION,
            "format": formatter.style,
            "end_of_turn": formatter.end_of_turn,
            "stop_strings": formatter.stop_strings,
            "role_tokens": dict(pl_module.model_cfg["role_tokens"]),
            "max_length": formatter.max_length,
            "base_model": pl_module.base_path,
            **extra,
        }
        (staging / ADAPTER_META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        backup = out_dir.with_name(f".{out_dir.name}.old")
        if out_dir.exists():
            shutil.rmtree(backup, ignore_errors=True)
            out_dir.rename(backup)
        staging.rename(out_dir)
        shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


class AdapterCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose files hold only trainable weights + optimizer/scheduler/loop/data state.

    `last.ckpt` is refreshed every `last_every_n_steps` steps, at the end and on interruption; every new best
    (by `monitor`) is also exported in PEFT format to `adapter_dir`.
    """

    def __init__(self, adapter_dir: str, last_every_n_steps: int = 1, config: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("save_last", True)
        kwargs.setdefault("save_on_exception", True)
        super().__init__(**kwargs)
        self.adapter_dir = adapter_dir
        self.last_every_n_steps = last_every_n_steps
        self.config = config
        self.exported_step: int | None = None

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = pl_module.trainable_state_dict()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        step = trainer.global_step
        if self.last_every_n_steps and step % self.last_every_n_steps == 0 and self._last_global_step_saved != step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._last_global_step_saved != trainer.global_step or not self._last_checkpoint_saved:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        if self.exported_step is None and trainer.is_global_zero:
            self._export(trainer, pl_module)  # no validation ran: export what we have

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if filepath == self.best_model_path and trainer.is_global_zero:
            self._export(trainer, trainer.lightning_module)

    def _export(self, trainer: Trainer, pl_module: LightningModule) -> None:
        score = self.best_model_score
        export_adapter(
            pl_module,
            trainer.datamodule.formatter,
            self.adapter_dir,
            {
                "global_step": trainer.global_step,
                "monitor": self.monitor,
                "best_score": None if score is None else float(score),
                "config": OmegaConf.to_container(self.config, resolve=True) if self.config is not None else None,
            },
        )
        self.exported_step = trainer.global_step

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "exported_step": self.exported_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.exported_step = state_dict.get("exported_step")
