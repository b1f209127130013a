"""Validate the final weights inside `fit`: the last optimizer step of a run is always a validation step."""

from __future__ import annotations

from lightning import Callback, LightningModule, Trainer


class FinalValidation(Callback):
    """On the step where training will end (max_steps, the last batch of the last epoch), ask Lightning to stop.

    A requested stop makes Lightning validate on that very step, so the best checkpoint, the adapter export and
    early stopping all see the final weights. Stops requested by other callbacks (`StopAtStep`, early stopping)
    already validate this way.
    """

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        if not trainer.should_stop and is_final_step(trainer):
            trainer.should_stop = True


def is_final_step(trainer: Trainer) -> bool:
    """Whether the batch just trained ends the run by `max_steps` or by `max_epochs`."""
    if trainer.max_steps is not None and trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
        return True
    max_epochs = trainer.max_epochs
    last_epoch = max_epochs is not None and max_epochs >= 0 and trainer.current_epoch + 1 >= max_epochs
    return last_epoch and trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
