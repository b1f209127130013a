"""End training cleanly after a given optimizer step while keeping the full schedule (preemption, time budgets)."""

from __future__ import annotations

from lightning import Callback, LightningModule, Trainer


class StopAtStep(Callback):
    """Stop after `step` optimizer steps; `last.ckpt` is written and `ckpt_path=…/last.ckpt` resumes exactly."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True
