"""ReplicaModule: a 4-bit (or 16-bit) base model with LoRA adapters, trained on the user's replies only."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from lightning import LightningModule

from replica.model.base_model import (
    disable_cpu_inference_repacking,
    load_adapter_weights,
    load_base_model,
    new_token_ids,
    wrap_with_lora,
)
from replica.model.loss import reply_token_nll, weighted_reply_loss
from replica.model.tokens import ensure_embedding_rows
from replica.training.preference import (
    Preference,
    dpo_loss,
    pair_logps,
    reference_logps,
)

log = logging.getLogger(__name__)
LABEL_LOSS = "val/loss_"  # + a relationship label: the val loss of that label's examples


def capture_rng_states() -> dict[str, Any]:
    """Every RNG that training consumes (LoRA dropout, sampling), so a resumed run continues exactly."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),  # weights_only-safe
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Mapping[str, Any]) -> None:
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ReplicaModule(LightningModule):
    """Wraps the PEFT model of the base at `base_path` (loaded in `configure_model`) with `tokenizer`'s tokens.

    The first validation of untrained weights (before any optimizer step) is kept as `initial_metrics`, also across
    resumes.
    """

    def __init__(
        self,
        model: Mapping,
        quant: Mapping,
        lora: Mapping,
        optimizer: Any,
        scheduler: Any,
        base_path: str,
        tokenizer: Any,
        data_format: str = "role_tokens",
        gradient_checkpointing: bool = True,
        init_adapter: str | None = None,
        preference: Preference | None = None,
    ) -> None:
        super().__init__()
        self.model_cfg = model
        self.quant_cfg = quant
        self.lora_cfg = lora
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.data_format = data_format
        self.gradient_checkpointing = gradient_checkpointing
        self.strict_loading = False  # checkpoints hold only the trainable (adapter) weights
        self.base_path = base_path
        self.tokenizer = tokenizer
        self.model = None
        self._val_sums = torch.zeros(2, 1, dtype=torch.float64)
        self._step_started = 0.0
        self.initial_metrics: dict[str, float] = {}
        self.init_adapter = init_adapter  # a parent run's adapter folder: the LoRA weights start from it
        self.preference = preference

    # ---- model ----------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.model is not None:
            return
        device = self.trainer.strategy.root_device if self._trainer is not None else torch.device("cpu")
        base = load_base_model(self.base_path, self.model_cfg, self.quant_cfg, device)
        disable_cpu_inference_repacking(base)
        ensure_embedding_rows(base, self.tokenizer)
        base.config.pad_token_id = self.tokenizer.pad_token_id
        token_ids = new_token_ids(self.tokenizer, self.model_cfg, self.data_format)
        self.model = wrap_with_lora(
            base,
            self.lora_cfg,
            token_ids,
            quantized=self.quant_cfg["mode"] != "none",
            gradient_checkpointing=self.gradient_checkpointing,
        )
        if self.init_adapter is not None:
            load_adapter_weights(self.model, self.init_adapter)

    def on_fit_start(self) -> None:
        if self.preference is not None and self.preference.reference is None:
            self.preference.reference = reference_logps(self.model, self.preference, self.tokenizer.pad_token_id)
        # from_pretrained returns the base in eval mode and Lightning keeps a module's mode, so without this the
        # decoder layers train in eval mode: no gradient checkpointing (every activation kept) and no LoRA dropout
        self.model.train()
        if self.trainer.is_global_zero:
            trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
            total = sum(p.numel() for p in self.parameters())
            log.info("training %s of %s parameters (%.2f%%)", f"{trainable:,}", f"{total:,}", 100 * trainable / max(total, 1))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the parameters being trained (LoRA matrices, new-token rows), keyed as in `state_dict()`."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in names}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["replica_initial_metrics"] = self.initial_metrics
        checkpoint["replica_rng"] = capture_rng_states()
        if self.preference is not None and self.preference.reference is not None:
            checkpoint["replica_preference_reference"] = self.preference.reference

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.initial_metrics = checkpoint.get("replica_initial_metrics", {})
        if self.preference is not None and "replica_preference_reference" in checkpoint:
            self.preference.reference = checkpoint["replica_preference_reference"]
        if "replica_rng" in checkpoint:
            restore_rng_states(checkpoint["replica_rng"])

    def forward(self, **batch: torch.Tensor):
        return self.model(**batch)

    # ---- steps ----------------------------------------------------------------------------------------
    def on_train_batch_start(self, batch: Mapping, batch_idx: int) -> None:
        self._step_started = time.perf_counter()

    def training_step(self, batch: Mapping, batch_idx: int) -> torch.Tensor:
        loss = weighted_reply_loss(self.model, batch)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch["input_ids"].shape[0])
        if self.preference is not None and self.preference.pairs:
            loss = loss + self.preference.weight * self._preference_loss()
        return loss

    def _preference_loss(self) -> torch.Tensor:
        """DPO on this step's draw of correction-over-reply pairs (`replica.training.preference`)."""
        indices = self.preference.draw(self.trainer.global_step, self.global_rank)
        policy = pair_logps(self.model, self.preference, indices, self.tokenizer.pad_token_id)
        reference = self.preference.reference[indices].to(policy.device, policy.dtype)
        loss, margin = dpo_loss(policy, reference, self.preference.beta)
        self.log("train/dpo_loss", loss, on_step=True, on_epoch=False, batch_size=len(indices))
        self.log("train/dpo_margin", margin, on_step=True, on_epoch=False, batch_size=len(indices))
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Mapping, batch_idx: int) -> None:
        elapsed = time.perf_counter() - self._step_started
        tokens = int(batch["attention_mask"].sum()) * self.trainer.world_size
        self.log("train/tokens_per_s", tokens / max(elapsed, 1e-9), on_step=True, on_epoch=False)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)

    def on_validation_epoch_start(self) -> None:
        names = getattr(self.trainer.datamodule, "label_names", []) if self._trainer is not None else []
        self._val_sums = torch.zeros(2, len(names) + 1, dtype=torch.float64)  # (nll, tokens) x (labels..., all)

    def validation_step(self, batch: Mapping, batch_idx: int) -> None:
        token_nll, rows = reply_token_nll(self.model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        token_nll = token_nll.detach().double().cpu()
        self._val_sums[:, -1] += torch.tensor([float(token_nll.sum()), float(token_nll.numel())], dtype=torch.float64)
        if "label_ids" in batch and self._val_sums.shape[1] > 1:
            labels = batch["label_ids"].cpu()[rows.cpu()]
            known = labels >= 0
            self._val_sums[0].index_add_(0, labels[known], token_nll[known])
            self._val_sums[1].index_add_(0, labels[known], torch.ones_like(token_nll[known]))

    def on_validation_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self._val_sums.to(self.device), reduce_op="sum").cpu()
        losses = (sums[0] / sums[1].clamp(min=1.0)).tolist()
        self.log("val/loss", losses[-1], prog_bar=True, sync_dist=False)
        self.log("val/perplexity", math.exp(min(losses[-1], 50.0)), sync_dist=False)
        names = self.trainer.datamodule.label_names if len(losses) > 1 else []
        for name, loss, tokens in zip(names, losses, sums[1].tolist()):
            if tokens:
                self.log(f"{LABEL_LOSS}{name}", loss, sync_dist=False)

    def on_validation_end(self) -> None:
        """Keep the first validation of the untrained weights (every metric logged in it) as `initial_metrics`."""
        if self.trainer.global_step == 0 and not self.trainer.sanity_checking and not self.initial_metrics:
            self.initial_metrics = {name: float(value) for name, value in self.trainer.callback_metrics.items()}

    # ---- optimization ---------------------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params=params)
        scheduler = self.scheduler_factory(optimizer=optimizer, total_steps=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
